"""Standard errors and bootstrap intervals of the tasks' metrics, against computations made by hand."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from polymodal.benchmarks.protocols.summary import hit_metric, mean_metric
from polymodal.benchmarks.tasks.symile_m3.task import bootstrap


def test_mean_metric_gives_the_sample_standard_error():
    # mean 2.5, sum of squared deviations 5, so the sample variance is 5/3 and the standard error sqrt(5/12).
    metric = mean_metric(np.array([1.0, 2.0, 3.0, 4.0]))
    assert metric == {"value": 2.5, "stderr": pytest.approx(math.sqrt(5 / 12), rel=1e-12), "n": 4}
    assert mean_metric(torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True))["stderr"] == metric["stderr"]
    assert mean_metric(np.array([0.7]))["stderr"] is None


def test_hit_metric_stderr_is_the_binomial_one_with_n_minus_1():
    hits = np.array([1] * 30 + [0] * 70)  # p = 0.3: the sample variance of 0/1 values is n p (1 - p) / (n - 1)
    assert hit_metric(hits)["stderr"] == pytest.approx(math.sqrt(0.3 * 0.7 / 99), rel=1e-12)
    assert hit_metric(np.ones(20))["stderr"] == 0.0


def hits(n: int, p: float = 0.3, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(np.float64)


def test_bootstrap_interval_is_the_percentiles_of_the_resampled_hit_rate():
    sample = hits(2000)
    p, n = sample.mean(), len(sample)
    stderr, low, high = bootstrap(sample)
    assert low < p < high
    # The resampled hit rate is Binomial(n, p) / n: its standard deviation and 2.5th and 97.5th percentiles,
    # to within what 1000 resamples can tell.
    assert stderr == pytest.approx(math.sqrt(p * (1 - p) / n), rel=0.1)
    assert low == pytest.approx(stats.binom.ppf(0.025, n, p) / n, abs=0.004)
    assert high == pytest.approx(stats.binom.ppf(0.975, n, p) / n, abs=0.004)


def test_bootstrap_interval_shrinks_as_the_queries_grow():
    widths = [high - low for _, low, high in (bootstrap(hits(n)) for n in (200, 2000, 20000))]
    # About 1/sqrt(n): each tenfold n narrows the interval about threefold.
    assert widths[0] / widths[1] == pytest.approx(math.sqrt(10), rel=0.25)
    assert widths[1] / widths[2] == pytest.approx(math.sqrt(10), rel=0.25)


def test_bootstrap_is_reproducible_from_its_seed():
    sample = hits(500)
    assert bootstrap(sample) == bootstrap(sample.copy())
    assert bootstrap(sample, seed=1) == bootstrap(sample, seed=1) != bootstrap(sample)
