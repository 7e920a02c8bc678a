"""Turning a folder of result files into one leaderboard.

Every file is judged on its own: a bad one is listed under "rejected" with its
reason and the rest still make the board. The output depends only on the
files' contents and their paths relative to the results folder (and on which
`created` dates lie in the future), so rebuilding it is repeatable.

Which datasets rank a task: the official ones of the suites naming that task
version, where any were run; otherwise those that at least two models ran
(a dataset only one model ran compares nothing), or every one if there is a
single model. The other datasets are shown beside, unranked.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from polymodal.leaderboard.declarations import task_declaration
from polymodal.leaderboard.identity import (
    dataset_key,
    dataset_labels,
    model_key,
    model_labels,
    reserved_name_problem,
    slug,
)
from polymodal.leaderboard.ranking import GROUPS, rank
from polymodal.leaderboard.scan import BOARD_FILENAME, scan
from polymodal.leaderboard.schema import ResultError, load_result, parse_created
from polymodal.leaderboard.suites import load_suites, official_ids, rank_suite, suite_of
from polymodal.leaderboard.uncertainty import score_interval

BOARD_VERSION = 2
__all__ = ["BOARD_FILENAME", "build_leaderboard", "read_leaderboard", "task_key", "write_leaderboard"]

Result = tuple[str, dict[str, Any]]  # (path relative to the results folder, parsed result)


def build_leaderboard(results_dir: str | Path) -> dict[str, Any]:
    """Scan `results_dir` for result files and rank the models of every task version and suite."""
    root = Path(results_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"results directory {root} does not exist or is not a directory")
    found, skipped = scan(root)
    accepted, rejected = _read(found)
    kept, superseded = _newest(accepted)
    cards = {model_key(r["model"]): r["model"] for _, r in _oldest_first(kept)}
    labels = model_labels(cards)
    datasets = _datasets(kept)
    by_task: dict[str, list[Result]] = defaultdict(list)
    for relative, result in kept:
        by_task[task_key(result)].append((relative, result))
    tasks = {key: _task(key, results, datasets, labels) for key, results in sorted(by_task.items())}
    return {
        "schema_version": BOARD_VERSION,
        "results_scanned": len(found),
        "skipped": skipped,
        "rejected": sorted(rejected, key=lambda item: item["path"]),
        "superseded": sorted(superseded, key=lambda item: item["path"]),
        "models": {key: {"key": key, "label": labels[key], "slug": slug(labels[key], key), "card": card}
                   for key, card in sorted(cards.items())},
        "datasets": datasets,
        "tasks": tasks,
        "suites": {name: _suite(name, kept, labels) for name in sorted(load_suites())},
        "groups": GROUPS,
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


def _read(found) -> tuple[list[Result], list[dict[str, str]]]:
    accepted, rejected = [], []
    for item in found:
        if item.outside:
            rejected.append({"path": item.relative, "reason": "a symbolic link out of the results folder: not followed"})
            continue
        try:
            result = load_result(item.path)
        except ResultError as exc:
            rejected.append({"path": item.relative, "reason": exc.reason})
            continue
        problem = reserved_name_problem(result["model"])
        if problem:
            rejected.append({"path": item.relative, "reason": problem})
        else:
            accepted.append((item.relative, result))
    return accepted, rejected


def _oldest_first(results: list[Result]) -> list[Result]:
    # Equal timestamps fall back to the path, so every "newest" choice is stable.
    return sorted(results, key=lambda item: (parse_created(item[1]["created"]), item[0]))


def _newest(results: list[Result]) -> tuple[list[Result], list[dict[str, str]]]:
    """One result per (task version, model, dataset): the newest; the others are superseded."""
    groups: dict[tuple[str, str, str], list[Result]] = defaultdict(list)
    for item in _oldest_first(results):
        result = item[1]
        groups[task_key(result), model_key(result["model"]), dataset_key(result["dataset"])].append(item)
    kept = [group[-1] for group in groups.values()]
    dropped = [{"path": relative, "superseded_by": group[-1][0]} for group in groups.values() for relative, _ in group[:-1]]
    return kept, dropped


def _datasets(results: list[Result]) -> dict[str, dict[str, Any]]:
    """Every dataset on the board by key, described as its newest result describes it."""
    described: dict[str, dict[str, Any]] = {}
    for _, result in _oldest_first(results):
        dataset, key = result["dataset"], dataset_key(result["dataset"])
        official = suite_of(task_key(result), dataset["id"])
        described[key] = {"key": key, "id": dataset["id"], "content_digest": dataset.get("content_digest"),
                          "builder": dataset["builder"], "builder_version": dataset["builder_version"],
                          "label": dataset["label"], "params": dataset["params"],
                          "references": result.get("references", {}), "task": task_key(result),
                          "suite": official and official["suite"], "command": official and official["command"]}
    labels = dataset_labels(described)
    for key, dataset in described.items():
        dataset["label"] = labels[key]
        dataset["slug"] = slug(labels[key], key)
    return dict(sorted(described.items()))


def _task(key: str, results: list[Result], datasets: dict[str, dict[str, Any]], labels: dict[str, str]) -> dict:
    declaration = task_declaration(key)  # every accepted result's task is declared
    primary = declaration.primary_metric
    scores: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # model -> dataset -> primary metric
    every: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # model -> dataset -> {metric: shown}
    paths: dict[str, dict[str, str]] = defaultdict(dict)  # model -> dataset -> result file
    for relative, result in results:
        model, dataset = model_key(result["model"]), dataset_key(result["dataset"])
        scores[model][dataset] = result["metrics"][primary]
        every[model][dataset] = {name: _shown(metric) for name, metric in sorted(result["metrics"].items())}
        paths[model][dataset] = relative
    columns = _ranking_columns(key, scores, datasets)
    ranked, partial = rank(scores, columns, labels, declaration.metric(primary).higher_is_better is not False)
    for entry in ranked + partial:
        entry["scores"] = every[entry["model_key"]]
        entry["results"] = dict(sorted(paths[entry["model_key"]].items()))
    others = sorted({d for by_dataset in scores.values() for d in by_dataset} - set(columns), key=_order(datasets))
    return {
        "name": declaration.name,
        "version": declaration.version,
        "primary_metric": primary,
        "metrics": [m.as_json() for m in declaration.metrics],
        "references": {name: vars(ref) for name, ref in declaration.references.items()},
        "datasets": [datasets[d] for d in columns],
        "other_datasets": [datasets[d] for d in others],
        "entries": ranked,
        "partial": partial,
        "plot": _oldest_first(results)[-1][1].get("plot"),  # as the newest result declares it
    }


def _shown(metric: dict[str, Any]) -> dict[str, Any]:
    """What the board keeps of a metric: the numbers and an interval, not the outcomes behind them."""
    return {"value": metric["value"], "stderr": metric.get("stderr"), "n": metric.get("n"),
            "interval": score_interval([metric]).as_json()}


def _ranking_columns(key: str, scores: dict[str, dict[str, Any]], datasets: dict[str, dict[str, Any]]) -> list[str]:
    ran = {d for by_dataset in scores.values() for d in by_dataset}
    official = {d for d in ran if datasets[d]["id"] in official_ids(key)}
    if official:
        columns = official
    elif len(scores) > 1:
        columns = {d for d in ran if sum(d in by_dataset for by_dataset in scores.values()) >= 2}
    else:
        columns = ran
    return sorted(columns, key=_order(datasets))


def _order(datasets: dict[str, dict[str, Any]]):
    # Numbers compare as numbers (p_hat 0.25 before 0.5 before 1.0), anything else by its JSON text.
    def value_order(value: Any) -> tuple:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (0, value, "")
        return (1, 0, json.dumps(value, sort_keys=True))

    def order(key: str) -> tuple:
        dataset = datasets[key]
        return tuple((k, value_order(v)) for k, v in sorted(dataset["params"].items())), dataset["label"], key

    return order


def _suite(name: str, results: list[Result], labels: dict[str, str]) -> dict[str, Any]:
    per_task: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for _, result in results:
        primary = result["metrics"][result["primary_metric"]]
        per_task[task_key(result)][model_key(result["model"])][result["dataset"]["id"]] = primary
    return rank_suite(name, per_task, labels)
