"""`polymodal leaderboard check --rerun` confirms a submitted number by training the model again as its result
file records, and fails a result whose record does not give its number."""

from __future__ import annotations

import json

import pytest

from polymodal.builders.core.runner import build
from polymodal.builders.xor import XorBuilder, XorConfig


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    """A suite-less XOR dataset and one submission of the reference Symile on it."""
    root = tmp_path_factory.mktemp("rerun")
    build(XorBuilder(XorConfig(p_hat=1.0, dim=3, train=600, val=100, test=100, test_draws=2, shard_size=300)),
          root / "data" / "xor", progress=False)
    return root


def _submit(run_cli, root, results, model="symile", name="symile"):
    card = results.parent / "card.json"
    card.write_text(json.dumps({"name": name, "revision": "v1"}))
    run_cli("polymodal", "submit", "--task", "xor", "--model", model, "--card", card,
            "--data", root / "data" / "xor", "--out", results.parent / "run", "--epochs", "2", "--results", results,
            "--no-progress")
    (path,) = [p for p in results.rglob("*.json") if not p.name.endswith(".card.json")]
    return path


def _check(run_cli, results, root, *extra):
    return run_cli("polymodal", "leaderboard", "check", results, "--rerun", "--data", root / "data",
                   "--tolerance", "0", *extra, check=False)


def test_an_honest_result_is_confirmed_exactly_on_a_cpu(submitted, tmp_path, run_cli):
    _submit(run_cli, submitted, tmp_path / "results")
    proc = _check(run_cli, tmp_path / "results", submitted)
    line = next(x for x in proc.stdout.splitlines() if x.startswith(("ok:", "error:")))
    assert line.startswith("ok:") and "acc1 claimed" in line, proc.stdout
    claimed, rerun = (float(x.split()[0].rstrip(",")) for x in line.split("claimed ")[1].split("rerun "))
    assert claimed == rerun
    assert "rerun 1 of 1 results, 0 not confirmed" in proc.stdout
    # The dataset belongs to no suite, which the check fails on; the rerun adds nothing to that.
    assert proc.returncode == 1 and "belongs to no suite" in proc.stderr


def test_a_result_whose_record_does_not_give_its_number_is_not_confirmed(submitted, tmp_path, run_cli):
    path = _submit(run_cli, submitted, tmp_path / "results")
    result = json.loads(path.read_text())
    result["model"]["config"]["train"]["epochs"] = 1  # trained for 2: the claim is not what this record gives
    path.write_text(json.dumps(result))
    proc = _check(run_cli, tmp_path / "results", submitted)
    assert "error:" in proc.stdout and "1 not confirmed" in proc.stdout and proc.returncode == 1, proc.stdout


def test_submitted_code_is_rerun_only_with_trust_code(submitted, tmp_path, run_cli):
    _submit(run_cli, submitted, tmp_path / "results", model="tests.benchmarks.test_harness_xor:WrappedSymile",
            name="wrapped")
    proc = _check(run_cli, tmp_path / "results", submitted)
    assert "rerun it only with --trust-code" in proc.stdout and proc.returncode == 1
    proc = _check(run_cli, tmp_path / "results", submitted, "--trust-code")
    assert "0 not confirmed" in proc.stdout, proc.stdout + proc.stderr


def test_a_dataset_not_under_data_is_named(submitted, tmp_path, run_cli):
    _submit(run_cli, submitted, tmp_path / "results")
    (tmp_path / "empty").mkdir()
    proc = run_cli("polymodal", "leaderboard", "check", tmp_path / "results", "--rerun", "--data", tmp_path / "empty",
                   check=False)
    assert "no dataset" in proc.stdout and "1 not confirmed" in proc.stdout and "Traceback" not in proc.stderr


def test_rerun_without_data_is_one_line(submitted, tmp_path, run_cli):
    proc = run_cli("polymodal", "leaderboard", "check", tmp_path, "--rerun", check=False)
    assert proc.returncode != 0 and "--rerun needs --data" in proc.stderr and len(proc.stderr.splitlines()) == 1
