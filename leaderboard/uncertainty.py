"""Intervals for scores, paired tests between models, shared ranks and rank groups.

A score is the mean of one metric over a set of datasets. Where every result
keeps its outcomes (leaderboard/outcomes.py), its interval is a percentile
bootstrap: each dataset's test queries (or test draws) are resampled on their
own and the resampled means averaged. The difference between two models is
bootstrapped paired, the same resampled queries scoring both, which cancels
what the queries share. Where outcomes are missing, results that give a
standard error fall back to a normal approximation; every interval says which
method made it.

Resampling 0/1 hits is done exactly but cheaply: the mean of n hits drawn with
replacement is Binomial(n, p)/n, and a paired difference of hits depends only
on how many queries one model got and the other missed, a multinomial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from polymodal.leaderboard.outcomes import decode

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
Z = 1.959963984540054  # the normal quantile of 0.975
BOOTSTRAP = f"percentile bootstrap, {RESAMPLES} resamples of each dataset's test queries or draws (seed {SEED})"
PAIRED = f"paired percentile bootstrap, {RESAMPLES} resamples of the queries or draws both models share (seed {SEED})"
NORMAL = "normal approximation, ±1.96 × the results' standard error"
UNPAIRED = "unpaired normal approximation from the results' standard errors"
NONE = "none: a result keeps neither its outcomes nor a standard error"

Metric = dict[str, Any]  # a result's {"value", "stderr", "n", "outcomes"}


@dataclass(frozen=True)
class Interval:
    low: float | None
    high: float | None
    method: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def score_interval(metrics: Sequence[Metric]) -> Interval:
    """The 95% interval of the mean of `metrics`' values (one per dataset)."""
    if all("outcomes" in m for m in metrics):
        rng = np.random.default_rng(SEED)
        means = np.mean([_resampled_mean(decode(m["outcomes"]), rng) for m in metrics], axis=0)
        return _percentiles(means, BOOTSTRAP)
    if all(m.get("stderr") is not None for m in metrics):
        score = math.fsum(m["value"] for m in metrics) / len(metrics)
        half = Z * _pooled_stderr([m["stderr"] for m in metrics])
        return Interval(score - half, score + half, NORMAL)
    return Interval(None, None, NONE)


def difference_interval(a: Sequence[Metric], b: Sequence[Metric]) -> Interval:
    """The 95% interval of mean(a) - mean(b), dataset by dataset paired where both keep comparable outcomes."""
    pairs = [_paired_outcomes(x, y) for x, y in zip(a, b)]
    if all(pair is not None for pair in pairs):
        rng = np.random.default_rng(SEED)
        return _percentiles(np.mean([_resampled_difference(x, y, rng) for x, y in pairs], axis=0), PAIRED)
    if all(m.get("stderr") is not None for m in (*a, *b)):
        difference = math.fsum(x["value"] - y["value"] for x, y in zip(a, b)) / len(a)
        half = Z * math.hypot(_pooled_stderr([m["stderr"] for m in a]), _pooled_stderr([m["stderr"] for m in b]))
        return Interval(difference - half, difference + half, UNPAIRED)
    return Interval(None, None, NONE)


def significant(interval: Interval) -> bool | None:
    """Whether the difference's interval excludes 0; None where it could not be tested."""
    if interval.low is None:
        return None
    return interval.low > 0 or interval.high < 0


def tied(a: float, b: float) -> bool:
    # Means of the same values summed in another order differ in the last bits.
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def shared_ranks(scores: Sequence[float]) -> list[int]:
    """Competition ranks of scores sorted best first: tied scores share a rank (1, 1, 3)."""
    ranks: list[int] = []
    for i, score in enumerate(scores):
        ranks.append(ranks[-1] if i and tied(score, scores[i - 1]) else i + 1)
    return ranks


def rank_groups(scores: Sequence[float], differs: Any) -> list[int]:
    """Rank groups of entries sorted best first. A group starts at its best entry and takes each next entry
    whose difference from that one is not significant (or that ties it); `differs(i, j)` says whether entries
    i and j differ significantly (None: untested, which starts a new group, as nothing shows they overlap)."""
    groups: list[int] = []
    leader = 0
    for i, score in enumerate(scores):
        if i and tied(score, scores[i - 1]):
            groups.append(groups[-1])
        elif i and differs(leader, i) is False:
            groups.append(groups[leader])
        else:
            leader = i
            groups.append(len(set(groups)) + 1)
    return groups


def _resampled_mean(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if _is_hits(values):
        return rng.binomial(len(values), values.mean(), size=RESAMPLES) / len(values)
    return values[rng.integers(len(values), size=(RESAMPLES, len(values)))].mean(axis=1)


def _resampled_difference(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(a)
    if _is_hits(a) and _is_hits(b):
        only_a, only_b = float(((a == 1) & (b == 0)).sum()), float(((a == 0) & (b == 1)).sum())
        counts = rng.multinomial(n, [only_a / n, only_b / n, 1 - (only_a + only_b) / n], size=RESAMPLES)
        return (counts[:, 0] - counts[:, 1]) / n
    index = rng.integers(n, size=(RESAMPLES, n))
    return (a[index] - b[index]).mean(axis=1)


def _paired_outcomes(a: Metric, b: Metric) -> tuple[np.ndarray, np.ndarray] | None:
    # Paired only when both list the same queries (or draws): the same form and count.
    oa, ob = a.get("outcomes"), b.get("outcomes")
    if oa is None or ob is None or oa["form"] != ob["form"]:
        return None
    x, y = decode(oa), decode(ob)
    return (x, y) if len(x) == len(y) else None


def _is_hits(values: np.ndarray) -> bool:
    return bool(np.all((values == 0) | (values == 1)))


def _pooled_stderr(stderrs: Sequence[float]) -> float:
    """The standard error of a mean over datasets, whose own errors are independent."""
    return math.sqrt(math.fsum(s * s for s in stderrs)) / len(stderrs)


def _percentiles(samples: np.ndarray, method: str) -> Interval:
    low, high = np.percentile(samples, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return Interval(float(low), float(high), method)
