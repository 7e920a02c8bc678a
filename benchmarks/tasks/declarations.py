"""Export what the leaderboard must know about tasks, models and suites, which it reads without torch.

    python -m polymodal.benchmarks.tasks.declarations          rewrite leaderboard/declarations.json and suites.json
    python -m polymodal.benchmarks.tasks.declarations --check  exit 1 if either is out of date

declarations.json holds every task version's metrics and reference levels (from the Task classes) and the
reference models' names (from the model registry), which only the reference implementations may submit under.
suites.json holds each suite's tasks at their versions and the official datasets' ids and build commands.
Earlier task versions stay in declarations.json, so their results still read; a suite is never changed once
published (the ones in suites.json are kept as they are): a new set of tasks, task versions or datasets is a
new suite version.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

from polymodal.benchmarks.tasks import TASKS, load_task
from polymodal.leaderboard.suites import SUITES_FILENAME

DECLARATIONS_FILENAME = "declarations.json"
REFERENCE_SOURCE = "polymodal"  # the `source` evaluate_run writes for a registered model
#: suite -> (description, {task: the `polymodal bench` dataset options of its official datasets})
SUITES = {
    "polymodal-v1": (
        ("XOR at d=5 for p_hat 0, 0.5 and 1, and Symile-M3 (digits, espeak speech) with 2, 5 and 10 languages: "
         "every dataset builds offline, on a CPU."),
        {"xor": ["--p-hat", "0,0.5,1", "--dim", "5"], "symile-m3": ["--languages", "2,5,10"]},
    ),
    "polymodal-v2": (
        ("polymodal-v1's datasets, with Symile-M3 at protocol 1.1 (which names its 1/w level pairwise_bound): "
         "every dataset builds offline, on a CPU."),
        {"xor": ["--p-hat", "0,0.5,1", "--dim", "5"], "symile-m3": ["--languages", "2,5,10"]},
    ),
}


def task_declarations() -> dict:
    declared = {}
    for name in sorted(TASKS):
        task = load_task(name)
        declared[f"{task.name}@{task.version}"] = {
            "primary_metric": task.primary_metric,
            "metrics": [m.as_json() for m in task.metrics],
            "references": {k: {"label": r.label, "meaning": r.meaning} for k, r in sorted(task.references.items())},
        }
    return declared


def declarations(previous: dict) -> dict:
    from polymodal.baselines.models import MODELS

    return {
        "reference_models": {"source": REFERENCE_SOURCE, "names": sorted(MODELS)},
        "tasks": dict(sorted({**previous.get("tasks", {}), **task_declarations()}.items())),
    }


def suite(description: str, tasks: dict[str, list[str]]) -> dict:
    from polymodal.builders import BUILDERS

    entries = []
    for name, bench_args in tasks.items():
        task = load_task(name)
        datasets = []
        for folder, config in task.bench_configs(bench_args).items():
            builder = BUILDERS[task.builder](config)
            datasets.append({"dataset_id": builder.dataset_id(), "folder": folder, "command": builder.command()})
        entries.append({"task": task.name, "version": task.version, "bench_args": bench_args, "datasets": datasets})
    return {"description": description, "tasks": entries}


def suites(published: dict) -> dict:
    """The published suites as they are, and the others of SUITES as this code defines them."""
    return dict(sorted({**{name: suite(*spec) for name, spec in SUITES.items() if name not in published},
                        **published}.items()))


def _dumps(obj: dict) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def _paths() -> tuple[Path, Path]:
    folder = Path(str(resources.files("polymodal.leaderboard")))
    return folder / DECLARATIONS_FILENAME, folder / SUITES_FILENAME


def main(argv: list[str]) -> int:
    declarations_path, suites_path = _paths()
    previous, published = (json.loads(p.read_text()) if p.is_file() else {} for p in (declarations_path, suites_path))
    wanted = {declarations_path: _dumps(declarations(previous)), suites_path: _dumps(suites(published))}
    stale = [path for path, text in wanted.items() if not path.is_file() or path.read_text() != text]
    if "--check" in argv:
        for path in stale:
            print(f"{path} is out of date: run python -m polymodal.benchmarks.tasks.declarations", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
