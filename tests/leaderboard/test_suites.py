"""A versioned suite ranks only models with every dataset, by Borda count and mean rank."""

from __future__ import annotations

from polymodal.leaderboard import build_leaderboard, write_report
from polymodal.leaderboard.suites import ORDERED_BY, load_suites
from tests.leaderboard.results import make_result, write

SUITE = load_suites()["polymodal-v1"]


def _write_suite(folder, model, scores_by_task, skip=()):
    for task in SUITE["tasks"]:
        for i, dataset in enumerate(task["datasets"]):
            if (task["task"], i) in skip:
                continue
            result = make_result(model=model, value=scores_by_task[task["task"]], dataset_id=dataset["dataset_id"],
                                 label=dataset["folder"], task=task["task"], version=task["version"],
                                 plot=None) | {"references": {}}
            if task["task"] == "symile-m3":
                result["metrics"] = {"acc1": result["metrics"]["acc1"]}
            write(folder, f"{model}/{task['task']}-{i}.json", result)


def test_the_suite_ranks_complete_models_by_borda_and_lists_the_partial_ones(tmp_path):
    _write_suite(tmp_path, "a", {"xor": 0.9, "symile-m3": 0.2})
    _write_suite(tmp_path, "b", {"xor": 0.5, "symile-m3": 0.8})
    _write_suite(tmp_path, "c", {"xor": 0.4, "symile-m3": 0.7})
    _write_suite(tmp_path, "partial", {"xor": 0.99, "symile-m3": 0.99}, skip={("symile-m3", 2)})
    write(tmp_path, "other/xor.json", make_result(model="a", p_hat=0.3, value=0.1))  # not an official dataset
    board = build_leaderboard(tmp_path)
    suite = board["suites"]["polymodal-v1"]
    assert suite["ordered_by"] == ORDERED_BY
    rows = [(e["model"], e["rank"], e["borda"], e["mean_rank"], e["task_ranks"]) for e in suite["entries"]]
    assert rows == [
        ("b", 1, 3.0, 1.5, {"xor@1.0": 2, "symile-m3@1.0": 1}),
        ("a", 2, 2.0, 2.0, {"xor@1.0": 1, "symile-m3@1.0": 3}),
        ("c", 3, 1.0, 2.5, {"xor@1.0": 3, "symile-m3@1.0": 2}),
    ]
    assert suite["partial"] == [{"model": "partial", "model_key": suite["partial"][0]["model_key"],
                                 "coverage": [5, 6]}]
    # The task page ranks by the suite's official datasets; the other one is shown beside, unranked.
    xor = board["tasks"]["xor@1.0"]
    assert [d["label"] for d in xor["datasets"]] == ["p_hat=0", "p_hat=0.5", "p_hat=1"]
    assert [d["label"] for d in xor["other_datasets"]] == ["p_hat=0.3"]
    assert all(d["suite"] == "polymodal-v1" and d["command"].startswith("polymodal build xor")
               for d in xor["datasets"])
    text = write_report(board, tmp_path / "out").read_text()
    assert "## Suite polymodal-v1" in text and "| 1 | b | 3 | 1.50 | 2 | 1 |" in text
    assert "| — | partial | unranked: 5/6 datasets |" in text


def test_a_suite_nobody_completed_says_so(tmp_path):
    _write_suite(tmp_path, "a", {"xor": 0.9, "symile-m3": 0.2}, skip={("xor", 0)})
    board = build_leaderboard(tmp_path)
    assert board["suites"]["polymodal-v1"]["entries"] == []
    assert "no model has a result on every dataset" in write_report(board, tmp_path / "out").read_text()


def test_bench_runs_a_suite_on_its_own_datasets_only(run_cli):
    proc = run_cli("polymodal", "bench", "--suite", "polymodal-v1", "--out", "/nonexistent/x", "--p-hat", "1",
                   check=False)
    assert proc.returncode != 0 and "--suite polymodal-v1 fixes its datasets; drop --p-hat 1" in proc.stderr
    proc = run_cli("polymodal", "bench", "--suite", "polymodal-v1", "--task", "xor", "--out", "x", check=False)
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr


def test_a_published_suite_stays_as_published_and_bench_refuses_one_this_code_cannot_score(run_cli):
    from polymodal.benchmarks.tasks import load_task

    versions = {name: {t["task"]: t["version"] for t in s["tasks"]} for name, s in load_suites().items()}
    assert versions["polymodal-v1"] == {"xor": "1.0", "symile-m3": "1.0"}  # as first published, whatever the code
    assert versions["polymodal-v2"]["symile-m3"] == load_task("symile-m3").version
    v1_ids = [d["dataset_id"] for t in SUITE["tasks"] for d in t["datasets"]]
    assert v1_ids == [d["dataset_id"] for t in load_suites()["polymodal-v2"]["tasks"] for d in t["datasets"]]
    proc = run_cli("polymodal", "bench", "--suite", "polymodal-v1", "--out", "/nonexistent/x", check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "--suite polymodal-v1 pins symile-m3 1.0, which this code no longer scores (it scores 1.1): "
        "run --suite polymodal-v3"]
    # v2 pins Symile-M3 as builder 1.x made it; 2.0.0 renamed the members, so its data (and ids) changed.
    proc = run_cli("polymodal", "bench", "--suite", "polymodal-v2", "--out", "/nonexistent/x", check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "--suite polymodal-v2 pins symile-m3 datasets that this code's symile-m3 builder no longer makes (its "
        "version changed): run --suite polymodal-v3"]
