"""How a query modality that is absent at test time is scored: the model's own rule, or its train mean.

Shared by every task's missing-modality views and by the robustness sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import Tensor

from polymodal.benchmarks.protocols.gap import EVAL_BATCH
from polymodal.benchmarks.streaming import Source, mean_embeddings


def own_fill(model, present: dict[str, Tensor], target: str) -> Tensor | None:
    """The model's fill_missing, which a submitted model may lack."""
    fill = getattr(model, "fill_missing", None)
    return fill(present, target) if fill is not None else None


#: How a dropped query modality is filled: (model, present embeddings, dropped modality, train means) -> (n, d) | None
FILLS: dict[str, Callable] = {
    "mean": lambda model, present, m, means: means[m].expand(len(next(iter(present.values()))), -1),
    "model": lambda model, present, m, means: own_fill(model, present, m),
}


#: A model's `absent_queries` rule -> (what it does, for the result file; (queries, absent modalities, train means)
#: -> the queries a view scores). A view such as zeroshot/image lacks a query modality besides its target.
ABSENT_QUERIES: dict[str | None, tuple[str, Callable]] = {
    None: ("scored on the present queries alone", lambda queries, absent, means: queries),
    "mean": ("each absent query modality at its mean train embedding, as Symile scores missing data",
             lambda queries, absent, means: {**{m: FILLS["mean"](None, queries, m, means) for m in absent}, **queries}),
}


def absent_rule(model) -> str | None:
    rule = getattr(model, "absent_queries", None)
    if rule not in ABSENT_QUERIES:
        raise SystemExit(f"the model's absent_queries is {rule!r}; known: {', '.join(map(repr, ABSENT_QUERIES))}")
    return rule


def absent_scoring(model) -> dict[str, str]:
    """The result's `scoring` entry that states the model's rule."""
    rule = absent_rule(model)
    return {"absent_queries": f"{rule or 'none'}: {ABSENT_QUERIES[rule][0]}"}


def completed(model, queries: dict[str, Tensor], absent: Iterable[str], means: dict[str, Tensor]) -> dict[str, Tensor]:
    """The queries a view scores when it lacks the query modalities ``absent``, by the model's rule."""
    return ABSENT_QUERIES[absent_rule(model)][1](queries, list(absent), means)


def own_fallback(model, queries: dict[str, Tensor], dropped: str, means: dict[str, Tensor]) -> dict[str, Tensor]:
    """The queries without ``dropped``, as the model itself answers its absence: its fill_missing from the
    others where it has one, else its absent_queries rule."""
    present = {m: e for m, e in queries.items() if m != dropped}
    filled = own_fill(model, present, dropped)
    return {**present, dropped: filled} if filled is not None else completed(model, present, [dropped], means)


def train_means(model, train: Source) -> dict[str, Tensor]:
    """Each modality's mean train embedding, streamed over the split: the fill of mean imputation."""
    return mean_embeddings(model, train, EVAL_BATCH)
