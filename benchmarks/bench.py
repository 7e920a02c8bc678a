"""`polymodal bench` and `quickstart`: build a task's datasets, train and score models on each, rank them."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from polymodal.benchmarks.results import write_result
from polymodal.benchmarks.runs import RESULT, evaluate_run, train_run
from polymodal.benchmarks.tasks import load_task
from polymodal.builders import BUILDERS
from polymodal.builders.core.runner import build
from polymodal.configfile import CONFIG_FILE, dump
from polymodal.leaderboard.aggregate import build_leaderboard, write_leaderboard
from polymodal.leaderboard.report import format_table, write_report
from polymodal.leaderboard.site import write_site

QUICKSTART = {"task": "xor", "models": ["clip", "symile"], "dataset_args": ["--p-hat", "0,0.5,1", "--dim", "5"]}


def folder_name(spec: str) -> str:
    """A model spec (or name) as a file or folder name."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", spec)


def print_metrics(result: dict) -> None:
    # The primary metric only: a task may report a hundred more, all in the result file.
    name = result["primary_metric"]
    v = result["metrics"][name]
    primary = f"{name} {v['value']:.4f}" + (f" ± {v['stderr']:.4f}" if v.get("stderr") is not None else "")
    refs = ", ".join(f"{k} {v:.4f}" for k, v in result.get("references", {}).items())
    more = len(result["metrics"]) - 1
    print(f"{result['model']['name']} on {result['task']['name']} [{result['dataset']['label']}]: {primary}"
          + (f" ({refs})" if refs else "") + (f"; {more} more metrics in the result file" if more else ""))


def bench(task_name: str, models: list[str], out: Path, dataset_args: list[str], seed: int = 0, workers: int = 2,
          progress: bool = True) -> dict:
    """Build, train, score and rank; every step resumes where a previous call stopped."""
    task = load_task(task_name)
    train = dataclasses.replace(task.train_defaults, seed=seed)
    for folder, config in task.bench_configs(dataset_args).items():
        data = out / "data" / task.name / folder
        build(BUILDERS[task.builder](config), data, workers=workers, progress=progress)
        for spec in models:
            run = out / "runs" / task.name / folder / folder_name(spec)
            if not (run / RESULT).is_file():
                print(f"== {task.name} [{folder}] {spec}", flush=True)
                train_run(task.name, spec, data, run, train, progress=progress, resume=True)
                # what `polymodal train --config RUN/config.yaml` needs to make this run again
                (run / CONFIG_FILE).write_text(dump({"task": task.name, "model": spec, "data": str(data),
                                                     "out": str(run), "seed": seed}), encoding="utf-8")
                evaluate_run(run, trust_code=True)  # the models are the ones this bench was asked to run
            result = json.loads((run / RESULT).read_text())
            write_result(result, out / "results" / task.name / folder / f"{folder_name(spec)}.json")
            print_metrics(result)
    board = build_leaderboard(out / "results")
    write_leaderboard(board, out / "leaderboard.json")
    report = write_report(board, out / "report")
    site = write_site(board, out / "site")
    for key in board["tasks"]:
        print()
        print(format_table(board, key))
    print(f"\nleaderboard: {out / 'leaderboard.json'}\nreport: {report}\nsite: {site} (open it in a browser)")
    return board


def quickstart(out: Path, seed: int = 0, workers: int = 2, progress: bool = True) -> dict:
    """The whole pipeline on XOR (d=5) for p_hat in {0, 0.5, 1} with pairwise CLIP and Symile."""
    return bench(QUICKSTART["task"], QUICKSTART["models"], out, QUICKSTART["dataset_args"], seed=seed,
                 workers=workers, progress=progress)
