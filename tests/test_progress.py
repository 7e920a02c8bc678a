"""Progress off a terminal is one line per finished unit, never `\\r` redraws; `--quiet` shows none."""

import re
import subprocess
import sys

from tqdm import tqdm

from polymodal import progress
from tests.helpers import ROOT

# 2,300 rows in shards of at most 500: 4 train, 1 val and 1 per test draw.
XOR = ["build", "xor", "--train", "2000", "--val", "100", "--test", "100", "--test-draws", "2", "--shard-size", "500"]


def polymodal(*args):
    """Run the command with stderr a pipe, as under CI or `2> log`."""
    return subprocess.run([sys.executable, "-m", "polymodal", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, check=True)


def test_a_build_off_a_terminal_prints_one_line_per_shard(tmp_path):
    err = polymodal(*XOR, "--out", tmp_path / "x").stderr
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 7, err
    done = [int(re.fullmatch(rf"xor -> {re.escape(str(tmp_path / 'x'))}: ([\d,]+)/2,300 rows \(.*s\)", line)[1]
                .replace(",", "")) for line in lines]
    assert done == sorted(done) and done[-1] == 2300


def test_training_off_a_terminal_prints_one_line_per_epoch_with_its_losses(tmp_path):
    polymodal(*XOR, "--out", tmp_path / "x", "--no-progress")
    err = polymodal("train", "--task", "xor", "--model", "clip", "--data", tmp_path / "x", "--out", tmp_path / "run",
                    "--epochs", "3").stderr
    assert "\r" not in err
    lines = err.splitlines()
    assert [line.partition(" (")[0] for line in lines] == ["train: 1/3 epochs", "train: 2/3 epochs", "train: 3/3 epochs"]
    assert all(", loss " in line and ", val " in line for line in lines), err


def test_quiet_shows_no_progress(tmp_path):
    proc = polymodal("--quiet", *XOR, "--out", tmp_path / "x")
    assert proc.stderr == ""
    assert "2,300 of 2,300 rows ok" in proc.stdout  # the result is still reported


def test_a_terminal_gets_tqdm_and_quiet_silences_it(monkeypatch):
    class Terminal:
        def isatty(self):
            return True

        def write(self, text):
            pass

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = progress.progress_bar(total=3, desc="rows")
    assert isinstance(bar, tqdm) and not bar.disable
    monkeypatch.setattr(progress, "QUIET", True)
    assert progress.progress_bar(total=3, desc="rows").disable
