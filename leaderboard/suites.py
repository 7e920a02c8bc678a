"""Versioned suites: a fixed set of task versions on official datasets, and one ranking over all of them.

suites.json names, per suite, each task at its version and its official
datasets by dataset id, with the command that builds each. A model is ranked
on a suite only with a result on every one of its datasets (as MTEB ranks a
benchmark); the others are listed with their coverage. Models are ranked per
task (mean primary metric over the task's datasets), then aggregated two
ways: the mean of their task ranks, and a Borda count (per task, one point
for each model ranked below, half for each tied). The Borda count orders the
table; the mean rank breaks its ties.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from typing import Any

from polymodal.leaderboard.ranking import rank

SUITES_FILENAME = "suites.json"
ORDERED_BY = "Borda count over the suite's tasks (ties: lower mean rank)"


@functools.cache
def load_suites() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath(SUITES_FILENAME).read_text("utf-8"))


def official_ids(task_key: str) -> set[str]:
    """The dataset ids that some suite names for this task version."""
    return {d["dataset_id"] for suite in load_suites().values() for t in suite["tasks"]
            if f"{t['task']}@{t['version']}" == task_key for d in t["datasets"]}


def suite_of(task_key: str, dataset_id: str) -> dict[str, Any] | None:
    """(suite name, its entry for the dataset) of the first suite naming this dataset for this task version."""
    for name, suite in sorted(load_suites().items()):
        for task in suite["tasks"]:
            if f"{task['task']}@{task['version']}" == task_key:
                for dataset in task["datasets"]:
                    if dataset["dataset_id"] == dataset_id:
                        return {"suite": name, **dataset}
    return None


def rank_suite(name: str, per_task: dict[str, dict[str, dict[str, Any]]], labels: dict[str, str]) -> dict[str, Any]:
    """The suite's board. `per_task`: task key -> model key -> {dataset id: primary metric} (the model's results
    on that task version's datasets, by id)."""
    suite = load_suites()[name]
    tasks = [(f"{t['task']}@{t['version']}", [d["dataset_id"] for d in t["datasets"]]) for t in suite["tasks"]]
    needed = sum(len(ids) for _, ids in tasks)
    models = sorted({m for key, _ in tasks for m in per_task.get(key, {})})
    covered = {m: sum(i in per_task.get(key, {}).get(m, {}) for key, ids in tasks for i in ids) for m in models}
    complete = [m for m in models if covered[m] == needed]
    task_ranks: dict[str, dict[str, int]] = {}
    task_scores: dict[str, dict[str, float]] = {}
    for key, ids in tasks:
        ranked, _ = rank({m: per_task[key][m] for m in complete}, ids, labels)
        task_ranks[key] = {e["model_key"]: e["rank"] for e in ranked}
        task_scores[key] = {e["model_key"]: e["score"] for e in ranked}
    entries = []
    for m in complete:
        ranks = [task_ranks[key][m] for key, _ in tasks]
        borda = math.fsum(_borda(task_ranks[key], m) for key, _ in tasks)
        entries.append({"model": labels[m], "model_key": m, "borda": borda, "mean_rank": sum(ranks) / len(ranks),
                        "task_ranks": {key: task_ranks[key][m] for key, _ in tasks},
                        "task_scores": {key: task_scores[key][m] for key, _ in tasks}})
    entries.sort(key=lambda e: (-e["borda"], e["mean_rank"], e["model"], e["model_key"]))
    for i, entry in enumerate(entries):  # equal Borda and mean rank: a shared rank
        before = entries[i - 1] if i else None
        same = before is not None and (before["borda"], before["mean_rank"]) == (entry["borda"], entry["mean_rank"])
        entry["rank"] = before["rank"] if same else i + 1
    partial = [{"model": labels[m], "model_key": m, "coverage": [covered[m], needed]} for m in models
               if m not in complete]
    partial.sort(key=lambda e: (-e["coverage"][0], e["model"], e["model_key"]))
    return {"name": name, "description": suite["description"], "tasks": suite["tasks"], "ordered_by": ORDERED_BY,
            "entries": entries, "partial": partial}


def _borda(ranks: dict[str, int], model: str) -> float:
    mine = ranks[model]
    return sum(1.0 if r > mine else 0.5 for other, r in ranks.items() if other != model and r >= mine)
