"""Ranking models on a set of datasets: only those with a result on every one of them.

A model run on fewer is listed below the ranking with its coverage and the
mean over what it ran, unranked: a mean over other datasets is another
number, and ranking it would let a model pick its easiest datasets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from polymodal.leaderboard.uncertainty import (
    PAIRED,
    difference_interval,
    rank_groups,
    score_interval,
    shared_ranks,
    significant,
)

Scores = dict[str, dict[str, Any]]  # column (a dataset) -> the model's metric there
GROUPS = (f"models whose difference from the best of their group is not significant at 95% share a group "
          f"({PAIRED}; where outcomes are missing, from standard errors)")


def rank(scores: dict[str, Scores], columns: Sequence[str], labels: dict[str, str],
         higher_is_better: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ranked entries, partial entries) of the models in `scores`, keyed by model key, on `columns`."""
    sign = 1 if higher_is_better else -1
    full = [model for model, by_column in scores.items() if all(c in by_column for c in columns)] if columns else []
    metrics = {model: [scores[model][c] for c in columns] for model in full}
    score = {model: _mean(values) for model, values in metrics.items()}
    order = sorted(full, key=lambda model: (-sign * score[model], labels[model], model))
    ranks = shared_ranks([sign * score[m] for m in order])

    def differs(i: int, j: int) -> bool | None:
        return significant(difference_interval(metrics[order[i]], metrics[order[j]]))

    groups = rank_groups([sign * score[m] for m in order], differs)
    ranked = [{"model": labels[m], "model_key": m, "rank": r, "group": g, "score": score[m],
               "interval": score_interval(metrics[m]).as_json(), "coverage": [len(columns), len(columns)]}
              for m, r, g in zip(order, ranks, groups)]
    partial = [{"model": labels[m], "model_key": m, "rank": None, "group": None,
                "score": _mean([v for c, v in scores[m].items() if c in columns]) if _ran_any(scores[m], columns) else None,
                "interval": None, "coverage": [sum(c in scores[m] for c in columns), len(columns)]}
               for m in scores if m not in full]
    partial.sort(key=lambda e: (-e["coverage"][0], labels[e["model_key"]], e["model_key"]))
    return ranked, partial


def _ran_any(by_column: Scores, columns: Sequence[str]) -> bool:
    return any(c in by_column for c in columns)


def _mean(metrics: Sequence[dict[str, Any]]) -> float:
    return math.fsum(m["value"] for m in metrics) / len(metrics)
