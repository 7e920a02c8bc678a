"""Gated Symile against a loop over the official gate's formulas, one (query, candidate) pair at a time."""

import math

import pytest
import torch
import torch.nn.functional as F

from polymodal.baselines import MODELS
from tests.brute_force import sharded_mean

INPUTS = {"a": 5, "b": 5, "c": 5}


def gated_score_loop(model, target, queries, candidates):
    """Each pair's score as the official ModalityAttentionGate computes it for a (candidate, query) triple:
    the gated vectors built explicitly, then d·exp(logit_scale)·Σ_k c_k Π_m g_m,k."""
    gate = model.gate
    temp = F.softplus(gate.log_temp) + 0.1
    alpha = torch.sigmoid(gate.strength)
    t = model.modalities.index(target)
    names = list(queries)
    out = torch.zeros(len(queries[names[0]]), len(candidates), dtype=candidates.dtype)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            c = candidates[j]
            q = F.normalize(gate.q_proj[target](c), dim=0)
            logits = [F.normalize(gate.k_proj[m](queries[m][i]), dim=0) @ q / temp for m in names]
            null = (gate.null_head(c[None])[0, 0] + gate.null_logit[t]) / temp
            if gate.gate_type == "sigmoid":
                weights = [torch.sigmoid(s) * ((1 - torch.sigmoid(null)) if gate.use_null else 1) for s in logits]
            else:
                weights = list(torch.softmax(torch.stack([*logits, *([null] if gate.use_null else [])]), 0))
            product = c
            for m, w in zip(names, weights):
                e = queries[m][i]
                if gate.neutral_type == "none":
                    g = (1 - alpha) * e + alpha * (w * e)
                else:
                    neutral = F.normalize(gate.neutral[model.modalities.index(m)], dim=0)
                    g = F.normalize((1 - alpha) * e + alpha * (w * e + (1 - w) * neutral), dim=0)
                product = product * g
            out[i, j] = model.dvs * model.logit_scale() * product.sum()
    return out


def _model(**options):
    torch.manual_seed(0)
    model = MODELS["gated-symile"](INPUTS, d_model=6, gate_dim=4, **options).double()
    with torch.no_grad():  # a strong gate, so that the comparison is not with an ungated Symile
        model.gate.strength.fill_(0.3)
    return model


def _embeddings(model, n=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {m: model.encode(m, torch.randn(n, d, generator=g, dtype=torch.float64)) for m, d in INPUTS.items()}


VARIANTS = [{}, {"gate_type": "softmax"}, {"gate_use_null": False}, {"gate_neutral": "none"},
            {"gate_neutral": "ones", "gate_type": "softmax", "gate_use_null": False}]


@pytest.mark.parametrize("options", VARIANTS)
@pytest.mark.parametrize("target", ["a", "b", "c"])
def test_gated_scores_match_the_gate_written_out_per_pair(options, target):
    model = _model(**options)
    e = _embeddings(model)
    queries = {m: v[:5] for m, v in e.items() if m != target}
    got = model.score(queries, target, e[target])
    assert got.shape == (5, 7)
    torch.testing.assert_close(got, gated_score_loop(model, target, queries, e[target]), rtol=1e-9, atol=1e-9)


def test_a_candidates_score_never_depends_on_the_other_candidates():
    """No leak: each pair is gated by its own candidate, so the true target cannot shape another's score."""
    model = _model()
    e = _embeddings(model, n=8)
    queries = {"b": e["b"], "c": e["c"]}
    full = model.score(queries, "a", e["a"])
    for j in range(8):
        torch.testing.assert_close(model.score(queries, "a", e["a"][j:j + 1])[:, 0], full[:, j])


def _ce(logits, target):
    return float((torch.logsumexp(logits, 0) - logits[target]).detach())


def test_the_pair_loss_is_each_querys_ce_over_its_sampled_candidates():
    model = _model(negatives="pair", pair_negatives=4)
    e = _embeddings(model)
    got = model.loss(e, generator=torch.Generator().manual_seed(5))
    g, total = torch.Generator().manual_seed(5), 0.0
    for target in model.modalities:
        drawn = torch.randint(6, (7, 4), generator=g)
        queries = {m: v for m, v in e.items() if m != target}
        scores = gated_score_loop(model, target, queries, e[target])
        for i in range(7):
            negatives = [int(k) + (int(k) >= i) for k in drawn[i]]
            assert i not in negatives
            total += _ce(scores[i, [i, *negatives]], 0)
    assert got.item() == pytest.approx(total / (3 * 7), rel=1e-9)


def test_the_in_batch_loss_is_symiles_with_every_pair_gated():
    model = _model()
    e = _embeddings(model)
    got = model.loss(e, generator=torch.Generator().manual_seed(5))
    g, total = torch.Generator().manual_seed(5), 0.0
    for target in model.modalities:
        others = [m for m in model.modalities if m != target]
        perms = {m: torch.randperm(7, generator=g) for m in others}
        shuffled = gated_score_loop(model, target, {m: e[m][perms[m]] for m in others}, e[target])
        true = gated_score_loop(model, target, {m: e[m] for m in others}, e[target])
        for i in range(7):
            logits = shuffled[:, i].clone()
            logits[i] = true[i, i]
            total += _ce(logits, i)
    assert got.item() == pytest.approx(total / (3 * 7), rel=1e-9)


@pytest.mark.parametrize("negatives", ["n", "pair"])
def test_local_rows_average_to_the_global_loss(negatives):
    model = _model(negatives=negatives, pair_negatives=3)
    e = _embeddings(model, n=8)
    whole = model.loss(e, generator=torch.Generator().manual_seed(2))
    parts = [slice(0, 3), slice(3, 8)]
    sharded = sharded_mean(lambda p: model.loss(e, rows=p, generator=torch.Generator().manual_seed(2)), parts, 8)
    assert sharded.item() == pytest.approx(whole.item(), rel=1e-9)


def test_the_official_defaults_and_the_gates_weight_decay():
    model = MODELS["gated-symile"](INPUTS, d_model=8)
    assert model.dvs == 8  # d^((M-1)/2) with M = 3
    assert model.logit_scale().item() == pytest.approx(1.0)
    assert torch.sigmoid(model.gate.strength).item() == pytest.approx(0.0474, abs=1e-4)
    assert (F.softplus(model.gate.log_temp) + 0.1).item() == pytest.approx(math.log1p(0.7) + 0.1)
    names = model.no_weight_decay()
    assert names and all(n.startswith("gate.") for n in names)
    assert {"gate.neutral", "gate.strength"} <= names
    with pytest.raises(ValueError, match="negatives must be one of"):
        MODELS["gated-symile"](INPUTS, negatives="all")


@pytest.mark.parametrize("options", VARIANTS)
def test_paired_scores_are_the_diagonal_of_all_pairs(options):
    model = _model(**options)
    e = _embeddings(model)
    queries = {m: e[m] for m in ("b", "c")}
    paired = model.gated_scores("a", queries, e["a"], paired=True)
    torch.testing.assert_close(paired, model.gated_scores("a", queries, e["a"]).diagonal(), rtol=1e-12, atol=1e-12)
