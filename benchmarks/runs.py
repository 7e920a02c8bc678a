"""A run folder: what was trained, on what, with which weights; and scoring it.

    RUN/run.json           task, model spec and config, training config and per-epoch redraw (train_view),
                           dataset path, id and content digest
    RUN/best.safetensors   the selected weights (never pickled)
    RUN/train_log.jsonl    one line per epoch: losses and samples/s
    RUN/train_steps.jsonl  one line every --log-every steps: lr, loss terms, logit scales, samples/s
    RUN/result.json        written by `polymodal eval RUN`
    plus the checkpoint that `--resume` continues from (see benchmarks.training)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_model

from polymodal.baselines.models import MODELS, is_installed, resolve_model
from polymodal.benchmarks.data import load_manifest, verified
from polymodal.benchmarks.results import make_result, write_result
from polymodal.benchmarks.tasks import TASKS, load_task
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.benchmarks.training import BEST, Logging, Placement, fit
from polymodal.builders.core import storage
from polymodal.builders.core.runner import LOCK, folder_lock
from polymodal.builders.core.tarshards import write_atomic
from polymodal.leaderboard.model_card import ModelCard

RUN_FILE, RESULT = "run.json", "result.json"


def _model(task, spec: str, manifest: dict, config: dict):
    # Task defaults (e.g. d_model) configure the reference models only; user models take their own config.
    config = {**task.model_config(spec), **config} if spec in MODELS else dict(config)
    return resolve_model(spec)(task.inputs(manifest), **config), config


def train_run(task_name: str, model_spec: str, data_dir: Path, out_dir: Path, train: TrainConfig,
              model_config: dict | None = None, card: dict | None = None, progress: bool = True,
              resume: bool = False, overwrite: bool = False, logging: Logging = Logging(), workers: int = 0) -> dict:
    """Train and record a run; with `resume`, continue the same run from its last checkpoint; with
    `overwrite`, replace whatever run `out_dir` holds; `workers` loader processes per rank read the shards."""
    if resume and overwrite:
        raise SystemExit("--resume continues the run in --out and --overwrite replaces it: pass one of them")
    task = load_task(task_name)
    manifest = load_manifest(data_dir)
    if manifest["builder"] != task.builder:
        raise SystemExit(f"task {task.name} needs a {task.builder!r} dataset; {data_dir} holds {manifest['builder']!r}")
    torch.manual_seed(train.seed)  # the initial weights
    model, model_config = _model(task, model_spec, manifest, model_config or {})
    view = task.train_view(data_dir, manifest)
    record = {
        "task": task.name,
        "task_version": task.version,
        "model": model_spec,
        "model_config": model_config,
        "card": card or {},
        "train": dataclasses.asdict(train),
        "train_view": view.rule if view else None,  # what the protocol redraws every epoch
        "data": storage.canonical(data_dir),  # an absolute path, or the dataset's fsspec URL
        "dataset_id": manifest["dataset_id"],
        "content_digest": manifest["content_digest"],
        "device": Placement.detect().device.type,
        "verified": verified(),  # whether the training data was checked (not with --no-verify); not a setting
        "summary": None,  # set when training ends
    }
    run_file = out_dir / RUN_FILE
    place = Placement.detect()
    out_dir.mkdir(parents=True, exist_ok=True)
    # Rank 0 alone writes the folder, so it alone holds the lock and decides whether the folder may be used.
    with folder_lock(out_dir, "a training run") if place.main else contextlib.nullcontext():
        if place.main and run_file.is_file():
            before = _read_record(run_file)
            _claim(out_dir, before, record, resume, overwrite)
            if resume:  # checked only if every part of the run was
                record["verified"] = record["verified"] and before.get("verified") is True
        if place.main and not run_file.is_file():  # a resumed run keeps its record until it ends again
            _write_record(run_file, record)
        record["summary"] = fit(model, task.source(data_dir, "train"), task.source(data_dir, "val"), train, out_dir,
                                resume=resume, progress=progress, place=place, logging=logging, train_view=view,
                                workers=workers)
        if place.main:
            _write_record(run_file, record)
    return record


def _claim(out_dir: Path, before: dict, record: dict, resume: bool, overwrite: bool) -> None:
    """May this command write into `out_dir`, which holds the run `before`? --resume continues only the same
    settings; --overwrite clears the old run, result included; anything else is refused."""
    if overwrite:
        for path in out_dir.iterdir():
            if path.name != LOCK:  # held by this process
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        return
    now = json.loads(json.dumps(record))  # compared as run.json holds it: tuples are lists there
    differ = sorted(k for k in now.keys() | before.keys()
                    if k not in ("summary", "verified") and before.get(k) != now.get(k))
    if not resume:
        raise SystemExit(f"{out_dir} holds a {'finished' if before.get('summary') else 'started'} run of "
                         f"{before.get('model')!r}; pass --resume to continue it or --overwrite to replace it")
    if differ:
        raise SystemExit(f"{out_dir} holds a run with other settings (differing: {', '.join(differ)}); --resume "
                         "continues only the same command, --overwrite replaces it")


def _read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SystemExit(f"{path} cannot be read as a run record: {err}") from None
    if not isinstance(record, dict):
        raise SystemExit(f"{path} is not a run record: it holds no JSON object")
    return record


def _write_record(path: Path, record: dict) -> None:
    write_atomic(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def evaluate_run(run_dir: Path, out: Path | None = None, trust_code: bool = False) -> dict:
    """Score a finished run. A model named in the run folder that is neither built in nor installed (a
    ``module:Class``) is code from wherever the folder came from: it is imported only with `trust_code`."""
    run_file = run_dir / RUN_FILE
    if not run_file.is_file():
        raise SystemExit(f"{run_dir} is not a finished run: it has no {RUN_FILE}")
    record = _read_record(run_file)
    spec = record.get("model")
    if not (isinstance(spec, str) and is_installed(spec)) and not trust_code:
        raise SystemExit(f"{run_dir} names the model {spec!r}, which is neither built in nor installed; "
                         "importing it runs its code: pass --trust-code if you trust where the folder came from")
    if record.get("task") not in TASKS:
        raise SystemExit(f"{run_dir} names the task {record.get('task')!r}; known: {', '.join(sorted(TASKS))}")
    try:
        resolve_model(spec)
    except ValueError as err:
        raise SystemExit(f"{run_dir}: {err}") from None
    data = storage.location_type(lambda path: Path(path).resolve())(record["data"])  # a URL stays a URL
    if record.get("summary") is None:
        raise SystemExit(f"{run_dir} has not finished training; continue it with `polymodal train ... --resume`")
    task = load_task(record["task"])
    if task.version != record["task_version"]:
        raise SystemExit(f"{run_dir} was trained for {task.name} {record['task_version']}; this code scores {task.version}")
    manifest = load_manifest(data)
    if manifest["dataset_id"] != record["dataset_id"]:
        raise SystemExit(f"{data} now holds dataset {manifest['dataset_id']}, not {record['dataset_id']} it was trained on")
    if manifest["content_digest"] != record.get("content_digest", manifest["content_digest"]):
        raise SystemExit(f"{data} now holds other shards (content digest {manifest['content_digest']}) than the "
                         f"run was trained on ({record['content_digest']}); rebuild it or train again")
    model, _ = _model(task, record["model"], manifest, record["model_config"])
    load_model(model, str(run_dir / BEST))
    model.eval()
    began = time.perf_counter()
    evaluation = task.evaluate(model, data, manifest)
    own = model.card()
    card = ModelCard(
        **{
            "name": own["name"],
            "source": "polymodal" if record["model"] in MODELS else record["model"],
            "parameters": own["parameters"],
            "modalities": list(task.inputs(manifest)),
            "license": "MIT" if record["model"] in MODELS else None,
            "training_data": f"{manifest['builder']} dataset {manifest['dataset_id']}, split train",
            "config": {"model": own["config"], "train": record["train"],
                       **({"train_view": record["train_view"]} if record.get("train_view") else {})},
            **record["card"],
        }
    ).model_dump()
    wall = record["summary"]["train_seconds"] + time.perf_counter() - began
    result = make_result(task, manifest, card, evaluation, record["train"]["seed"], record["device"], wall,
                         verified=record.get("verified") is True and verified())
    if not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0:
        write_result(result, out or run_dir / RESULT)  # every rank scored; one writes
    return result
