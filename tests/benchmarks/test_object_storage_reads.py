"""The harness reads a dataset on an object store (moto's S3 API on loopback) as it reads a local folder: the
manifest checked against the shards, training streamed from them, the same metrics; results submitted to the
store make the board that a local folder of them makes."""

import json
import subprocess
import sys

import pytest

from polymodal.benchmarks.runs import RUN_FILE, evaluate_run, train_run
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.builders.core.runner import build
from polymodal.builders.xor import XorBuilder, XorConfig
from polymodal.leaderboard.schema import MAX_FILE_BYTES
from tests.helpers import ROOT

CONFIG = XorConfig(dim=3, p_hat=1.0, train=400, val=100, test=100, test_draws=2, shard_size=100, seed=2)
FAST = TrainConfig(epochs=2, batch_size=50, lr=1e-2, seed=0, shuffle_buffer=150)


@pytest.fixture
def datasets(s3_bucket, tmp_path):
    """The same XOR dataset built into a folder and onto the bucket."""
    build(XorBuilder(CONFIG), tmp_path / "local", progress=False)
    build(XorBuilder(CONFIG), f"{s3_bucket}/xor", progress=False)
    return tmp_path / "local", f"{s3_bucket}/xor"


def test_training_and_scoring_a_dataset_on_s3_equal_its_local_copy(datasets, tmp_path):
    local, remote = datasets
    metrics = {}
    for name, data in {"local": local, "s3": remote}.items():
        train_run("xor", "symile", data, tmp_path / name, FAST, progress=False)
        metrics[name] = evaluate_run(tmp_path / name)["metrics"]
    assert metrics["s3"] == metrics["local"]
    assert json.loads((tmp_path / "s3" / RUN_FILE).read_text())["data"] == remote


def test_a_changed_object_is_refused_naming_it(datasets, tmp_path):
    import s3fs

    _, remote = datasets
    key = f"{remote}/train/xor-000001.tar"[len("s3://"):]
    fs = s3fs.S3FileSystem()
    fs.pipe_file(key, fs.cat_file(key)[:-512])  # the shard on the store, cut short
    with pytest.raises(SystemExit, match=r"train/xor-000001.tar: truncated"):
        train_run("xor", "symile", remote, tmp_path / "run", FAST, progress=False)


def test_a_url_without_a_dataset_is_one_line(s3_bucket):
    done = subprocess.run([sys.executable, "-m", "polymodal", "train", "--task", "xor", "--model", "clip", "--data",
                           f"{s3_bucket}/nothing", "--out", "/tmp/never"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"--data: {s3_bucket}/nothing holds no manifest.json" in done.stderr


def test_results_submitted_to_s3_make_the_board_a_local_copy_makes(datasets, s3_bucket, tmp_path, run_cli):
    import s3fs

    local, _ = datasets
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"name": "my-symile"}))
    results = f"{s3_bucket}/results"
    run_cli("polymodal", "submit", "--task", "xor", "--model", "symile", "--card", card, "--data", local, "--out",
            tmp_path / "run", "--epochs", "1", "--results", results, "--no-progress")
    fs = s3fs.S3FileSystem()
    prefix = results[len("s3://"):]
    fs.pipe({f"{prefix}/broken.json": b'{"task": ', f"{prefix}/huge.json": b" " * (MAX_FILE_BYTES + 1)})
    fs.get(prefix, str(tmp_path / "copy"), recursive=True)
    assert len(list((tmp_path / "copy").rglob("*.json"))) == 4  # the result, its card, the broken and the huge one
    boards = {}
    for name, where in {"s3": results, "copy": tmp_path / "copy"}.items():
        done = run_cli("polymodal", "leaderboard", "build", "--results", where, "--out", tmp_path / f"{name}.json", check=False)
        assert done.returncode == 0 and "Traceback" not in done.stderr
        boards[name] = json.loads((tmp_path / f"{name}.json").read_text())
        assert f"{where}/broken.json: malformed JSON" in done.stderr and f"{where}/huge.json: file is" in done.stderr
    assert boards["s3"]["tasks"] == boards["copy"]["tasks"] and boards["s3"]["tasks"]
    assert boards["s3"]["rejected"] == boards["copy"]["rejected"]


def test_a_results_url_that_holds_nothing_is_one_line(s3_bucket, run_cli):
    done = run_cli("polymodal", "leaderboard", "build", "--results", f"{s3_bucket}/none", "--out", "/tmp/never.json",
                   check=False)
    assert done.returncode == 1 and done.stderr.strip() == f"error: {s3_bucket}/none holds no files"
