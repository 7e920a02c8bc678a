"""A sample is kept only once it decodes: faults injected into ffmpeg's outputs and into the disk.

A wrapper named `ffmpeg` ahead on PATH runs the real one, then does what a full
TMPDIR does to it: cuts what it wrote and says "No space left on device", yet
exits 0, as ffmpeg did in the report that this test reproduces.
"""

import errno
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from polymodal.builders.core.disk import DiskFull
from polymodal.builders.core.tarshards import write_atomic, write_tar
from polymodal.builders.vggsound_plus.clips import extract
from polymodal.builders.vggsound_plus.failures import ClipFailure
from tests.builders.test_vggsound_plus import make_clip

WRAPPER = """#!{python}
import os, subprocess, sys
code = subprocess.run([{ffmpeg!r}, *sys.argv[1:]]).returncode
fault = os.environ["FFMPEG_FAULT"]
for out in sys.argv[1:]:
    if out.endswith((".flac", ".jpg")) and out.endswith(fault.split(":")[1]) and os.path.exists(out):
        with open(out, "r+b") as f:
            f.truncate(os.path.getsize(out) // 2)
if fault.startswith("enospc"):
    print("[flac @ 0x55] Error writing trailer: No space left on device", file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture
def faulty_ffmpeg(tmp_path, monkeypatch):
    """Set the fault with monkeypatch.setenv("FFMPEG_FAULT", "enospc:.flac" | "cut:.flac" | "cut:.jpg")."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ffmpeg"
    wrapper.write_text(WRAPPER.format(python=sys.executable, ffmpeg=shutil.which("ffmpeg")))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return monkeypatch


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_clip(path)
    return str(path)


def test_the_clip_extracts_cleanly_without_a_fault(clip):
    extracted = extract(clip, 0.0, 0, "clip")
    assert extracted.audio_seconds == pytest.approx(10.0, abs=0.05) and extracted.frame_size == (64, 48)


def test_no_space_in_tmpdir_stops_the_build_naming_tmpdir(clip, faulty_ffmpeg, tmp_path):
    faulty_ffmpeg.setenv("FFMPEG_FAULT", "enospc:.flac")
    faulty_ffmpeg.setenv("TMPDIR", str(tmp_path))
    import tempfile

    faulty_ffmpeg.setattr(tempfile, "tempdir", None)  # so gettempdir() reads TMPDIR again
    with pytest.raises(DiskFull, match=f"no space left in {tmp_path} \\(TMPDIR"):
        extract(clip, 0.0, 0, "clip")


@pytest.mark.parametrize("member", [".flac", ".jpg"])
def test_a_cut_output_is_a_decode_error_not_a_sample(clip, faulty_ffmpeg, member):
    faulty_ffmpeg.setenv("FFMPEG_FAULT", f"cut:{member}")
    with pytest.raises(ClipFailure) as failure:
        extract(clip, 0.0, 0, "clip")
    assert failure.value.kind in {"decode-error", "too-short"}, failure.value


def test_a_full_output_folder_is_one_clear_error_and_leaves_no_half_file(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    shard = tmp_path / "train" / "shard-000000.tar"
    samples = iter([{"__key__": "000000000", "json": b"{}"}])
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFull, match=f"no space left in {shard.parent} \\(the output folder\\)"):
        write_tar(shard, samples)
    with pytest.raises(DiskFull, match="the output folder"):
        write_atomic(tmp_path / "manifest.json", b"{}")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert sorted(p.name for p in Path(tmp_path).rglob("*") if p.is_file()) == []
