"""ConFu's loss and scores against the six InfoNCE terms written out, and its fused two-to-one retrieval."""

import dataclasses
import itertools
import math

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


def _xor_world(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Symile's XOR at p̂ = 1: c = a xor b, so every pair is independent and only a fused pair predicts the third."""
    g = torch.Generator().manual_seed(seed)
    a, b = (torch.randint(0, 2, (n, 5), generator=g) for _ in "ab")
    return {"a": a.float(), "b": b.float(), "c": (a ^ b).float()}


def _trained_val_loss(tmp_path, **options) -> float:
    from polymodal.benchmarks.tasks import load_task
    from polymodal.benchmarks.training import fit

    torch.manual_seed(0)
    model = MODELS["confu"](INPUTS, d_model=16, **options)
    config = dataclasses.replace(load_task("xor").train_defaults, epochs=8, batch_size=250)  # XOR's lr: 0.05
    return fit(model, _xor_world(4000, 0), _xor_world(1000, 1), config, tmp_path, progress=False)["best_val_loss"]


def test_at_the_xor_tasks_lr_confu_learns_only_at_its_lr_scale(tmp_path):
    """At the task's own lr the embeddings collapse: every term stays at chance, ln(250) / 2. At a tenth of
    it the fused pairs learn c."""
    chance = math.log(250) / 2
    assert _trained_val_loss(tmp_path / "full", lr_scale=1.0) == pytest.approx(chance, abs=0.01)
    assert _trained_val_loss(tmp_path / "scaled") < chance - 0.2


def test_every_parameter_trains_at_the_tasks_lr_times_lr_scale():
    from polymodal.benchmarks.training import param_groups

    model = _model(lr_scale=0.25)
    groups = param_groups(model, 0.01, 0.04)
    assert {g["lr"] for g in groups} == {0.01}
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())
    assert {g["lr"] for g in param_groups(MODELS["clip"](INPUTS, d_model=6), 0.01, 0.04)} == {0.04}  # no lr_scale
    with pytest.raises(ValueError, match="lr_scale must be > 0"):
        _model(lr_scale=0.0)
