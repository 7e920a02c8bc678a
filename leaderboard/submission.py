"""Submitting results to a results repository, and the check its CI runs on a pull request.

A submission's files sit where the model's identity says:

    results/<task>/<model>/<revision>.<dataset_id>.json   one result per dataset the model was scored on
    results/<task>/<model>/<revision>.card.json           the model card, once per revision

(a result holds one dataset, and a task has several, hence the dataset id in
the name). `polymodal leaderboard check results/` validates every file as the
board would, and names what the board would not rank: datasets outside every
suite, and results whose card says the model trained on the dataset it was
scored on (shown, but never as zero-shot).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from polymodal.leaderboard.scan import CARD_SUFFIX
from polymodal.leaderboard.text import safe

UNVERSIONED = "unversioned"  # the revision folder of a card that names none


def submission_paths(results: Path, result: dict[str, Any]) -> tuple[Path, Path]:
    """(result file, card file) of `result` under the results folder."""
    model = result["model"]
    folder = results / _part(result["task"]["name"]) / _part(model["name"])
    revision = _part(model.get("revision") or UNVERSIONED)
    return folder / f"{revision}.{_part(result['dataset']['id'])}.json", folder / f"{revision}{CARD_SUFFIX}"


def write_submission(result: dict[str, Any], results: Path) -> Path:
    """Write `result` and its model card under `results`; return the result's path."""
    path, card = submission_paths(results, result)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, content in ((path, result), (card, result["model"])):
        partial = target.with_name(target.name + ".partial")  # renamed into place: never a half file
        partial.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        partial.replace(target)
    return path


def check(board: dict[str, Any], results: Path) -> int:
    """Print what a pull request's CI should say about `board` built from `results`; 1 if it must not merge."""
    errors, notes = [], []
    errors += [f"{item['path']}: {item['reason']}" for item in board["rejected"]]
    for task in board["tasks"].values():
        for entry in task["entries"] + task["partial"]:
            card = board["models"][entry["model_key"]]["card"]
            for key, path in entry["results"].items():
                dataset = board["datasets"][key]
                if dataset["suite"] is None:
                    errors.append(f"{path}: dataset {dataset['label']} ({dataset['id']}) belongs to no suite; "
                                  "score the model on a suite's official datasets (see suites.json)")
                if trained_on(card, dataset):
                    notes.append(f"{path}: the card's training_data names this dataset: listed as trained on the "
                                 "task's data, not zero-shot")
    for line in errors:
        print(f"error: {safe(line)}", file=sys.stderr)
    for line in notes:
        print(f"note: {safe(line)}")
    print(f"{board['results_scanned'] - len(board['rejected'])} results valid, {len(errors)} errors, "
          f"{len(notes)} notes")
    return 1 if errors else 0


def trained_on(card: dict[str, Any], dataset: dict[str, Any]) -> bool:
    """Whether the card's training_data names the dataset (its id or digest), as the harness's cards do."""
    said = card.get("training_data") or ""
    return any(name and name in said for name in (dataset["id"], dataset.get("content_digest")))


def _part(text: str) -> str:
    # One safe path component: no separator, no "..", nothing hidden.
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text).lstrip(".") or "_"
