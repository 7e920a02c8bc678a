"""torchrun on CPU with gloo: two ranks must equal one process on the global batch."""

import json
import sys

import pytest
from safetensors.torch import load_file

from polymodal.builders.core.runner import build
from polymodal.builders.xor import XorBuilder, XorConfig
from tests.benchmarks.ddp_worker import CASES
from tests.helpers import ROOT, TORCHRUN, run_job, sigkill_when, torchrun_env

def test_two_ranks_equal_one_process_for_every_loss(tmp_path):
    out = tmp_path / "report.json"
    run_job([*TORCHRUN, ROOT / "tests" / "benchmarks" / "ddp_worker.py", out])
    report = json.loads(out.read_text())
    val = report.pop("val")
    assert set(report) == {label for label, _, _ in CASES}
    for label, diff in report.items():
        assert diff["grad_norm"] > 1e-3, label  # the comparison is not between zeros
        assert diff["loss"] < 1e-5 and diff["grad"] < 1e-5, (label, diff)
    # Validation splits of 16 and 48 rows in global batches of 32: each row counts once on two ranks, as in one.
    assert set(val) == {"16", "48"}
    for n, loss in val.items():
        assert loss["one"] > 0 and loss["two"] == pytest.approx(loss["one"], abs=1e-6), (n, loss)


@pytest.fixture(scope="module")
def xor_data(tmp_path_factory):
    data = tmp_path_factory.mktemp("xor")
    build(XorBuilder(XorConfig(p_hat=1.0, train=2000, val=400, test=400, test_draws=2, shard_size=1000)), data,
          progress=False)
    return data


def _train(data, out, *extra, launcher=(sys.executable, "-m", "polymodal")):
    cmd = [*launcher, "train", "--task", "xor", "--model", "symile", "--data", str(data), "--out", str(out),
           "--batch-size", "200", "--no-progress", *extra]
    return cmd


def test_torchrun_training_matches_single_process_training(xor_data, tmp_path):
    # Two streams, one shard each: the single process runs both, each rank one.
    run_job(_train(xor_data, tmp_path / "one", "--epochs", "2", "--streams", "2"))
    run_job(_train(xor_data, tmp_path / "two", "--epochs", "2", "--streams", "2", launcher=(*TORCHRUN, "-m", "polymodal")))
    one, two = load_file(tmp_path / "one" / "best.safetensors"), load_file(tmp_path / "two" / "best.safetensors")
    assert one.keys() == two.keys()
    for key in one:
        assert (one[key] - two[key]).abs().max() < 1e-4, key
    log_one = [json.loads(x) for x in (tmp_path / "one" / "train_log.jsonl").read_text().splitlines()]
    log_two = [json.loads(x) for x in (tmp_path / "two" / "train_log.jsonl").read_text().splitlines()]
    assert [round(r["val_loss"], 4) for r in log_one] == [round(r["val_loss"], 4) for r in log_two]


def test_a_validation_split_smaller_than_the_global_batch_counts_each_row_once(tmp_path):
    """150 validation rows, a global batch of 200 on 2 ranks: one partial batch, which rank 0 alone scores."""
    data = tmp_path / "xor"
    build(XorBuilder(XorConfig(p_hat=1.0, train=800, val=150, test=100, test_draws=1, shard_size=400)), data, progress=False)
    logs = {}
    for name, launcher in {"one": (sys.executable, "-m", "polymodal"), "two": (*TORCHRUN, "-m", "polymodal")}.items():
        run_job(_train(data, tmp_path / name, "--epochs", "2", "--streams", "2", launcher=launcher))
        logs[name] = [json.loads(x)["val_loss"] for x in (tmp_path / name / "train_log.jsonl").read_text().splitlines()]
    assert len(logs["one"]) == len(logs["two"]) == 2
    assert logs["one"] == pytest.approx(logs["two"], rel=1e-5)


def test_a_run_killed_mid_epoch_resumes_to_the_same_weights_and_metrics(xor_data, tmp_path, run_cli):
    # 10 steps an epoch; a checkpoint every 3 steps, each rewriting the step lines (one a step): the kill
    # follows step 24's, within epoch 2, unless the run reaches another first. The unit test of a kill at a
    # known step is tests/benchmarks/test_streaming.py.
    epochs = ["--epochs", "40", "--checkpoint-every", "3", "--log-every", "1"]
    run_job(_train(xor_data, tmp_path / "whole", *epochs))
    killed = tmp_path / "killed"
    log, steps = killed / "train_log.jsonl", killed / "train_steps.jsonl"
    sigkill_when(_train(xor_data, killed, *epochs), lambda: steps.is_file() and len(steps.read_text().splitlines()) >= 24,
                 env=torchrun_env())
    assert len(log.read_text().splitlines()) < 40  # two checkpoints in three are within an epoch
    run_job(_train(xor_data, killed, *epochs, "--resume"))

    whole, resumed = load_file(tmp_path / "whole" / "best.safetensors"), load_file(killed / "best.safetensors")
    assert all((whole[k] == resumed[k]).all() for k in whole)
    strip = lambda path: [{k: v for k, v in json.loads(x).items() if not k.startswith("samples_per_s")}
                          for x in path.read_text().splitlines()]
    assert strip(log) == strip(tmp_path / "whole" / "train_log.jsonl")
    results = [json.loads(run_cli("polymodal", "eval", run).stdout and (run / "result.json").read_text())
               for run in (tmp_path / "whole", killed)]
    assert results[0]["metrics"] == results[1]["metrics"]
