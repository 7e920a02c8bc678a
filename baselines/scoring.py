"""Zero-shot scores: predict one modality's row from the others of the same sample.

Each scorer takes the query modalities' embeddings, each (n_q, d) and row-aligned,
and the target modality's candidate embeddings (n_c, d), and returns (n_q, n_c)
scores, higher meaning more likely. ``scale`` turns them into the logits the loss
trained on (for a softmax over candidates); it does not change the ranking.
"""

import functools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def clip_scores(queries: Sequence[Tensor], candidates: Tensor, scale: Tensor | float | None = None) -> Tensor:
    """Σ_q q · cᵀ: the CLIP logits that involve the target (the other pairs are
    the same for every candidate, so they cannot change the ranking)."""
    # The dot product is linear, so summing the queries first costs one matmul.
    return _score(torch.add, queries, candidates, scale)


def mip_scores(queries: Sequence[Tensor], candidates: Tensor, scale: Tensor | float | None = None) -> Tensor:
    """MIP(q_1, ..., q_k, c) = (Π_q q) · cᵀ, the Symile logit of each candidate."""
    return _score(torch.mul, queries, candidates, scale)


def _score(
    combine: Callable[[Tensor, Tensor], Tensor],
    queries: Sequence[Tensor],
    candidates: Tensor,
    scale: Tensor | float | None,
) -> Tensor:
    if not queries:
        raise ValueError("need at least one query modality")
    scores = functools.reduce(combine, queries) @ candidates.T
    return scores if scale is None else scale * scores
