"""The harness end to end on small XOR builds: train, select, score, write results, rank."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from polymodal.benchmarks.bench import bench
from polymodal.benchmarks.runs import evaluate_run, train_run
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.benchmarks.tasks.xor import XorTask, all_bit_vectors, bits_to_index
from polymodal.builders.core.runner import build
from polymodal.builders.xor import XorBuilder, XorConfig, bayes_accuracy
from polymodal.leaderboard.schema import validate_result

SIZES = dict(train=4000, val=500, test=1000, test_draws=3, shard_size=2000)
FAST = TrainConfig(epochs=12, batch_size=500, lr=0.05, seed=0)


@pytest.fixture(scope="module")
def xor_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("xor")
    return {p: build(XorBuilder(XorConfig(p_hat=p, seed=1, **SIZES)), root / f"p{p}", progress=False) and root / f"p{p}"
            for p in (0.5, 1.0)}


def test_candidates_enumerate_every_bit_vector():
    cands = all_bit_vectors(4)
    assert cands.shape == (16, 4)
    assert sorted(bits_to_index(cands).tolist()) == list(range(16))


@pytest.fixture(scope="module")
def trained(xor_data, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    out = {}
    for model in ("clip", "symile"):
        for p, data in xor_data.items():
            run = runs / f"{model}-{p}"
            train_run("xor", model, data, run, FAST, progress=False)
            out[model, p] = (run, evaluate_run(run))
    return out


def test_symile_reaches_the_bayes_bound_and_clip_stays_at_chance(trained):
    for p in (0.5, 1.0):
        symile = trained["symile", p][1]["metrics"]["acc1"]["value"]
        clip = trained["clip", p][1]["metrics"]["acc1"]["value"]
        assert abs(symile - bayes_accuracy(5, p)) < 0.04, (p, symile)
        assert clip < 2**-5 + 0.04, (p, clip)


def test_results_describe_what_produced_them(trained, xor_data):
    run, result = trained["symile", 1.0]
    validate_result(result)
    assert json.loads((run / "result.json").read_text()) == result
    manifest = json.loads((xor_data[1.0] / "manifest.json").read_text())
    assert result["dataset"]["id"] == manifest["dataset_id"]
    assert result["dataset"]["params"] == {"p_hat": 1.0, "dim": 5}
    assert result["task"] == {"name": "xor", "version": XorTask.version} and result["plot"]["x"] == "p_hat"
    assert result["model"]["name"] == "symile" and result["model"]["config"]["train"]["epochs"] == FAST.epochs
    assert result["metrics"]["acc1"]["n"] == 3 and result["metrics"]["acc1"]["stderr"] >= 0
    assert result["references"]["bayes_bound"] == 1.0 and result["seed"] == 0
    assert result["hardware"]["device"] == "cpu" and result["code_version"]["package"]


def test_acc1_stderr_is_the_sample_standard_error_of_the_draws(trained):
    for _, result in trained.values():
        acc1 = result["metrics"]["acc1"]
        draws = acc1["outcomes"]["values"]
        k, mean = len(draws), sum(draws) / len(draws)
        assert acc1["stderr"] == pytest.approx(math.sqrt(sum((d - mean) ** 2 for d in draws) / (k - 1) / k), abs=1e-12)


def test_training_is_reproducible_and_selects_the_best_validation_epoch(trained, xor_data, tmp_path):
    run, result = trained["symile", 0.5]
    again = tmp_path / "again"
    train_run("xor", "symile", xor_data[0.5], again, FAST, progress=False)
    first, second = load_file(run / "best.safetensors"), load_file(again / "best.safetensors")
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert evaluate_run(again)["metrics"] == result["metrics"]
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    record = json.loads((run / "run.json").read_text())
    best = min(log, key=lambda r: r["val_loss"])
    assert record["summary"]["best_epoch"] == best["epoch"]
    assert all(r["samples_per_s"] > 0 for r in log)


def test_eval_refuses_a_dataset_that_changed_since_training(trained, xor_data, tmp_path):
    run, _ = trained["clip", 1.0]
    record = json.loads((run / "run.json").read_text())
    record["data"] = str(xor_data[0.5])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text(json.dumps(record))
    with pytest.raises(SystemExit, match="not .* it was trained on"):
        evaluate_run(tmp_path / "run")


class WrappedSymile(torch.nn.Module):
    """A user model, submitted as tests.benchmarks.test_harness_xor:WrappedSymile."""

    def __init__(self, inputs, width=8):
        super().__init__()
        from polymodal.baselines.models import MODELS

        self.inner = MODELS["symile"](inputs, d_model=width)
        self.modalities = tuple(inputs)
        self.width = width

    def encode(self, modality, x):
        return self.inner.encode(modality, x)

    def loss(self, embeddings, rows=None, generator=None):
        return self.inner.loss(embeddings, rows=rows, generator=generator)

    def score(self, queries, target, candidates):
        return self.inner.score(queries, target, candidates)

    def card(self):
        return {"name": "wrapped", "parameters": sum(p.numel() for p in self.parameters()), "config": {"width": self.width}}


def test_a_submitted_model_gets_a_result_with_its_card(xor_data, tmp_path, run_cli):
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"name": "my-symile", "license": "Apache-2.0"}))
    run_cli("polymodal", "submit", "--task", "xor", "--model", "tests.benchmarks.test_harness_xor:WrappedSymile",
            "--model-config", '{"width": 8}', "--card", card, "--data", xor_data[1.0], "--out", tmp_path / "run",
            "--epochs", "3", "--results", tmp_path / "results", "--no-progress")
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["model"]["name"] == "my-symile" and result["model"]["license"] == "Apache-2.0"
    assert result["model"]["source"] == "tests.benchmarks.test_harness_xor:WrappedSymile"
    assert result["model"]["config"]["model"] == {"width": 8}
    # Filed where the model's identity says, with its card beside it.
    filed = tmp_path / "results" / "xor" / "my-symile"
    assert sorted(f.name for f in filed.iterdir()) == sorted(["unversioned.card.json", f"unversioned.{result['dataset']['id']}.json"])
    assert json.loads((filed / "unversioned.card.json").read_text()) == result["model"]


def test_submit_rejects_unknown_card_fields(xor_data, tmp_path, run_cli):
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"name": "x", "paramters": 3}))
    proc = run_cli("polymodal", "submit", "--task", "xor", "--model", "symile", "--card", card,
                   "--data", xor_data[1.0], "--out", tmp_path / "run", check=False)
    assert proc.returncode != 0 and "paramters" in proc.stderr


def test_bench_builds_trains_scores_ranks_and_resumes(tmp_path, capsys):
    args = ["--p-hat", "0,1", "--train", "2000", "--val", "300", "--test", "500", "--test-draws", "2", "--seed", "2"]
    board = bench("xor", ["clip", "symile"], tmp_path, args, workers=1, progress=False)
    task = board["tasks"]["xor@1.0"]
    assert [d["label"] for d in task["datasets"]] == ["p_hat=0", "p_hat=1"]
    assert [e["model"] for e in task["entries"]] == ["symile", "clip"]
    assert not board["rejected"]
    assert (tmp_path / "report" / "report.md").is_file() and (tmp_path / "report" / "xor.png").is_file()
    results = sorted((tmp_path / "results").rglob("*.json"))
    assert len(results) == 4
    before = {p: p.read_bytes() for p in results}
    bench("xor", ["clip", "symile"], tmp_path, args, workers=1, progress=False)  # everything is done: nothing reruns
    assert {p: p.read_bytes() for p in results} == before
    assert "symile" in capsys.readouterr().out
