"""`polymodal train`, `eval`, `submit`, `bench`, `featurize` and `quickstart`: parsers and their handlers.

torch is imported only inside the handlers, so that building the parser
(and `polymodal leaderboard ...`) never needs it. `bench` and `quickstart`
live in benchmarks.bench.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from polymodal.argtypes import Parser, folder, integer, json_file, json_object, number, out_folder
from polymodal.configfile import add_config_option, write_config
from polymodal.benchmarks.lr_schedules import SCHEDULES
from polymodal.benchmarks.reporting import REPORTERS

CARD_FIELDS = {"name", "revision", "license", "training_data"}  # what a submitter's card may set
# The card fields eval fills in from the model, stand-ins here: a --card is checked before training, on its own.
FILLED_BY_EVAL = {"name": "-", "source": "-", "parameters": 0, "modalities": ["-"]}


def add_commands(subparsers) -> None:
    from polymodal.benchmarks.feature_cache import CACHE_ENV, DEFAULT_CACHE
    from polymodal.benchmarks.tasks import TASKS
    from polymodal.builders.core.manifest import MANIFEST
    from polymodal.builders.core.storage import dataset_type, location_type
    from polymodal.leaderboard.suites import load_suites

    dataset = dataset_type(MANIFEST, folder(MANIFEST, "a dataset built by `polymodal build`"))

    tasks = sorted(TASKS)

    train = subparsers.add_parser(
        "train", help="train a model on a task's dataset",
        description="Train MODEL on the train split of DATA, keep the epoch with the lowest validation loss, "
        "and write the run folder OUT (run.json, model.safetensors, train_log.jsonl). Score it with `polymodal eval OUT`.",
    )
    _add_run_arguments(train, tasks, dataset)
    add_config_option(train)
    train.set_defaults(func=_train)

    evaluate = subparsers.add_parser(
        "eval", help="score a trained run and write its result JSON",
        description="Score RUN with its task's protocol and write RUN/result.json (or --out), a result file "
        "that `polymodal leaderboard build` accepts. Under `torchrun --nproc_per_node=N -m polymodal eval RUN` the "
        "retrieval protocols split the candidates between the ranks, and rank 0 writes the same result.",
    )
    evaluate.add_argument("run", type=folder(), help="run folder written by `polymodal train`")
    evaluate.add_argument("--out", type=Path, help="where to write the result (default RUN/result.json)")
    evaluate.add_argument("--trust-code", action="store_true", help="import the model class RUN names when it is "
                          "neither built in nor installed; that runs its code, so only for a folder whose source you trust")
    _add_no_verify(evaluate)
    evaluate.set_defaults(func=_eval)

    submit = subparsers.add_parser(
        "submit", help="train and score your own model",
        description="Train and score your own model, given by the name its installed package registers (entry-point "
        "group polymodal.models) or as `package.module:Class` (see baselines/interface.py for "
        "the interface), and write a result file for the leaderboard. --card names a JSON file with your model's "
        f"card: any of {', '.join(sorted(CARD_FIELDS))}.",
    )
    _add_run_arguments(submit, tasks, dataset)
    submit.add_argument("--card", type=_card, required=True, help="JSON model card (name, revision, license, training_data)")
    submit.add_argument("--results", type=location_type(out_folder), help="also write the result and the model card "
                        "into this results folder or fsspec URL, as RESULTS/<task>/<model>/<revision>.<dataset_id>.json "
                        "and .card.json")
    add_config_option(submit)
    submit.set_defaults(func=_submit)

    bench = subparsers.add_parser(
        "bench", help="build what is missing, train and score models, and rank them",
        description="Build the task's datasets into OUT/data (resuming what exists), train and score every model "
        "on each (skipping finished runs), then write OUT/results, OUT/leaderboard.json and OUT/report. "
        "Options after the known ones are the task's dataset options, as for `polymodal build TASK` "
        "(e.g. --p-hat 0,0.5,1 for xor; --languages 2,5 for symile-m3).",
    )
    which = bench.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", choices=tasks, help="task to run")
    which.add_argument("--suite", choices=sorted(load_suites()), help="every task of a versioned suite, on its official "
                       "datasets (leaderboard/suites.json); takes no dataset options")
    bench.add_argument("--models", type=_models, default="clip,symile", help="comma-separated model names (built-in or installed) or module:Class specs (default %(default)s)")
    bench.add_argument("--out", type=out_folder, required=True, help="benchmark folder")
    _add_common(bench)
    _add_no_verify(bench)
    add_config_option(bench)
    bench.set_defaults(func=_bench, accepts_extra=True)

    featurize = subparsers.add_parser(
        "featurize", help="run frozen encoders over a dataset once and cache the features",
        description="Compute every split's features of DATA with ENCODER and cache them as "
        f"CACHE/<content digest>/<encoder>/<split>/, a file per shard, and its index <split>.json (CACHE: "
        f"--out, a folder or an fsspec URL such as s3://bucket/features, else ${CACHE_ENV}, else "
        f"{DEFAULT_CACHE}). Splits already cached are reused, and a killed run resumes at the shard it "
        "lost. Tasks read the same cache. Under `torchrun --nproc_per_node=N` the shards are shuffled alike on "
        "every rank and split between ranks, then between each rank's loader workers; on several nodes CACHE "
        "must be a shared folder or an object store.",
    )
    featurize.add_argument("--data", type=dataset, required=True, help="dataset folder built by `polymodal build`, or its fsspec URL (s3://bucket/prefix)")
    featurize.add_argument("--encoder", required=True, help="a featurizer that DATA's task declares: for symile-m3, "
                           "embedded (digits variant, CPU) or paper (CLIP, Whisper, XLM-R); for vggsound-plus, av-embedded")
    featurize.add_argument("--out", type=location_type(out_folder), help="feature cache: a folder or a URL")
    featurize.add_argument("--workers", type=integer(low=0), default=2, help="loader processes per rank that decode and "
                           "preprocess shards (default %(default)s; 0: in the main process)")
    featurize.add_argument("--seed", type=integer(low=0), default=0, help="seed of the shard shuffle; the cache is the same for any seed")
    featurize.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_no_verify(featurize)
    featurize.set_defaults(func=_featurize)

    quick = subparsers.add_parser(
        "quickstart", help="the whole pipeline on the embedded default, in minutes",
        description="Build XOR (d=5) for p_hat in {0, 0.5, 1}, train pairwise CLIP and Symile on each, score them, "
        "build the leaderboard and the report, and print the table. Runs offline on a CPU in a few minutes.",
    )
    quick.add_argument("--out", type=out_folder, default=Path("quickstart"), help="output folder (default %(default)s)")
    _add_common(quick)
    quick.set_defaults(func=_quickstart)


def _add_common(parser) -> None:
    parser.add_argument("--seed", type=integer(low=0), default=0, help="training seed (default %(default)s)")
    parser.add_argument("--workers", type=integer(low=1), default=2, help="dataset build workers (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_no_verify(parser) -> None:
    parser.add_argument("--no-verify", action="store_true", help="use the dataset without checking its shards against "
                        "its manifest; the result file says so")


def _add_run_arguments(parser, tasks, dataset) -> None:
    parser.add_argument("--task", choices=tasks, required=True, help="task whose protocol to follow")
    parser.add_argument("--model", type=_model, required=True, help="a built-in model (clip, symile, ...), an "
                        "installed one (entry-point group polymodal.models) or module:Class")
    parser.add_argument("--data", type=dataset, required=True, help="dataset folder built by `polymodal build`, or its fsspec URL (s3://bucket/prefix)")
    parser.add_argument("--out", type=out_folder, required=True, help="run folder to write")
    parser.add_argument("--model-config", type=json_object, default={}, help='model settings as JSON, e.g. \'{"d_model": 32}\'')
    parser.add_argument("--epochs", type=integer(low=1), help="override the task's default")
    parser.add_argument("--batch-size", type=integer(low=1), help="override the task's default")
    parser.add_argument("--lr", type=number(above=0), help="override the task's default")
    parser.add_argument("--weight-decay", type=number(low=0), help="override the task's default")
    parser.add_argument("--seed", type=integer(low=0), default=0, help="training seed (default %(default)s)")
    parser.add_argument("--lr-schedule", choices=sorted(SCHEDULES), help="learning rate per step: constant, or a "
                        "cosine decay to 0 (default: the task's, constant)")
    parser.add_argument("--warmup", type=integer(low=0), help="steps of linear learning-rate warm-up (default: the task's, 0)")
    parser.add_argument("--streams", type=integer(low=1), help="streams the training shards are dealt to each epoch, "
                        "each filling its share of every batch; a multiple of the ranks, and the same number trains "
                        "the same model on any number of them (default: one per rank)")
    parser.add_argument("--shuffle-buffer", type=integer(low=0), help="rows each stream shuffles among (default: the "
                        "task's, 10000); memory grows with it, never with the split")
    parser.add_argument("--loader-workers", type=integer(low=0), default=0, help="processes per rank that load the "
                        "training shards; the batches do not depend on it (default %(default)s: the rank's own process)")
    parser.add_argument("--checkpoint-every", type=integer(low=0), default=1000, help="also checkpoint every N "
                        "optimizer steps within an epoch, for --resume to continue from (0: at epoch ends only; "
                        "default %(default)s)")
    parser.add_argument("--log-every", type=integer(low=1), default=50, help="write a line to OUT/train_steps.jsonl every "
                        "N optimizer steps: lr, loss and its terms, logit scales, samples/s (default %(default)s)")
    parser.add_argument("--report-to", type=_reporters, default=(), help="also send those lines to: "
                        f"{', '.join(sorted(REPORTERS))} (comma-separated; tensorboard writes OUT/tensorboard, "
                        "wandb logs under OUT/wandb, offline with WANDB_MODE=offline)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast for the encoders")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model's forward")
    parser.add_argument("--resume", action="store_true", help="continue the run OUT holds, from its last checkpoint; "
                        "only with the same settings")
    parser.add_argument("--overwrite", action="store_true", help="replace the run OUT holds, its result included")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_no_verify(parser)


def _model(text: str) -> str:
    """--model: a built-in or installed model, or a `module:Class` that imports and meets the interface
    (checked now)."""
    from polymodal.baselines.models import resolve_model

    try:
        resolve_model(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _reporters(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in REPORTERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown reporter {', '.join(unknown) or repr(text)}; known: "
                                         f"{', '.join(sorted(REPORTERS))}")
    return names


def _models(text: str) -> list[str]:
    models = [_model(m.strip()) for m in text.split(",") if m.strip()]
    if not models:
        raise argparse.ArgumentTypeError("name at least one model, e.g. clip,symile")
    return models


def _card(text: str) -> dict:
    """--card: a JSON object of CARD_FIELDS, of the types a result's model card holds."""
    from pydantic import ValidationError

    from polymodal.leaderboard.model_card import ModelCard

    card = json_file(text)
    unknown = sorted(set(card) - CARD_FIELDS)
    if unknown:
        raise argparse.ArgumentTypeError(f"{text}: a card may set only {', '.join(sorted(CARD_FIELDS))}; "
                                         f"unknown: {', '.join(unknown)}")
    try:
        ModelCard(**{**FILLED_BY_EVAL, **card})
    except ValidationError as err:
        raise argparse.ArgumentTypeError(f"{text}: " + "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in err.errors())) from None
    return card


def _check_splits(task, sizes: dict[str, int], where: str) -> None:
    """Refuse a dataset with no sample in a split the task trains or scores on."""
    empty = [split for split in task.splits if not sizes.get(split)]
    if empty:
        raise SystemExit(f"{where}: task {task.name} reads splits {', '.join(task.splits)}; "
                         f"{' and '.join(empty)} {'has' if len(empty) == 1 else 'have'} no sample")


def _check_run(args) -> None:
    """What `train` and `submit` would find only after loading data: a dataset of the task's builder with every
    split it reads, and a model that --model-config builds. One line each, before any folder is written."""
    from polymodal.benchmarks.runs import _model as build_model
    from polymodal.benchmarks.tasks import load_task
    from polymodal.builders.core.manifest import load_manifest  # the plain read: train checks the shards

    task = load_task(args.task)
    manifest = load_manifest(args.data)
    if manifest["builder"] != task.builder:
        raise SystemExit(f"--data: task {task.name} needs a {task.builder!r} dataset; {args.data} holds {manifest['builder']!r}")
    _check_splits(task, {split: s["samples"] for split, s in manifest["splits"].items()}, str(args.data))
    try:
        build_model(task, args.model, manifest, args.model_config)
    except (TypeError, ValueError) as err:
        raise SystemExit(f"--model-config: {err}") from None


def _check_bench(task, dataset_args: list[str]) -> None:
    """What `bench` would find only after building or training: its dataset options (parsed as `polymodal build`
    parses them) and a sample in every split the task reads, for each dataset. --models was checked when parsed."""
    from polymodal.builders import BUILDERS

    for name, config in task.bench_configs(dataset_args).items():
        _check_splits(task, BUILDERS[task.builder](config).split_sizes(), f"{task.bench_prog} [{name}]")


def _train_config(task_name: str, args):
    import dataclasses

    from polymodal.benchmarks.tasks import load_task

    overrides = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "weight_decay", "lr_schedule", "warmup",
                                               "streams", "shuffle_buffer")
                 if getattr(args, k, None) is not None}
    overrides.update({k: True for k in ("amp", "compile") if getattr(args, k, False)})
    return dataclasses.replace(load_task(task_name).train_defaults, seed=args.seed, **overrides)


