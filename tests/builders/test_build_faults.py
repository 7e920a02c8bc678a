"""Builds that survive faults: identity from content, resumes that re-check what they keep, workers that die with
their parent, one build per folder, and builds that say when they made nothing."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from polymodal.builders.core.media import SourceError
from polymodal.builders.core.runner import LOCK, FolderBusy, build
from polymodal.builders.symile_m3 import M3Config, SymileM3Builder
from polymodal.builders.vggsound_plus import VggConfig, VggSoundPlusBuilder
from polymodal.builders.xor import XorBuilder, XorConfig
from tests.builders.test_vggsound_plus import make_clip
from tests.helpers import ROOT, folder_bytes


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    names = ["good0______", "good1______"]
    for name, tone in zip(names, (440, 660)):
        make_clip(folder / f"{name}_000000.mp4", tone=tone)
    index = folder / "index.csv"
    index.write_text(f'{names[0]},0,dog barking,train\n{names[1]},0,"playing piano",test\n')
    return folder, index


def vgg(index, source) -> VggSoundPlusBuilder:
    return VggSoundPlusBuilder(VggConfig(index=str(index), source=f"dir:{source}", frame_size=32, shard_size=2))


def test_the_same_data_through_other_paths_has_one_id_and_an_edited_index_another(clips, tmp_path):
    folder, index = clips
    (tmp_path / "link").symlink_to(folder)
    moved = tmp_path / "elsewhere.csv"
    moved.write_bytes(index.read_bytes())
    first = build(vgg(index, folder), tmp_path / "a", progress=False)
    second = build(vgg(moved, tmp_path / "link"), tmp_path / "b", progress=False)
    assert first["dataset_id"] == second["dataset_id"] and first["content_digest"] == second["content_digest"]
    assert first["config"]["source"] == "dir" and "sha256" in first["config"]["index"]
    assert second["local"] == {"index": str(moved), "source": f"dir:{tmp_path / 'link'}"}
    assert first["info"]["clips"] == second["info"]["clips"]  # the same clips were read
    card = (tmp_path / "b" / "README.md").read_text()
    assert str(tmp_path) not in card and "--source dir:DIR" in card and first["content_digest"] in card

    moved.write_text(moved.read_text().replace("dog barking", "playing piano"))  # edited in place
    assert vgg(moved, folder).dataset_id() != first["dataset_id"]
    with pytest.raises(SystemExit, match="already holds .*dataset"):
        build(vgg(moved, folder), tmp_path / "b", progress=False)  # never mixed with the old build's shards


def test_resume_rebuilds_a_finished_shard_that_no_longer_matches_its_stats(tmp_path):
    config = XorConfig(train=40, val=10, test=20, test_draws=1, shard_size=10)
    build(XorBuilder(config), tmp_path / "clean", progress=False)
    build(XorBuilder(config), tmp_path / "hurt", progress=False)
    shard = tmp_path / "hurt" / "train" / "xor-000002.tar"
    shard.write_bytes(shard.read_bytes()[:2048])  # the stats file still says the shard is done
    build(XorBuilder(config), tmp_path / "hurt", progress=False)
    assert folder_bytes(tmp_path / "hurt") == folder_bytes(tmp_path / "clean")


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _kill_9_when(cmd: list[str], ready, what: str) -> set[int]:
    """Start `cmd`, SIGKILL it once `ready(its descendants)` holds, and return the descendants it had then."""
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        below: set[int] = set()
        while not ready(below):
            assert proc.poll() is None and time.monotonic() < deadline, f"the build ended before {what}"
            below = _descendants(proc.pid)
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return below


def _survivors(pids: set[int]) -> list[str]:
    """The processes of `pids` still alive (not zombies) 10 s on, by name."""
    deadline = time.monotonic() + 10
    while any("Z" not in _state(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [_comm(p) for p in pids if "Z" not in _state(p)]


def _xor_build(out: Path, engine: str) -> list[str]:
    return [sys.executable, "-m", "polymodal", "build", "xor", "--out", str(out), "--workers", "2", "--engine", engine,
            "--train", "2000000", "--shard-size", "20000", "--no-progress"]


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_kill_9_of_a_build_leaves_no_worker_behind(tmp_path, engine):
    workers = _kill_9_when(_xor_build(tmp_path / "out", engine), lambda below: len(below) >= 2, "its pool started")
    assert not _survivors(workers), "workers survived"


def test_kill_9_of_a_build_on_ray_leaves_no_ray_process_behind(tmp_path):
    """Ray's gcs, raylet and workers die with the build by Ray's own means; its agents, which would first wait a
    minute on the dead gcs, by the engine's watcher."""
    running = lambda below: any(_comm(p).startswith("ray::_shard") for p in below)  # a shard runs: Ray is all there
    below = _kill_9_when(_xor_build(tmp_path / "out", "ray"), running, "a shard ran")
    assert not _survivors(below), "Ray processes survived"


