"""A run folder: what was trained, on what, with which weights; and scoring it.

    RUN/run.json           task, model spec and config, training config, dataset path and id
    RUN/best.safetensors   the selected weights (never pickled)
    RUN/train_log.jsonl    one line per epoch: losses and samples/s
    RUN/result.json        written by `polymodal eval RUN`
    plus the checkpoint that `--resume` continues from (see benchmarks.training)
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_model

from polymodal.baselines.models import MODELS, resolve_model
from polymodal.benchmarks.data import load_manifest
from polymodal.benchmarks.results import make_result, write_result
from polymodal.benchmarks.tasks import load_task
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.benchmarks.training import BEST, Placement, fit
from polymodal.leaderboard.model_card import ModelCard

RUN_FILE, RESULT = "run.json", "result.json"


def _model(task, spec: str, manifest: dict, config: dict):
    # Task defaults (e.g. d_model) configure the reference models only; user models take their own config.
    config = {**task.model_config(spec), **config} if spec in MODELS else dict(config)
    return resolve_model(spec)(task.inputs(manifest), **config), config


def train_run(task_name: str, model_spec: str, data_dir: Path, out_dir: Path, train: TrainConfig,
              model_config: dict | None = None, card: dict | None = None, progress: bool = True,
              resume: bool = False) -> dict:
    """Train and record a run; with `resume`, continue the same run from its last checkpoint."""
    task = load_task(task_name)
    manifest = load_manifest(data_dir)
    if manifest["builder"] != task.builder:
        raise SystemExit(f"task {task.name} needs a {task.builder!r} dataset; {data_dir} holds {manifest['builder']!r}")
    torch.manual_seed(train.seed)  # the initial weights
    model, model_config = _model(task, model_spec, manifest, model_config or {})
    record = {
        "task": task.name,
        "task_version": task.version,
        "model": model_spec,
        "model_config": model_config,
        "card": card or {},
        "train": dataclasses.asdict(train),
        "data": str(Path(data_dir).resolve()),
        "dataset_id": manifest["dataset_id"],
        "device": Placement.detect().device.type,
        "summary": None,  # set when training ends
    }
    run_file = out_dir / RUN_FILE
    if resume and run_file.is_file():
        before = json.loads(run_file.read_text())
        if {**before, "summary": None} != record:
            raise SystemExit(f"{out_dir} holds a different run; --resume continues only the same command")
    place = Placement.detect()
    out_dir.mkdir(parents=True, exist_ok=True)
    if place.main:
        _write_record(run_file, record)
    record["summary"] = fit(model, task.load_split(data_dir, "train"), task.load_split(data_dir, "val"), train,
                            out_dir, resume=resume, progress=progress, place=place)
    if place.main:
        _write_record(run_file, record)
    return record


def _write_record(path: Path, record: dict) -> None:
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def evaluate_run(run_dir: Path, out: Path | None = None) -> dict:
    run_file = run_dir / RUN_FILE
    if not run_file.is_file():
        raise SystemExit(f"{run_dir} is not a finished run: it has no {RUN_FILE}")
    record = json.loads(run_file.read_text())
    if record["summary"] is None:
        raise SystemExit(f"{run_dir} has not finished training; continue it with `polymodal train ... --resume`")
    task = load_task(record["task"])
    if task.version != record["task_version"]:
        raise SystemExit(f"{run_dir} was trained for {task.name} {record['task_version']}; this code scores {task.version}")
    manifest = load_manifest(record["data"])
    if manifest["dataset_id"] != record["dataset_id"]:
        raise SystemExit(f"{record['data']} now holds dataset {manifest['dataset_id']}, not {record['dataset_id']} it was trained on")
    model, _ = _model(task, record["model"], manifest, record["model_config"])
    load_model(model, str(run_dir / BEST))
    model.eval()
    began = time.perf_counter()
    evaluation = task.evaluate(model, record["data"], manifest)
    own = model.card()
    card = ModelCard(
        **{
            "name": own["name"],
            "source": "polymodal" if record["model"] in MODELS else record["model"],
            "parameters": own["parameters"],
            "modalities": list(task.inputs(manifest)),
            "license": "MIT" if record["model"] in MODELS else None,
            "training_data": f"{manifest['builder']} dataset {manifest['dataset_id']}, split train",
            "config": {"model": own["config"], "train": record["train"]},
            **record["card"],
        }
    ).model_dump()
    wall = record["summary"]["train_seconds"] + time.perf_counter() - began
    result = make_result(task, manifest, card, evaluation, record["train"]["seed"], record["device"], wall)
    write_result(result, out or run_dir / RESULT)
    return result
