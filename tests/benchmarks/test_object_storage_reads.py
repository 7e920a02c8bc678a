"""The harness reads a dataset on an object store (moto's S3 API on loopback) as it reads a local folder: the
manifest checked against the shards, training streamed from them, the same metrics."""

import json
import subprocess
import sys

import pytest

from polymodal.benchmarks.runs import RUN_FILE, evaluate_run, train_run
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.builders.core.runner import build
from polymodal.builders.xor import XorBuilder, XorConfig
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
