"""The `polymodal` command as a user meets it."""

import json
import subprocess
import sys

import pytest

from polymodal.cli import make_parser

COMMANDS = ["build", "verify", "train", "eval", "submit", "bench", "quickstart", "leaderboard"]


def test_every_command_is_registered_and_explains_itself(capsys):
    parser = make_parser()
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([command, "--help"])
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        assert f"polymodal {command}" in text and len(text) > 200, command


def test_building_the_parser_does_not_import_torch():
    code = "import sys; sys.modules['torch'] = None; from polymodal.cli import make_parser; make_parser()"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_options_are_refused_except_by_bench(run_cli):
    proc = run_cli("polymodal", "quickstart", "--frobnicate", check=False)
    assert proc.returncode == 2 and "--frobnicate" in proc.stderr


def test_a_p_hat_sweep_builds_one_dataset_per_value(tmp_path, run_cli):
    run_cli("polymodal", "build", "xor", "--out", tmp_path, "--p-hat", "0,0.5,...,1", "--train", "100",
            "--val", "50", "--test", "50", "--test-draws", "2", "--no-progress")
    folders = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert folders == ["p_hat=0", "p_hat=0.5", "p_hat=1"]
    ids = {json.loads((tmp_path / f / "manifest.json").read_text())["dataset_id"] for f in folders}
    assert len(ids) == 3
