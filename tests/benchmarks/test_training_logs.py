"""Training logs like open_clip's: learning-rate schedules, step lines, TensorBoard and W&B, and their resume."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from polymodal.baselines import MODELS
from polymodal.benchmarks import training
from polymodal.benchmarks.lr_schedules import SCHEDULES
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.benchmarks.training import Logging, fit
from tests.helpers import killed_on_call

INPUTS = {"a": 4, "b": 4, "c": 4}


def _open_clip_cosine(base_lr, warmup, steps, step):
    """open_clip's cosine_lr as its scheduler.py writes it, for one step."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    e, es = step - warmup, steps - warmup
    return 0.5 * (1 + math.cos(math.pi * e / es)) * base_lr


@pytest.mark.parametrize("warmup", [0, 1, 4])
def test_the_cosine_schedule_is_open_clips(warmup):
    for step in range(20):
        assert SCHEDULES["cosine"](step, warmup, 20) == pytest.approx(_open_clip_cosine(1.0, warmup, 20, step))


def test_the_constant_schedule_warms_up_linearly_then_holds():
    assert [SCHEDULES["constant"](s, 4, 10) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert SCHEDULES["constant"](0, 0, 10) == 1.0


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randint(0, 2, (n, d), generator=g).float() for m, d in INPUTS.items()}


def _fit(run_dir, config, logging=Logging(every=2), resume=False, model_name="symile", **model_options):
    torch.manual_seed(0)
    model = MODELS[model_name](INPUTS, d_model=8, **model_options)
    summary = fit(model, _data(96, 0), _data(32, 1), config, run_dir, resume=resume, progress=False, logging=logging)
    return model, summary


CONFIG = TrainConfig(epochs=4, batch_size=16, lr=0.01, lr_schedule="cosine", warmup=3, threads=1)


def _steps(run_dir):
    return [json.loads(line) for line in (run_dir / training.STEPS).read_text().splitlines()]


def test_step_lines_hold_the_scheduled_lr_loss_and_logit_scale(tmp_path):
    _fit(tmp_path, CONFIG)
    lines = _steps(tmp_path)
    total = 4 * 96 // 16
    assert [r["step"] for r in lines] == list(range(2, total + 1, 2))
    assert [r["epoch"] for r in lines] == [(r["step"] - 1) // 6 for r in lines]
    for r in lines:  # the rate the step took, the one before the scheduler moved on
        assert r["lr"] == pytest.approx(_open_clip_cosine(0.01, 3, total, r["step"] - 1))
        assert math.isfinite(r["loss"]) and r["logit_scale/logit_scale"] > 0
        assert r["samples_per_s"] > 0 and r["samples_per_s_per_device"] == r["samples_per_s"]
    assert [r["time"] for r in lines] == sorted(r["time"] for r in lines)


def test_a_model_s_named_loss_terms_are_logged(tmp_path):
    _fit(tmp_path, CONFIG, model_name="gram", dtm_weight=0.1, dtm_hidden=8)
    line = _steps(tmp_path)[0]
    assert math.isfinite(line["loss/gram"]) and math.isfinite(line["loss/dtm"])
    assert line["loss"] == pytest.approx(line["loss/gram"] + 0.1 * line["loss/dtm"], rel=1e-5)
    assert line["logit_scale/logit_scale"] == pytest.approx(1 / 0.07, rel=0.2)  # GRAM's learned divisor, as 1/τ


def test_a_run_killed_mid_schedule_resumes_to_the_same_weights_and_logs(tmp_path, monkeypatch):
    _fit(tmp_path / "whole", CONFIG)
    real = training.mean_loss
    monkeypatch.setattr(training, "mean_loss", killed_on_call(3, real))  # in epoch three
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "killed", CONFIG)
    monkeypatch.setattr(training, "mean_loss", real)
    _fit(tmp_path / "killed", CONFIG, resume=True)
    whole, resumed = load_file(tmp_path / "whole" / training.BEST), load_file(tmp_path / "killed" / training.BEST)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    strip = lambda lines: [{k: v for k, v in r.items() if not k.startswith("samples_per_s") and k != "time"} for r in lines]
    assert strip(_steps(tmp_path / "killed")) == strip(_steps(tmp_path / "whole"))


def test_tensorboard_events_read_back_hold_lr_loss_and_logit_scale_per_step(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _fit(tmp_path, CONFIG, Logging(every=1, report_to=("tensorboard",)))
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    lines = _steps(tmp_path)
    for tag, key in (("train/lr", "lr"), ("train/loss", "loss"), ("train/logit_scale/logit_scale", "logit_scale/logit_scale")):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [r["step"] for r in lines]
        assert [s.value for s in scalars] == pytest.approx([r[key] for r in lines], rel=1e-6)
    assert [s.step for s in events.Scalars("val/loss")] == [6, 12, 18, 24]


def test_wandb_offline_keeps_the_run_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    _fit(tmp_path, TrainConfig(epochs=1, batch_size=32, lr=0.01, threads=1), Logging(every=1, report_to=("wandb",)))
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


@pytest.mark.parametrize(("flag", "message"), [
    (["--report-to", "tensorbord"], "argument --report-to: unknown reporter tensorbord; known: tensorboard, wandb"),
    (["--lr-schedule", "linear"], "argument --lr-schedule: invalid choice: 'linear'"),
    (["--log-every", "0"], "argument --log-every"),
])
def test_bad_logging_flags_get_one_line(run_cli, tmp_path, flag, message):
    # The bad flag comes first, so it is the one argparse refuses.
    out = run_cli("polymodal", "train", *flag, "--task", "xor", "--model", "clip", "--data", tmp_path,
                  "--out", tmp_path / "run", check=False)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
