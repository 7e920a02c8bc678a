"""Per-query values summarised as a task's metrics: the mean, its standard error, and, for hits, every
query's outcome, which the leaderboard's paired bootstrap reads."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from polymodal.leaderboard.outcomes import hits_outcome


def mean_metric(values: Tensor | np.ndarray) -> dict:
    """The mean over queries, with its standard error."""
    values = torch.as_tensor(values).detach().cpu().double().numpy()  # scipy reads numpy
    n = len(values)
    # ddof=1, the sample standard error: it holds for values that are not hits, and for 0/1 hits it is the
    # binomial sqrt(p(1-p)/n) but for a factor sqrt(n/(n-1)).
    stderr = float(stats.sem(values)) if n > 1 else None
    return {"value": float(values.mean()), "stderr": stderr, "n": n}


def hit_metric(hits: Tensor | np.ndarray) -> dict:
    """The hit rate, with every query's hit kept."""
    return {**mean_metric(hits), "outcomes": hits_outcome(torch.as_tensor(hits).bool().numpy())}
