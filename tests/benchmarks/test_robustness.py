"""The robustness sweep: each rate scores exactly its share of corrupted queries, each corruption does what
it says, and the model's own fallback is the one it declares."""

import pytest
import torch

from polymodal.baselines import MODELS
from polymodal.benchmarks.protocols import robustness
from polymodal.benchmarks.protocols.robustness import CORRUPTIONS, RATES, derangement, metric_name, robustness_metrics

INPUTS = {"a": 4, "b": 4, "c": 4}
N = 40


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = MODELS["clip"](INPUTS, d_model=4).eval()
    g = torch.Generator().manual_seed(1)
    target = torch.nn.functional.normalize(torch.randn(N, 4, generator=g), dim=1)
    # Queries that point at their own target, with noise, so that the clean accuracy is high but not 1.
    queries = {m: target + 0.3 * torch.randn(N, 4, generator=g) for m in ("a", "c")}
    means = {m: torch.randn(4, generator=g) for m in INPUTS}

    def hits_of(q):
        return (model.score(q, "b", target).argmax(1) == torch.arange(N)).double()

    return model, queries, means, hits_of


def test_every_rate_mixes_exactly_its_share_of_corrupted_rows(setup):
    model, queries, means, hits_of = setup
    metrics = robustness_metrics(hits_of, model, queries, means, seed=3)
    assert len(metrics) == len(queries) * len(CORRUPTIONS) * len(RATES)
    clean = hits_of(queries).mean().item()
    for m in queries:
        mean_filled = hits_of({**queries, m: means[m].expand(N, -1)}).mean().item()
        assert metrics[metric_name("missing-mean", m, 0)]["value"] == pytest.approx(clean)
        assert metrics[metric_name("missing-mean", m, 1)]["value"] == pytest.approx(mean_filled)
        # CLIP has no fill of its own and scores an absent query by dropping its term.
        alone = hits_of({k: v for k, v in queries.items() if k != m}).mean().item()
        assert metrics[metric_name("missing-own", m, 1)]["value"] == pytest.approx(alone)
        for corruption in CORRUPTIONS:
            values = [metrics[metric_name(corruption, m, p)]["value"] for p in RATES]
            assert values[0] == pytest.approx(clean)
            # Per-query scoring: each step of 0.25 replaces a quarter of the rows, so the value moves by at most that.
            assert all(abs(b - a) <= 0.25 + 1e-9 for a, b in zip(values, values[1:]))
    assert clean > 0.6
    assert metrics[metric_name("misaligned", "a", 1)]["value"] < clean / 2  # swapped queries point elsewhere


def test_the_corrupted_rows_are_nested_across_rates(setup):
    """At a higher rate, every row corrupted at a lower one stays corrupted: counted here by corrupting so
    that every corrupted row misses and every clean one hits."""
    model, queries, means, _ = setup

    def hits_of(q):
        if "a" not in q:
            return torch.zeros(N, dtype=torch.float64)
        return (q["a"] == queries["a"]).all(1).double()  # a corrupted row is a miss

    metrics = robustness_metrics(hits_of, model, queries, means)
    for corruption in CORRUPTIONS:
        for p in RATES:
            assert metrics[metric_name(corruption, "a", p)]["value"] == pytest.approx(1 - round(p * N) / N)


def test_a_derangement_moves_every_row():
    g = torch.Generator().manual_seed(0)
    for n in (2, 3, 10, 101):
        perm = derangement(n, g)
        assert sorted(perm.tolist()) == list(range(n)) and (perm != torch.arange(n)).all()


def test_the_noise_has_the_stated_power(monkeypatch):
    e = torch.randn(20000, 8) * 3
    for snr in (0.0, 10.0):
        monkeypatch.setattr(robustness, "SNR_DB", snr)
        noisy = CORRUPTIONS["noisy"][0](None, {"a": e}, "a", {}, torch.Generator().manual_seed(0))["a"]
        ratio = (noisy - e).pow(2).mean() / e.pow(2).mean()
        assert ratio.item() == pytest.approx(10 ** (-snr / 10), rel=0.03)


def test_the_models_own_fallback_is_its_fill_where_it_has_one():
    torch.manual_seed(0)
    model = MODELS["synergy-clip"](INPUTS, d_model=4).eval()
    e = {m: model.encode(m, torch.randn(6, 4)) for m in INPUTS}
    queries = {m: e[m] for m in ("a", "c")}
    own = CORRUPTIONS["missing-own"][0](model, queries, "a", {}, torch.Generator())
    torch.testing.assert_close(own["a"], model.fill_missing({"c": e["c"]}, "a"))
    symile = MODELS["symile"](INPUTS, d_model=4)  # no fill: its absent_queries rule, the train mean
    means = {m: torch.full((4,), float(k)) for k, m in enumerate(INPUTS)}
    filled = CORRUPTIONS["missing-own"][0](symile, queries, "a", means, torch.Generator())
    torch.testing.assert_close(filled["a"], means["a"].expand(6, -1))