def _descendants(pid: int) -> set[int]:
    try:
        children = _children(pid)
    except OSError:  # ended meanwhile
        return set()
    return children.union(*map(_descendants, children))


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_a_second_build_into_a_folder_in_use_gets_one_line_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "polymodal", "build", "xor", "--out", str(out), "--train", "400000",
           "--shard-size", "20000", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not ((out / LOCK).is_file() and (out / LOCK).read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(FolderBusy, match=f"pid {proc.pid}"):
            build(XorBuilder(XorConfig(train=400000, shard_size=20000)), out, progress=False)
        assert proc.poll() is None  # the first build was not disturbed
    finally:
        proc.kill()
        proc.wait()


def test_a_build_that_makes_no_sample_exits_non_zero_and_min_success_raises_the_bar(clips, tmp_path, run_cli):
    folder, _ = clips
    absent = tmp_path / "absent.csv"
    absent.write_text("absent_____,0,dog barking,test\n")
    proc = run_cli("polymodal", "build", "vggsound-plus", "--out", tmp_path / "none", "--index", absent,
                   "--media-dir", folder, "--frame-size", "32", "--no-progress", check=False)
    assert proc.returncode == 1 and "0 of 1 rows" in proc.stdout + proc.stderr
    half = tmp_path / "half.csv"
    half.write_text("absent_____,0,dog barking,test\ngood0______,0,dog barking,test\n")
    args = ["polymodal", "build", "vggsound-plus", "--out", tmp_path / "half", "--index", half, "--media-dir", folder,
            "--frame-size", "32", "--no-progress"]
    assert run_cli(*args).returncode == 0  # one sample is something
    failed = run_cli(*args, "--min-success", "0.9", check=False)
    assert failed.returncode == 1 and "--min-success 0.9" in failed.stderr
    assert "unavailable 1" in failed.stdout  # the summary line names what failed


def test_a_build_that_fails_in_a_new_folder_leaves_nothing(tmp_path):
    with pytest.raises(SourceError, match="xx"):
        build(SymileM3Builder(M3Config(languages=("en", "xx"))), tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(SourceError):
        build(SymileM3Builder(M3Config(languages=("en", "xx"))), kept, progress=False)
    assert kept.is_dir()  # a folder the user made is left as it was


@pytest.mark.parametrize("argv, message", [
    (["--p-hat", "1.5"], "argument --p-hat: must lie in [0, 1]"),
    (["--train", "-5"], "argument --train: must be >= 0"),
    (["--p-hat", "0,0.3,...,1"], "never reaches 1"),
    (["--p-hat", "0:1:0.3"], "never reaches 1"),
])
def test_bad_values_get_one_line_and_no_folder(tmp_path, run_cli, argv, message):
    proc = run_cli("polymodal", "build", "xor", "--out", tmp_path / "x", *argv, check=False)
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()
    assert json.dumps(message)  # the message is plain text
