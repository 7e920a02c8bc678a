"""Result files: one self-describing JSON per (model, task, dataset), checked against the leaderboard schema."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

from polymodal.benchmarks.provenance import code_version, hardware
from polymodal.benchmarks.tasks.base import Evaluation, Task
from polymodal.builders.core.tarshards import write_atomic
from polymodal.leaderboard.schema import SCHEMA_VERSION, validate_result


def make_result(task: Task, manifest: dict, card: dict, evaluation: Evaluation, seed: int, device: str,
                wall_time_s: float, verified: bool) -> dict:
    """`verified`: whether the shards trained and scored on were checked against the manifest (not with
    --no-verify)."""
    result = {
        "schema_version": SCHEMA_VERSION,
        "task": {"name": task.name, "version": task.version},
        "dataset": {
            "id": manifest["dataset_id"],
            "content_digest": manifest["content_digest"],
            "builder": manifest["builder"],
            "builder_version": manifest["builder_version"],
            "label": task.dataset_label(manifest),
            "params": task.dataset_params(manifest),
        },
        "model": card,
        "metrics": evaluation.metrics,
        "primary_metric": task.primary_metric,
        "references": evaluation.references,
        "verified": verified,
        "seed": seed,
        "code_version": code_version(),
        "hardware": hardware(device),
        "wall_time_s": round(wall_time_s, 3),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if task.plot is not None:
        result["plot"] = dict(task.plot)
    if evaluation.scoring:
        result["scoring"] = dict(evaluation.scoring)
    for name, metric in evaluation.metrics.items():
        if not math.isfinite(metric["value"]):
            raise ValueError(f"metric {name} is {metric['value']}: training diverged; no result is written")
    validate_result(result)
    return result


def write_result(result: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(result, indent=2, sort_keys=True) + "\n").encode())  # never a half file
    return path
