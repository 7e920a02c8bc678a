"""Turning a directory of result files into one ranked leaderboard.

Every file is judged on its own: a bad one is listed under "rejected" and the
rest still make the board. The output depends only on the files' contents and
their paths relative to the results directory, so rebuilding it is repeatable.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable

from polymodal.leaderboard.schema import ResultError, load_result, parse_created

BOARD_VERSION = 1
BOARD_FILENAME = "leaderboard.json"  # skipped while scanning: it may sit among the results

Result = tuple[str, dict[str, Any]]  # (path relative to the results directory, parsed result)


def build_leaderboard(results_dir: str | Path) -> dict[str, Any]:
    """Scan `results_dir/**/*.json` and rank the models of every task version."""
    root = Path(results_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"results directory {root} does not exist or is not a directory")
    paths = sorted(path for path in root.rglob("*.json") if path.name != BOARD_FILENAME)
    accepted: list[Result] = []
    rejected: list[dict[str, str]] = []
    for path in paths:
        relative = path.relative_to(root).as_posix()
        try:
            accepted.append((relative, load_result(path)))
        except ResultError as exc:
            rejected.append({"path": relative, "reason": exc.reason})
    by_task: dict[str, list[Result]] = defaultdict(list)
    for relative, result in accepted:
        by_task[task_key(result)].append((relative, result))
    tasks: dict[str, Any] = {}
    superseded: list[dict[str, str]] = []
    for key, results in by_task.items():
        primary = _agreed_primary_metric(results)
        agreeing = []
        for relative, result in results:
            if result["primary_metric"] == primary:
                agreeing.append((relative, result))
            else:
                rejected.append({"path": relative, "reason": (
                    f"primary_metric {result['primary_metric']!r} disagrees with {primary!r}, "
                    f"which the other {key} results use")})
        kept, dropped = _newest_per_model_and_dataset(agreeing)
        superseded.extend(dropped)
        tasks[key] = _rank_task(kept, primary)
    return {
        "schema_version": BOARD_VERSION,
        "results_scanned": len(paths),
        "rejected": sorted(rejected, key=lambda item: item["path"]),
        "superseded": sorted(superseded, key=lambda item: item["path"]),
        "tasks": tasks,
    }


def task_key(result: dict[str, Any]) -> str:
    """Versions of a task are ranked apart: scores under different versions need not compare."""
    return f"{result['task']['name']}@{result['task']['version']}"


def dumps_leaderboard(board: dict[str, Any]) -> str:
    return json.dumps(board, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_leaderboard(board: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps_leaderboard(board), encoding="utf-8")
    return path


def read_leaderboard(path: str | Path) -> dict[str, Any]:
    """Load a board written by write_leaderboard; ValueError if it is not one this code reads."""
    board = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(board, dict) or board.get("schema_version") != BOARD_VERSION:
        version = board.get("schema_version") if isinstance(board, dict) else None
        raise ValueError(f"{path}: leaderboard schema_version is {version!r}, expected {BOARD_VERSION}")
    return board


def _agreed_primary_metric(results: list[Result]) -> str:
    # One metric per task version; the majority decides, ties go to the first name.
    counts = Counter(result["primary_metric"] for _, result in results)
    return max(sorted(counts), key=counts.__getitem__)


def _newest_per_model_and_dataset(results: list[Result]) -> tuple[list[Result], list[dict[str, str]]]:
    groups: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for relative, result in results:
        groups[result["model"]["name"], result["dataset"]["id"]].append((relative, result))
    kept, dropped = [], []
    for group in groups.values():
        # Newest first; equal timestamps fall back to the path so the choice is stable.
        group.sort(key=lambda item: (parse_created(item[1]["created"]), item[0]), reverse=True)
        kept.append(group[0])
        dropped.extend({"path": relative, "superseded_by": group[0][0]} for relative, _ in group[1:])
    return kept, dropped


def _rank_task(results: list[Result], primary: str) -> dict[str, Any]:
    name, version = results[0][1]["task"]["name"], results[0][1]["task"]["version"]
    datasets = _datasets(results)
    per_model: dict[str, list[Result]] = defaultdict(list)
    for relative, result in results:
        per_model[result["model"]["name"]].append((relative, result))
    entries = [_entry(model, runs, primary, len(datasets)) for model, runs in per_model.items()]
    entries.sort(key=lambda entry: (-entry["score"], entry["model"]))
    for rank, entry in enumerate(entries, start=1):
        entry["rank"] = rank
    return {"name": name, "version": version, "primary_metric": primary, "datasets": datasets, "entries": entries,
            "plot": _plot(results)}


def _datasets(results: list[Result]) -> list[dict[str, Any]]:
    # Describe each dataset as its newest result does, should older ones disagree.
    newest: dict[str, dict[str, Any]] = {}
    for _, result in sorted(results, key=lambda item: (parse_created(item[1]["created"]), item[0])):
        newest[result["dataset"]["id"]] = result
    datasets = [
        {
            "id": dataset_id,
            "label": result["dataset"]["label"],
            "params": result["dataset"]["params"],
            "references": result.get("references", {}),
        }
        for dataset_id, result in newest.items()
    ]
    return sorted(datasets, key=lambda d: (_params_order(d["params"]), d["label"], d["id"]))


def _plot(results: list[Result]) -> dict[str, str] | None:
    # The task's own plot declaration, as its newest result states it; None: the task draws none.
    newest = max(results, key=lambda item: (parse_created(item[1]["created"]), item[0]))
    return newest[1].get("plot")


def _params_order(params: dict[str, Any]) -> tuple:
    # Numbers compare as numbers (p_hat 0.25 before 0.5 before 1.0), anything else by
    # its JSON text; the tag keeps values of different kinds from being compared.
    def value_order(value: Any) -> tuple:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (0, value, "")
        return (1, 0, json.dumps(value, sort_keys=True))

    return tuple((key, value_order(value)) for key, value in sorted(params.items()))


def _entry(model: str, runs: Iterable[Result], primary: str, total_datasets: int) -> dict[str, Any]:
    scores, paths = {}, []
    for relative, result in runs:
        metric = result["metrics"][primary]
        scores[result["dataset"]["id"]] = {"value": metric["value"], "stderr": metric.get("stderr")}
        paths.append(relative)
    return {
        "model": model,
        # Mean over the datasets the model was run on; coverage says how many that was.
        "score": math.fsum(score["value"] for score in scores.values()) / len(scores),
        "coverage": len(scores) / total_datasets,
        "scores": scores,
        "results": sorted(paths),
    }
