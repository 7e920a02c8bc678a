"""Run folders: a folder holding another run is refused, --resume and --overwrite say what they do, writes
are atomic, a folder is locked while it trains, and nothing a folder names is imported unasked."""

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from polymodal.benchmarks import data
from polymodal.benchmarks.runs import RESULT, RUN_FILE, evaluate_run, train_run
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.builders.core.runner import LOCK, build
from polymodal.builders.xor import XorBuilder, XorConfig
from tests.helpers import ROOT

FAST = TrainConfig(epochs=2, batch_size=200, lr=0.05, seed=0)


@pytest.fixture(scope="module")
def xor_data(tmp_path_factory):
    data = tmp_path_factory.mktemp("xor")
    build(XorBuilder(XorConfig(p_hat=1.0, train=400, val=200, test=200, test_draws=1, shard_size=400)), data, progress=False)
    return data


@pytest.fixture(scope="module")
def finished(xor_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "symile"
    train_run("xor", "symile", xor_data, run, FAST, progress=False)
    evaluate_run(run)
    return run


def _copy(run, to):
    shutil.copytree(run, to)
    return to


def _edit_record(run, **fields):
    record = json.loads((run / RUN_FILE).read_text())
    (run / RUN_FILE).write_text(json.dumps({**record, **fields}))


def test_another_model_over_a_finished_run_is_refused_and_keeps_its_result(finished, xor_data, tmp_path):
    run = _copy(finished, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.name != LOCK}
    with pytest.raises(SystemExit, match="holds a finished run of 'symile'.*--resume.*--overwrite"):
        train_run("xor", "clip", xor_data, run, FAST, progress=False)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.name != LOCK} == before


def test_refusals_on_the_command_line_are_one_line(finished, xor_data, tmp_path, run_cli):
    run = _copy(finished, tmp_path / "run")
    record = (run / RUN_FILE).read_bytes()
    for extra, says in [((), "--overwrite to replace it"), (("--resume", "--overwrite"), "pass one of them")]:
        proc = run_cli("polymodal", "train", "--task", "xor", "--model", "clip", "--data", xor_data, "--out", run,
                       "--no-progress", *extra, check=False)
        assert proc.returncode == 1 and says in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert (run / RUN_FILE).read_bytes() == record


def test_resume_with_other_settings_names_the_setting_that_differs(finished, xor_data, tmp_path):
    run = _copy(finished, tmp_path / "run")
    record = (run / RUN_FILE).read_bytes()
    with pytest.raises(SystemExit, match=r"\(differing: model\)"):
        train_run("xor", "clip", xor_data, run, FAST, progress=False, resume=True)
    assert (run / RUN_FILE).read_bytes() == record  # a failed --resume leaves the finished record as it was


def test_resume_of_a_finished_run_keeps_its_summary(finished, xor_data, tmp_path):
    run = _copy(finished, tmp_path / "run")
    summary = json.loads((run / RUN_FILE).read_text())["summary"]
    train_run("xor", "symile", xor_data, run, FAST, progress=False, resume=True)
    assert json.loads((run / RUN_FILE).read_text())["summary"] == summary


def test_a_resume_that_fails_leaves_the_finished_record(finished, xor_data, tmp_path):
    run = _copy(finished, tmp_path / "run")
    record = (run / RUN_FILE).read_bytes()
    (run / "trainer_state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="trainer_state.pt is no checkpoint to resume from"):
        train_run("xor", "symile", xor_data, run, FAST, progress=False, resume=True)
    assert (run / RUN_FILE).read_bytes() == record  # never rewritten with summary null


def test_overwrite_clears_the_old_run_and_its_result(finished, xor_data, tmp_path):
    run = _copy(finished, tmp_path / "run")
    train_run("xor", "clip", xor_data, run, FAST, progress=False, overwrite=True)
    assert json.loads((run / RUN_FILE).read_text())["model"] == "clip"
    assert not (run / RESULT).exists()  # symile's result went with its run


def test_a_run_folder_in_use_is_refused_naming_the_holder(finished, xor_data, tmp_path):
    run = _copy(finished, tmp_path / "run")
    with open(run / LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write("4242")
        handle.flush()
        with pytest.raises(SystemExit, match=r"in use by a training run \(pid 4242\)"):
            train_run("xor", "symile", xor_data, run, FAST, progress=False, resume=True)


def test_results_say_what_was_checked(finished):
    result = json.loads((finished / RESULT).read_text())
    data = Path(json.loads((finished / RUN_FILE).read_text())["data"])
    manifest = json.loads((data / "manifest.json").read_text())
    assert result["dataset"]["content_digest"] == manifest["content_digest"]
    assert result["verified"] is True


def test_no_verify_is_stated_in_the_result(finished, tmp_path, run_cli):
    out = tmp_path / "result.json"
    run_cli("polymodal", "eval", finished, "--out", out, "--no-verify")
    assert json.loads(out.read_text())["verified"] is False


def test_a_run_trained_without_the_check_says_so_when_scored_with_it(xor_data, tmp_path):
    data.skip_verification()
    try:
        train_run("xor", "symile", xor_data, tmp_path / "run", FAST, progress=False)
    finally:
        data._checks["on"] = True
    assert evaluate_run(tmp_path / "run")["verified"] is False


def test_a_run_is_not_scored_on_other_shards_than_it_trained_on(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    _edit_record(run, content_digest="0" * 64)  # as if the dataset had been rebuilt into other shards since
    with pytest.raises(SystemExit, match="holds other shards"):
        evaluate_run(run)


def _hostile(finished, folder):
    """A downloaded run folder whose run.json names a module of its own that leaves a mark when imported."""
    run = _copy(finished, folder)
    _edit_record(run, model="evil:Model")
    (run / "evil.py").write_text(MARKER)
    return run


MARKER = "import pathlib\npathlib.Path(__file__).with_name('MARK').write_text('ran')\n"


def test_opening_a_run_folder_never_imports_the_code_it_names(finished, tmp_path):
    run = _hostile(finished, tmp_path / "run")
    sys.path.insert(0, str(run))
    try:
        with pytest.raises(SystemExit, match="neither built in nor installed.*--trust-code"):
            evaluate_run(run)
    finally:
        sys.path.remove(str(run))
    assert not (run / "MARK").exists()


def test_python_m_polymodal_inside_the_folder_does_not_import_from_it(finished, tmp_path):
    run = _hostile(finished, tmp_path / "run")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "polymodal", "eval", "."], check=False, cwd=run, env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "--trust-code" in proc.stderr and "Traceback" not in proc.stderr
    assert not (run / "MARK").exists()
    # Asked for, it is imported (from where the user put it on the path), as transformers' trust_remote_code does.
    proc = subprocess.run([sys.executable, "-m", "polymodal", "eval", ".", "--trust-code"], check=False, cwd=run,
                          env={**env, "PYTHONPATH": f"{ROOT}{os.pathsep}{run}"}, capture_output=True, text=True)
    assert (run / "MARK").exists()
    assert "evil has no class 'Model'" in proc.stderr and "Traceback" not in proc.stderr  # it defines none


def test_a_data_path_in_a_run_folder_never_reaches_the_shell(finished, xor_data, tmp_path, monkeypatch):
    run = _copy(finished, tmp_path / "run")
    shutil.copytree(xor_data, run / "pipe:touch MARK && true")  # webdataset runs a `pipe:` URL through the shell
    _edit_record(run, data="pipe:touch MARK && true")
    monkeypatch.chdir(run)
    evaluate_run(Path("."))  # scores the folder's copy of the dataset, read as files
    assert not (run / "MARK").exists()
