"""`polymodal leaderboard check --rerun`: train a submitted model again as its result file records, and compare.

A result file names everything that produced it: the task, the model's source and config, the training config
and seed, and the dataset by id. Rerunning that on the same dataset must give the claimed primary metric: on a
CPU exactly, elsewhere within the tolerance the check states. The check lives in the leaderboard, which needs no
torch; only its --rerun comes here.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from polymodal.baselines.models import is_installed
from polymodal.benchmarks.runs import evaluate_run, train_run
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.builders.core.manifest import MANIFEST
from polymodal.leaderboard.text import safe

REFERENCE_SOURCE = "polymodal"  # the source a reference model's card names (benchmarks/runs.py)


def rerun_results(results: Path, paths: list[str], data: Path, tolerance: float, limit: int,
                  trust_code: bool = False, progress: bool = False) -> int:
    """Rerun the first `limit` of `paths` (result files under `results`, in sorted order) on the datasets
    found under `data`; print a line per result and return how many did not confirm their claim."""
    datasets = _datasets(data)
    failed = 0
    for path in sorted(paths)[:limit]:
        confirmed, line = _rerun_one(results / path, datasets, data, tolerance, trust_code, progress)
        failed += not confirmed
        print(f"{'ok' if confirmed else 'error'}: {safe(path)}: {safe(line)}")
    print(f"rerun {min(limit, len(paths))} of {len(paths)} results, {failed} not confirmed")
    return failed


def _rerun_one(path: Path, datasets: dict[str, Path], data: Path, tolerance: float, trust_code: bool,
               progress: bool) -> tuple[bool, str]:
    """Whether the result at `path` is confirmed, and what was compared or why it could not be."""
    result = json.loads(path.read_text(encoding="utf-8"))
    model, dataset = result["model"], result["dataset"]
    spec = model["name"] if model["source"] == REFERENCE_SOURCE else model["source"]
    if not is_installed(spec) and not trust_code:
        return False, f"the model {spec!r} is code from the submission; rerun it only with --trust-code"
    folder = datasets.get(dataset["id"])
    if folder is None:
        return False, f"no dataset {dataset['id']} ({dataset['label']}) under {data}; build it as its suite says"
    config = model.get("config") or {}
    try:
        train = TrainConfig(**config.get("train", {}))
    except TypeError as err:
        return False, f"its training config cannot be used: {err}"
    with tempfile.TemporaryDirectory(prefix="polymodal-rerun-") as tmp:
        run = Path(tmp) / "run"
        train_run(result["task"]["name"], spec, folder, run, train, model_config=config.get("model", {}),
                  progress=progress)
        again = evaluate_run(run, trust_code=True)  # trusted above
    metric = result["primary_metric"]
    claimed, measured = result["metrics"][metric]["value"], again["metrics"][metric]["value"]
    line = f"{metric} claimed {claimed:.4f}, rerun {measured:.4f} (tolerance {tolerance:g})"
    return abs(claimed - measured) <= tolerance, line


def _datasets(data: Path) -> dict[str, Path]:
    """dataset_id -> folder, for every built dataset under `data`."""
    found = {}
    for manifest in sorted(data.rglob(MANIFEST)):
        try:
            found.setdefault(json.loads(manifest.read_text(encoding="utf-8"))["dataset_id"], manifest.parent)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a manifest of ours; train_run checks the one it uses
    return found