def _logging(args):
    from polymodal.benchmarks.training import Logging

    return Logging(every=args.log_every, report_to=args.report_to, checkpoint_every=args.checkpoint_every)


def _train(args) -> int:
    from polymodal.benchmarks.runs import train_run

    _check_run(args)
    _join_torchrun()
    record = train_run(args.task, args.model, args.data, args.out, _train_config(args.task, args),
                       model_config=args.model_config, progress=not args.no_progress, resume=args.resume,
                       overwrite=args.overwrite, logging=_logging(args), workers=args.loader_workers)
    s = record["summary"]
    if int(os.environ.get("RANK", 0)) != 0:
        return 0
    write_config(args, args.out)
    print(f"{args.out}: best epoch {s['best_epoch']} (val loss {s['best_val_loss']:.4f}) in {s['train_seconds']:.1f}s")
    return 0


def _join_torchrun() -> None:
    """Under `torchrun`, join its process group: NCCL on GPUs, gloo on CPU."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 2:
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def _eval(args) -> int:
    from polymodal.benchmarks.bench import print_metrics
    from polymodal.benchmarks.runs import evaluate_run

    _join_torchrun()
    result = evaluate_run(args.run, args.out, trust_code=args.trust_code)
    if int(os.environ.get("RANK", 0)) == 0:
        print_metrics(result)
    return 0


def _submit(args) -> int:
    from polymodal.benchmarks.bench import print_metrics
    from polymodal.benchmarks.runs import RESULT, evaluate_run, train_run

    _check_run(args)
    train_run(args.task, args.model, args.data, args.out, _train_config(args.task, args),
              model_config=args.model_config, card=args.card, progress=not args.no_progress, resume=args.resume,
              overwrite=args.overwrite, logging=_logging(args), workers=args.loader_workers)
    result = evaluate_run(args.out, trust_code=True)  # the model is the one this command named
    write_config(args, args.out)
    print_metrics(result)
    if args.results:
        from polymodal.builders.core import storage
        from polymodal.leaderboard.submission import submission_paths, write_submission

        with storage.staging(args.results) as staged:  # a URL's files are written here first, then uploaded
            write_submission(result, staged)
            names = [p.relative_to(staged).as_posix() for p in submission_paths(staged, result)]
            storage.publish(staged, args.results, names[::-1])  # the card, then the result
        print(f"submission: {storage.join(args.results, names[0])}")
    print(f"result: {args.out / RESULT}")
    return 0


def _bench(args) -> int:
    from polymodal.benchmarks.bench import bench
    from polymodal.benchmarks.tasks import load_task
    from polymodal.builders import BUILDERS
    from polymodal.leaderboard.suites import load_suites

    if args.suite and args.extra:
        raise SystemExit(f"--suite {args.suite} fixes its datasets; drop {' '.join(args.extra)}")
    runs = [(t["task"], t["bench_args"]) for t in load_suites()[args.suite]["tasks"]] if args.suite else \
        [(args.task, args.extra)]
    def stale(suite) -> str | None:  # what of the suite this code no longer scores or builds
        for t in suite["tasks"]:
            task = load_task(t["task"])
            if t["version"] != task.version:
                return f"{t['task']} {t['version']}, which this code no longer scores (it scores {task.version})"
            built = {folder: BUILDERS[task.builder](config).dataset_id()
                     for folder, config in task.bench_configs(t["bench_args"]).items()}
            if built != {d["folder"]: d["dataset_id"] for d in t["datasets"]}:
                return f"{t['task']} datasets that this code's {task.builder} builder no longer makes (its version changed)"
        return None

    if args.suite and (old := stale(load_suites()[args.suite])):
        current = [name for name, suite in sorted(load_suites().items()) if not stale(suite)]
        raise SystemExit(f"--suite {args.suite} pins {old}: run --suite {' or '.join(current)}")
    for task, dataset_args in runs:
        _check_bench(load_task(task), dataset_args)
    for task, dataset_args in runs:
        bench(task, args.models, args.out, dataset_args, seed=args.seed, workers=args.workers,
              progress=not args.no_progress)
    write_config(args, args.out)
    return 0


def _featurize(args) -> int:
    from polymodal.benchmarks.featurize import featurize_all

    _join_torchrun()
    paths = featurize_all(args.data, args.encoder, args.out, workers=args.workers, seed=args.seed,
                          progress=not args.no_progress)
    if int(os.environ.get("RANK", 0)) == 0:
        print("\n".join(map(str, paths)))
    return 0


def _quickstart(args) -> int:
    from polymodal.benchmarks.bench import quickstart

    quickstart(args.out, seed=args.seed, workers=args.workers, progress=not args.no_progress)
    return 0


def main(argv=None) -> int:
    from polymodal.cli import dispatch

    parser = Parser(prog="python -m benchmarks", description="Train, score and rank polymodal models.")
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return dispatch(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
