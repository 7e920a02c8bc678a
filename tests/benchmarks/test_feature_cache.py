"""The feature cache: shards shuffled alike on every rank, split by rank and worker, a file per shard and an
index that are the same bytes whatever the split, and resumable at the shards a failed run lost; the same on an
object store (moto's S3 API on loopback), which training then reads."""

import posixpath

import pytest

from polymodal.benchmarks.feature_cache import CACHE_ENV as FEATURES_ENV
from polymodal.benchmarks.feature_cache import cache_path, node_shards, piece_files, read_cache
from polymodal.benchmarks.featurize import featurize
from polymodal.benchmarks.tasks.symile_m3.featurizers import EmbeddedFeaturizer
from polymodal.builders.core.runner import build
from polymodal.builders.symile_m3.builder import LANGUAGE_SETS, M3Config, SymileM3Builder
from polymodal.benchmarks.runs import evaluate_run, train_run
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.builders.core import storage
from polymodal.builders.symile_m3.speech import CACHE_ENV
from tests.helpers import TORCHRUN, run_job


@pytest.fixture(scope="module")
def m3(tmp_path_factory):
    """Eight train shards of eight samples."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("tts")))
        out = tmp_path_factory.mktemp("m3")
        build(SymileM3Builder(M3Config(languages=LANGUAGE_SETS["M3-2"], train=64, val=8, test=8, shard_size=8, seed=5)),
              out, progress=False)
    return out


def cache_bytes(index) -> dict[str, bytes]:
    """What a cached split is, on disk or on the store: its index and each shard's file, by name."""
    files = [index, *(f for f, _ in piece_files(index))]
    return {posixpath.basename(str(f)): storage.read_bytes(f) for f in files}


@pytest.fixture(scope="module")
def whole(m3, tmp_path_factory):
    """The train split featurized in one process with no loader workers: the reference."""
    path = featurize(m3, "embedded", "train", out=tmp_path_factory.mktemp("features"))
    assert len(read_cache(path)[0]["cls"]) == 64
    assert [rows for _, rows in piece_files(path)] == [8] * 8  # a file per shard, never one joined file
    return cache_bytes(path)


SHARDS = [{"url": f"shard-{i:02d}.tar"} for i in range(12)]


def _rank_shards(monkeypatch, rank: int, world: int, seed: int = 0) -> list[str]:
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    return [s["url"] for s in node_shards(SHARDS, seed)]


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_ranks_split_one_shuffled_order(monkeypatch, world):
    order = _rank_shards(monkeypatch, 0, 1)
    assert sorted(order) == [s["url"] for s in SHARDS] and order != sorted(order)  # a permutation, not the identity
    ranks = [_rank_shards(monkeypatch, r, world) for r in range(world)]
    assert sorted(sum(ranks, [])) == sorted(order)  # every shard once
    assert all(mine == order[r::world] for r, mine in enumerate(ranks))  # the same shuffle on every rank
    assert _rank_shards(monkeypatch, 0, 1, seed=1) != order


def test_workers_give_the_same_file_as_one_process(m3, whole, tmp_path):
    path = featurize(m3, "embedded", "train", out=tmp_path, workers=2, seed=3)
    assert cache_bytes(path) == whole
    assert not list(tmp_path.rglob("*.tmp"))


class FailsAfter(EmbeddedFeaturizer):
    """Prepares `budget` batches, then fails as a killed job would; counts what it prepares."""

    def __init__(self, budget: float = float("inf")):
        super().__init__()
        self.budget, self.prepared = budget, 0

    def prepare(self, rows):
        if self.prepared == self.budget:
            raise RuntimeError("killed")
        self.prepared += 1
        return super().prepare(rows)


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_a_failed_run_resumes_at_the_shards_it_lost(m3, whole, tmp_path, where, request):
    cache = tmp_path if where == "folder" else f"{request.getfixturevalue('s3_bucket')}/features"
    with pytest.raises(RuntimeError, match="killed"):
        featurize(m3, "embedded", "train", out=cache, featurizer=FailsAfter(budget=3))
    path = cache_path(m3, "embedded", "train", cache)
    assert not storage.is_file(path)
    assert len(storage.find(cache, ".safetensors")) == 3  # the three shards done, and no index
    again = FailsAfter()
    featurize(m3, "embedded", "train", out=cache, featurizer=again)
    assert again.prepared == 5  # one batch per shard of 8, and only the lost shards
    assert cache_bytes(path) == whole
    assert not storage.find(cache, ".tmp")  # no temporary file or key is left


def test_training_reads_a_cache_on_s3_as_it_reads_a_local_one(m3, s3_bucket, tmp_path, monkeypatch):
    config = TrainConfig(epochs=1, batch_size=16, lr=1e-3, seed=0)
    metrics = {}
    for name, cache in {"folder": tmp_path / "features", "s3": f"{s3_bucket}/features"}.items():
        monkeypatch.setenv(FEATURES_ENV, str(cache))
        train_run("symile-m3", "symile", m3, tmp_path / name, config, progress=False)
        metrics[name] = evaluate_run(tmp_path / name)["metrics"]
    assert metrics["s3"] == metrics["folder"]
    assert storage.is_file(cache_path(m3, "embedded", "train", f"{s3_bucket}/features"))


class DropsARow(EmbeddedFeaturizer):
    def prepare(self, rows):
        return super().prepare(rows[1:])


def test_a_short_shard_is_named(m3, tmp_path):
    with pytest.raises(SystemExit, match=r"train/\S+\.tar holds 7 samples, the manifest 8"):
        featurize(m3, "embedded", "train", out=tmp_path, featurizer=DropsARow())
    assert not cache_path(m3, "embedded", "train", tmp_path).exists()


def test_two_ranks_under_torchrun_give_the_same_file(m3, whole, tmp_path):
    cmd = [*TORCHRUN, "-m", "polymodal", "featurize", "--data", str(m3), "--encoder", "embedded", "--out", str(tmp_path),
           "--workers", "1", "--no-progress"]
    proc = run_job(cmd, text=True)
    paths = proc.stdout.split()  # rank 0 alone prints the three files
    assert paths == [str(cache_path(m3, "embedded", s, tmp_path)) for s in ("test", "train", "val")]
    assert cache_bytes(paths[1]) == whole


def test_a_damaged_index_is_one_line_naming_it(tmp_path):
    index = tmp_path / "train.json"
    index.write_bytes(b'{"pieces": [')
    with pytest.raises(SystemExit, match=r"train.json is no feature-cache index .*delete it to recompute"):
        read_cache(index)


def test_a_damaged_shard_file_is_one_line_naming_it(m3, tmp_path):
    with pytest.raises(RuntimeError, match="killed"):
        featurize(m3, "embedded", "train", out=tmp_path, featurizer=FailsAfter(budget=7))
    damaged = sorted(tmp_path.rglob("*.safetensors"))[0]
    damaged.write_bytes(damaged.read_bytes()[:20])  # a header length, then a cut header
    with pytest.raises(SystemExit, match=rf"{damaged.name} is no safetensors file .*delete it to recompute"):
        featurize(m3, "embedded", "train", out=tmp_path)
