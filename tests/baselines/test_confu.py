"""ConFu's loss and scores against the six InfoNCE terms written out, and its fused two-to-one retrieval."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from polymodal.baselines import MODELS
from tests.brute_force import infonce_loop, sharded_mean

INPUTS = {"a": 5, "b": 5, "c": 5}


def _model(**options):
    torch.manual_seed(0)
    return MODELS["confu"](INPUTS, d_model=6, fusion_hidden=8, **options).double().eval()  # eval: no dropout


def _batch(n=7):
    g = torch.Generator().manual_seed(1)
    return {m: torch.randn(n, d, generator=g, dtype=torch.float64) for m, d in INPUTS.items()}


def _z(model, features):
    """The unimodal and fused embeddings, each computed here from the model's layers."""
    z = {m: F.normalize(model.projections[m](f), dim=1) for m, f in features.items()}
    for a, b in itertools.combinations("abc", 2):
        mlp = model.fusions[f"{a}+{b}"]
        z[a + b] = F.normalize(mlp(torch.cat([features[a], features[b]], dim=1)), dim=1)
    return z


@pytest.mark.parametrize("lam", [0.5, 0.2])
def test_the_loss_weighs_three_pairwise_and_three_fused_infonce_terms(lam):
    model = _model(fusion_weight=lam)
    embeddings = model(_batch())
    assert {"a+b", "a+c", "b+c"} <= set(embeddings)  # forward fuses, so that DDP gathers the fused rows
    z = _z(model, {m: embeddings[m] for m in "abc"})
    scale, rows = model.logit_scale().item(), range(7)  # 1/0.07 up to the float32 of its log
    pairwise = sum(infonce_loop(z[x].detach(), z[y].detach(), scale, rows) for x, y in [("a", "b"), ("b", "c"), ("c", "a")])
    fused = sum(infonce_loop(z[p].detach(), z[t].detach(), scale, rows) for p, t in [("ab", "c"), ("ac", "b"), ("bc", "a")])
    assert model.loss(embeddings).item() == pytest.approx((lam * fused + (1 - lam) * pairwise) / 6, rel=1e-9)


def test_without_fused_rows_the_loss_fuses_them_itself():
    model = _model()
    batch = _batch()
    with_fused = model(batch)
    alone = {m: model.encode(m, x) for m, x in batch.items()}
    assert model.loss(alone).item() == pytest.approx(model.loss(with_fused).item(), rel=1e-12)


def test_two_queries_are_fused_and_one_is_projected():
    model = _model()
    e = {m: model.encode(m, x) for m, x in _batch().items()}
    z = _z(model, e)
    torch.testing.assert_close(model.score({"a": e["a"], "c": e["c"]}, "b", e["b"]), (z["ac"] @ z["b"].T) / 0.07)
    torch.testing.assert_close(model.score({"c": e["c"], "a": e["a"]}, "b", e["b"]), (z["ac"] @ z["b"].T) / 0.07)
    torch.testing.assert_close(model.score({"b": e["b"]}, "a", e["a"]), (z["b"] @ z["a"].T) / 0.07)


def test_lambda_zero_drops_the_fusion_heads_and_is_pairwise_clip():
    model = _model(fusion_weight=0.0)
    assert len(model.fusions) == 0
    e = {m: model.encode(m, x) for m, x in _batch().items()}
    z = {m: F.normalize(model.projections[m](v), dim=1) for m, v in e.items()}
    torch.testing.assert_close(model.score({"a": e["a"], "c": e["c"]}, "b", e["b"]), ((z["a"] + z["c"]) @ z["b"].T) / 0.07)


def test_the_temperature_is_fixed_and_the_fusion_mlp_is_the_official_one():
    model = MODELS["confu"](INPUTS, d_model=6)
    assert not model.logit_scale.log_scale.requires_grad
    assert model.logit_scale().item() == pytest.approx(1 / 0.07)
    layers = [type(layer).__name__ for layer in model.fusions["a+b"]]
    assert layers == ["Linear", "ReLU", "Dropout", "Linear", "LeakyReLU", "Dropout"]
    assert model.fusions["a+b"][0].in_features == 12 and model.fusions["a+b"][0].out_features == 512
    with pytest.raises(ValueError, match="exactly three"):
        MODELS["confu"]({"a": 2, "b": 2})


def test_local_rows_average_to_the_global_loss():
    model = _model()
    embeddings = model(_batch(8))
    whole = model.loss(embeddings)
    sharded = sharded_mean(lambda p: model.loss(embeddings, rows=p), [slice(0, 3), slice(3, 8)], 8)
    assert sharded.item() == pytest.approx(whole.item(), rel=1e-9)
