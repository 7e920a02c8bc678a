"""The feature cache: shards shuffled alike on every rank, split by rank and worker, a file per shard and an
index that are the same bytes whatever the split, and resumable at the shards a failed run lost."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from polymodal.benchmarks.feature_cache import cache_path, node_shards, piece_files, read_cache
from polymodal.benchmarks.featurize import featurize
from polymodal.benchmarks.tasks.symile_m3.featurizers import EmbeddedFeaturizer
from polymodal.builders.core.runner import build
from polymodal.builders.symile_m3.builder import LANGUAGE_SETS, M3Config, SymileM3Builder
from polymodal.builders.symile_m3.speech import CACHE_ENV
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def m3(tmp_path_factory):
    """Eight train shards of eight samples."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("tts")))
        out = tmp_path_factory.mktemp("m3")
        build(SymileM3Builder(M3Config(languages=LANGUAGE_SETS["M3-2"], train=64, val=8, test=8, shard_size=8, seed=5)),
              out, progress=False)
    return out


def cache_bytes(index: Path) -> dict[str, bytes]:
    """What a cached split is on disk: its index and each shard's file, by name."""
    return {index.name: index.read_bytes(), **{f.name: f.read_bytes() for f, _ in piece_files(index)}}


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


def test_a_failed_run_resumes_at_the_shards_it_lost(m3, whole, tmp_path):
    with pytest.raises(RuntimeError, match="killed"):
        featurize(m3, "embedded", "train", out=tmp_path, featurizer=FailsAfter(budget=3))
    path = cache_path(m3, "embedded", "train", tmp_path)
    assert not path.exists() and len(list(path.with_suffix("").glob("*.safetensors"))) == 3
    again = FailsAfter()
    featurize(m3, "embedded", "train", out=tmp_path, featurizer=again)
    assert again.prepared == 5  # one batch per shard of 8, and only the lost shards
    assert cache_bytes(path) == whole


class DropsARow(EmbeddedFeaturizer):
    def prepare(self, rows):
        return super().prepare(rows[1:])


def test_a_short_shard_is_named(m3, tmp_path):
    with pytest.raises(SystemExit, match=r"train/\S+\.tar holds 7 samples, the manifest 8"):
        featurize(m3, "embedded", "train", out=tmp_path, featurizer=DropsARow())
    assert not cache_path(m3, "embedded", "train", tmp_path).exists()


def test_two_ranks_under_torchrun_give_the_same_file(m3, whole, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "polymodal",
           "featurize", "--data", str(m3), "--encoder", "embedded", "--out", str(tmp_path), "--workers", "1",
           "--no-progress"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    paths = proc.stdout.split()  # rank 0 alone prints the three files
    assert paths == [str(cache_path(m3, "embedded", s, tmp_path)) for s in ("test", "train", "val")]
    assert cache_bytes(Path(paths[1])) == whole


def test_a_damaged_index_is_one_line_naming_it(tmp_path):
    index = tmp_path / "train.json"
    index.write_bytes(b'{"pieces": [')
    with pytest.raises(SystemExit, match=r"train.json is no feature-cache index .*delete it to recompute"):
        read_cache(index)
