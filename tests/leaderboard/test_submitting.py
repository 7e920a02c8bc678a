"""docs/submitting.md works as written: its files are written and its commands run, in order, in a fresh folder.
Also what `leaderboard check` says of what a pull request must not bring."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from polymodal.leaderboard import build_leaderboard
from polymodal.leaderboard.submission import check, submission_paths
from tests.helpers import ROOT
from tests.leaderboard.results import make_result, write

TUTORIAL = ROOT / "docs" / "submitting.md"
BLOCK = re.compile(r"^```(\w+)(?: file=(\S+))?\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def test_the_tutorial_s_commands_run_as_written(tmp_path):
    env = os.environ | {"PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    outputs = []
    for language, name, body in BLOCK.findall(TUTORIAL.read_text()):
        if name:
            (tmp_path / name).write_text(body)
        elif language == "bash":
            command = body.strip()  # no PYTHONPATH=.: `polymodal` finds a module:Class in the current folder
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, check=False, timeout=600)
            assert proc.returncode == 0, f"{command}\nexited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            outputs.append(proc.stdout)
    _, submit, checked, rerun, site = outputs
    (result_path,) = [p for p in (tmp_path / "results" / "xor" / "my-model").glob("v1.*.json")
                      if not p.name.endswith(".card.json")]
    assert f"submission: {Path('results') / 'xor' / 'my-model' / result_path.name}" in submit
    result = json.loads(result_path.read_text())
    assert (result["model"]["name"], result["model"]["source"]) == ("my-model", "mymodels:MyModel")
    assert json.loads((result_path.parent / "v1.card.json").read_text()) == result["model"]
    assert result["metrics"]["acc1"]["outcomes"]["form"] == "draws"
    assert "1 results valid, 0 errors, 1 notes" in checked and "not zero-shot" in checked
    assert f"ok: xor/my-model/{result_path.name}: acc1 claimed" in rerun and "0 not confirmed" in rerun
    assert (tmp_path / "site" / "index.html").is_file() and "site: site/index.html" in site


def test_check_fails_on_a_dataset_outside_every_suite_and_on_a_rejected_file(tmp_path, capsys):
    write(tmp_path, "xor/m/v1.ds.json", make_result(model="m", revision="v1"))
    assert check(build_leaderboard(tmp_path), tmp_path) == 1
    err = capsys.readouterr().err
    assert "xor/m/v1.ds.json: dataset p_hat=0.5 (ds-0.5) belongs to no suite" in err
    write(tmp_path, "xor/m/v2.ds.json", make_result(model="m", revision="v2", value=3.0))
    check(build_leaderboard(tmp_path), tmp_path)
    assert "v2.ds.json: metrics.acc1: 3.0 is outside its declared range" in capsys.readouterr().err


def test_submission_paths_are_one_safe_folder_per_model():
    result = make_result(model="../../etc/pass wd", revision="v1/../x", dataset_id="abc")
    path, card = submission_paths(Path("results"), result)
    assert path == Path("results/xor/_.._etc_pass_wd/v1_.._x.abc.json")
    assert card == Path("results/xor/_.._etc_pass_wd/v1_.._x.card.json")
