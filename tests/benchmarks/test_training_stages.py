"""Two-stage training (baselines/stages.py), TRML's and Synergy-CLIP's papers' recipe: the contrastive model
first, selected on its own loss; then the missing-modality head on it frozen, selected on the head's loss."""

import json

import pytest
import torch
from safetensors.torch import load_file

from polymodal.baselines import MODELS
from polymodal.benchmarks import training
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.benchmarks.training import fit

pytestmark = pytest.mark.usefixtures("one_thread")

INPUTS = {"a": 4, "b": 4, "c": 4}
CONFIG = TrainConfig(epochs=3, batch_size=16, lr=0.01, threads=1)
HEADS = {"trml": ("generators", "inference"), "synergy-clip": ("reconstructors", "reconstruction")}
#: A run whose base trains exactly as the first stage does: TRML's base is pairwise CLIP; Synergy-CLIP's joint
#: recipe trains its reconstructors on detached embeddings, so its encoders follow the same steps.
SAME_BASE = {"trml": ("clip", {}), "synergy-clip": ("synergy-clip", {"recipe": "joint"})}


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=g)
    return {m: torch.cat([z, torch.randn(n, 2, generator=g)], 1) for m in INPUTS}


def _fit(run_dir, name, resume=False, **options):
    torch.manual_seed(0)
    model = MODELS[name](INPUTS, d_model=8, **options)
    return model, fit(model, _data(96, 0), _data(40, 1), CONFIG, run_dir, resume=resume, progress=False)


def _split(state: dict, head: str) -> tuple[dict, dict]:
    """(base, head) parameters of a state dict."""
    base = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    return base, {k: v for k, v in state.items() if k.startswith(head + ".")}


@pytest.mark.parametrize("name", HEADS)
def test_the_head_trains_on_the_best_base_model_frozen(tmp_path, name):
    head, second = HEADS[name]
    torch.manual_seed(0)
    initial_head = _split(MODELS[name](INPUTS, d_model=8).state_dict(), head)[1]
    model, summary = _fit(tmp_path, name)
    stage_dir = tmp_path / f"stage-{second}"
    assert list(summary["stages"]) == ["contrastive", second]
    # The base the head trained on is the first stage's best epoch, which the second did not change.
    other, options = SAME_BASE[name]
    _, reference = _fit(tmp_path / "reference", other, **options)
    assert reference["best_epoch"] == summary["best_epoch"]
    base, trained_head = _split(load_file(tmp_path / training.BEST), head)
    expected = _split(load_file(tmp_path / "reference" / training.BEST), head)[0]
    assert base.keys() == expected.keys() and all(torch.equal(base[k], expected[k]) for k in base)
    assert any(not torch.equal(trained_head[k], initial_head[k]) for k in trained_head)
    # Each stage selects on its own validation loss: the head's stage on the head's loss alone.
    log = [json.loads(line) for line in (stage_dir / training.LOG).read_text().splitlines()]
    best = min(range(len(log)), key=lambda e: log[e]["val_loss"])
    assert summary["stages"][second]["best_epoch"] == best
    assert summary["best_epoch"] == summary["stages"]["contrastive"]["best_epoch"]
    assert all(p.requires_grad for p in model.parameters()) and model.stage is None  # left as built


def test_the_first_stage_is_the_base_objective_alone():
    """Trained alone, TRML's base is pairwise CLIP, weight for weight: no fill, no L_sml reaches it."""
    for name in ("trml", "clip"):
        torch.manual_seed(0)
        model = MODELS[name](INPUTS, d_model=8)
        if name == "trml":
            model.set_stage("contrastive")
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.01)
        for batch in range(4):
            x = {m: v[batch * 24:(batch + 1) * 24] for m, v in _data(96, 0).items()}
            loss = model.loss(model(x), generator=torch.Generator().manual_seed(batch))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if name == "trml":
            trml = {k: v for k, v in model.state_dict().items() if not k.startswith("generators.")}
        else:
            clip = model.state_dict()
    assert trml.keys() == clip.keys() and all(torch.allclose(trml[k], clip[k]) for k in clip)


@pytest.mark.parametrize("name", HEADS)
def test_each_stage_trains_only_its_part(name):
    head, second = HEADS[name]
    model = MODELS[name](INPUTS, d_model=8)
    x = _data(24, 0)
    for stage in model.stages():
        model.set_stage(stage)
        model.zero_grad(set_to_none=True)
        model.loss(model(x), generator=torch.Generator().manual_seed(0)).backward()
        in_head = {id(p) for p in getattr(model, head).parameters()}
        for p in model.parameters():
            assert (p.grad is not None) == ((id(p) in in_head) == (stage == second)), stage
    with pytest.raises(ValueError, match="unknown stage"):
        model.set_stage("warmup")


@pytest.mark.parametrize("name", HEADS)
def test_joint_keeps_one_run(tmp_path, name):
    _, summary = _fit(tmp_path, name, recipe="joint")
    assert "stages" not in summary and not list(tmp_path.glob("stage-*"))


@pytest.mark.parametrize("kill_after", ["first stage", "an epoch of the second"])
def test_a_run_killed_between_or_within_stages_resumes_to_the_same_weights(tmp_path, monkeypatch, kill_after):
    _fit(tmp_path / "whole", "trml")
    checkpoint = training._checkpoint

    def killed(run_dir, model, optimizer, scheduler, generator, state, improved):
        second = run_dir.name.startswith("stage-")
        if second and kill_after == "first stage":
            raise KeyboardInterrupt  # before the second stage writes anything
        checkpoint(run_dir, model, optimizer, scheduler, generator, state, improved)
        if second and state["epoch"] == 0:
            raise KeyboardInterrupt  # right after its first checkpoint

    monkeypatch.setattr(training, "_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "cut", "trml")
    monkeypatch.setattr(training, "_checkpoint", checkpoint)
    _fit(tmp_path / "cut", "trml", resume=True)
    whole, cut = load_file(tmp_path / "whole" / training.BEST), load_file(tmp_path / "cut" / training.BEST)
    assert whole.keys() == cut.keys() and all(torch.equal(whole[k], cut[k]) for k in whole)
    losses = lambda run: [(e["train_loss"], e["val_loss"]) for e in map(json.loads, (run / training.LOG).read_text().splitlines())]
    assert losses(tmp_path / "cut" / "stage-inference") == losses(tmp_path / "whole" / "stage-inference")
