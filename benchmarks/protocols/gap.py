"""Modality-gap measures (baselines.gap) as extra metrics of any task's evaluation."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from polymodal.baselines.gap import gap_metrics
from polymodal.leaderboard.declarations import Metric
from polymodal.leaderboard.outcomes import draws_outcome

EVAL_BATCH = 4096
#: What gap_evaluation reports, as tasks declare it (every measure is taken on L2-normalised embeddings).
GAP_METRICS = (
    Metric("gap_centroid/*", 0, 2, None, "distance between two modalities' embedding centroids (the modality gap)"),
    Metric("alignment/*", -1, 1, True, "mean cosine between the paired test embeddings of two modalities"),
    # log mean exp(-2 |u - v|^2) with |u - v|^2 <= 4 on the sphere: never below -8.
    Metric("uniformity/*", -8, 0, False, "log mean exp(-2|u-v|²) over pairs of one modality's embeddings; "
           "lower is spread more evenly"),
)


@torch.no_grad()
def embed(model, data: dict[str, Tensor], batch: int = EVAL_BATCH) -> dict[str, Tensor]:
    """Every modality of a split, encoded a batch at a time."""
    return {m: torch.cat([model.encode(m, x) for x in rows.split(batch)]) for m, rows in data.items()}


def gap_evaluation(draws: list[dict[str, Tensor]]) -> dict[str, dict]:
    """gap_metrics of row-aligned test embeddings, as metrics.

    One draw gives each measure with n its rows; several (XOR's test draws) give the mean over
    draws, its standard error, and n the number of draws, as the task's own metrics do.
    """
    measured = [gap_metrics(embeddings) for embeddings in draws]
    k = len(measured)
    metrics = {}
    for name in measured[0]:
        values = np.array([m[name] for m in measured])
        if k > 1:
            metrics[name] = {"value": float(values.mean()), "stderr": float(stats.sem(values)), "n": k,
                             "outcomes": draws_outcome(values)}
        else:
            metrics[name] = {"value": float(values[0]), "n": len(next(iter(draws[0].values())))}
    return metrics
