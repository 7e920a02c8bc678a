"""The robustness sweep: a task's primary retrieval with one query modality corrupted at test time.

For each query modality m, each corruption of :data:`CORRUPTIONS` and each rate p of :data:`RATES`, a
share p of the test queries (the first round(p·n) of one seeded order, so the corrupted rows at a higher
rate include those at a lower one) has m corrupted, and the task's primary hit is scored again. The
candidates, and the other query modality, stay clean. Each query is scored on its own against fixed
candidates, so the accuracy at rate p is exactly the clean hits on the other rows plus the corrupted hits
on these: a curve that is linear in p up to which rows were drawn; its endpoints and slope tell the models
apart.

Reported as metrics ``robustness/{corruption}/{m}@{p}``: the leaderboard draws them as curves.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from polymodal.benchmarks.protocols.missing import FILLS, own_fallback
from polymodal.leaderboard.declarations import Metric

RATES = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Noise power over the embeddings' mean power per coordinate, in dB: 0 dB adds as much noise as there is signal.
SNR_DB = 0.0
PREFIX = "robustness"

#: (model, queries, corrupted modality m, train means, generator) -> the queries with m corrupted in every row.
Corruption = Callable[[object, dict[str, Tensor], str, dict[str, Tensor], torch.Generator], dict[str, Tensor]]


def derangement(n: int, generator: torch.Generator) -> Tensor:
    """A random permutation with no fixed point (n >= 2): each row takes the next row's of a shuffled order."""
    order = torch.randperm(n, generator=generator)
    out = torch.empty(n, dtype=torch.long)
    out[order] = order.roll(-1)
    return out


def _misaligned(model, queries, m, means, generator):
    return {**queries, m: queries[m][derangement(len(queries[m]), generator)]}


def _noisy(model, queries, m, means, generator):
    e = queries[m].float()
    sigma = math.sqrt(e.pow(2).mean().item() / 10 ** (SNR_DB / 10))
    return {**queries, m: e + sigma * torch.randn(e.shape, generator=generator)}


def _missing_mean(model, queries, m, means, generator):
    return {**queries, m: FILLS["mean"](model, queries, m, means)}


def _missing_own(model, queries, m, means, generator):
    return own_fallback(model, queries, m, means)


#: Corruptions by name, in the order the result and the plots list them.
CORRUPTIONS: dict[str, tuple[Corruption, str]] = {
    "missing-own": (_missing_own, "missing, answered by the model's own fallback (its fill_missing, else its "
                    "absent_queries rule)"),
    "missing-mean": (_missing_mean, "missing, filled with its mean train embedding"),
    "misaligned": (_misaligned, "swapped with another test sample's (a random derangement)"),
    "noisy": (_noisy, f"with Gaussian noise added at an SNR of {SNR_DB:g} dB in embedding space"),
}

METRICS = (
    Metric(f"{PREFIX}/*", 0, 1, True, "the primary accuracy with one query modality corrupted at test time in a "
           "share p of the queries (robustness/<corruption>/<modality>@<p>); corruptions: "
           + "; ".join(f"{k}: {why}" for k, (_, why) in CORRUPTIONS.items())),
)


def metric_name(corruption: str, modality: str, rate: float) -> str:
    return f"{PREFIX}/{corruption}/{modality}@{rate:g}"


@torch.no_grad()
def robustness_metrics(
    hits_of: Callable[[dict[str, Tensor]], Tensor],
    model,
    queries: dict[str, Tensor],
    means: dict[str, Tensor],
    seed: int = 0,
) -> dict[str, dict]:
    """The sweep's metrics. ``hits_of(queries)`` gives the task's primary hit (0/1) of each query row."""
    clean = hits_of(queries).double()
    n = len(clean)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    metrics = {}
    for m in queries:
        for corruption, (corrupt, _) in CORRUPTIONS.items():
            corrupted = hits_of(corrupt(model, queries, m, means, generator)).double()
            for rate in RATES:
                mixed = clean.clone()
                rows = order[: round(rate * n)]
                mixed[rows] = corrupted[rows]
                metrics[metric_name(corruption, m, rate)] = {"value": float(mixed.mean()), "n": n}
    return metrics
