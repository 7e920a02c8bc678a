"""`polymodal train`, `eval`, `submit`, `bench`, `featurize` and `quickstart`: parsers and their handlers.

torch is imported only inside the handlers, so that building the parser
(and `polymodal leaderboard ...`) never needs it. `bench` and `quickstart`
live in benchmarks.bench.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

CARD_FIELDS = {"name", "revision", "license", "training_data"}  # what a submitter's card may set


def add_commands(subparsers) -> None:
    from polymodal.benchmarks.feature_cache import CACHE_ENV, DEFAULT_CACHE
    from polymodal.benchmarks.tasks import TASKS

    tasks = sorted(TASKS)

    train = subparsers.add_parser(
        "train", help="train a model on a task's dataset",
        description="Train MODEL on the train split of DATA, keep the epoch with the lowest validation loss, "
        "and write the run folder OUT (run.json, model.safetensors, train_log.jsonl). Score it with `polymodal eval OUT`.",
    )
    _add_run_arguments(train, tasks)
    train.set_defaults(func=_train)

    evaluate = subparsers.add_parser(
        "eval", help="score a trained run and write its result JSON",
        description="Score RUN with its task's protocol and write RUN/result.json (or --out), a result file "
        "that `polymodal leaderboard build` accepts.",
    )
    evaluate.add_argument("run", type=Path, help="run folder written by `polymodal train`")
    evaluate.add_argument("--out", type=Path, help="where to write the result (default RUN/result.json)")
    evaluate.set_defaults(func=_eval)

    submit = subparsers.add_parser(
        "submit", help="train and score your own model",
        description="Train and score your own model, given as `package.module:Class` (see baselines/interface.py for "
        "the interface), and write a result file for the leaderboard. --card names a JSON file with your model's "
        f"card: any of {', '.join(sorted(CARD_FIELDS))}.",
    )
    _add_run_arguments(submit, tasks)
    submit.add_argument("--card", type=Path, required=True, help="JSON model card (name, revision, license, training_data)")
    submit.add_argument("--results", type=Path, help="also copy the result file into this folder")
    submit.set_defaults(func=_submit)

    bench = subparsers.add_parser(
        "bench", help="build what is missing, train and score models, and rank them",
        description="Build the task's datasets into OUT/data (resuming what exists), train and score every model "
        "on each (skipping finished runs), then write OUT/results, OUT/leaderboard.json and OUT/report. "
        "Options after the known ones are the task's dataset options, as for `polymodal build TASK` "
        "(e.g. --p-hat 0,0.5,1 for xor; --languages 2,5 for symile-m3).",
    )
    bench.add_argument("--task", choices=tasks, required=True, help="task to run")
    bench.add_argument("--models", default="clip,symile", help="comma-separated model names or module:Class specs (default %(default)s)")
    bench.add_argument("--out", type=Path, required=True, help="benchmark folder")
    _add_common(bench)
    bench.set_defaults(func=_bench, accepts_extra=True)

    featurize = subparsers.add_parser(
        "featurize", help="run frozen encoders over a dataset once and cache the features",
        description="Compute every split's features of DATA with ENCODER and cache them as "
        f"CACHE/<dataset_id>/<encoder>/<split>.safetensors (CACHE: --out, else ${CACHE_ENV}, else "
        f"{DEFAULT_CACHE}). Splits already cached are reused, and a killed run resumes at the shard it "
        "lost. Tasks read the same cache. Under `torchrun --nproc_per_node=N` the shards are shuffled alike on "
        "every rank and split between ranks, then between each rank's loader workers; on several nodes CACHE "
        "must be a shared folder.",
    )
    featurize.add_argument("--data", type=Path, required=True, help="dataset folder built by `polymodal build`")
    featurize.add_argument("--encoder", required=True, help="a featurizer that DATA's task declares: for symile-m3, "
                           "embedded (digits variant, CPU) or paper (CLIP, Whisper, XLM-R); for vggsound-plus, av-embedded")
    featurize.add_argument("--out", type=Path, help="feature cache folder")
    featurize.add_argument("--workers", type=int, default=2, help="loader processes per rank that decode and "
                           "preprocess shards (default %(default)s; 0: in the main process)")
    featurize.add_argument("--seed", type=int, default=0, help="seed of the shard shuffle; the cache is the same for any seed")
    featurize.add_argument("--no-progress", action="store_true", help="hide progress bars")
    featurize.set_defaults(func=_featurize)

    quick = subparsers.add_parser(
        "quickstart", help="the whole pipeline on the embedded default, in minutes",
        description="Build XOR (d=5) for p_hat in {0, 0.5, 1}, train pairwise CLIP and Symile on each, score them, "
        "build the leaderboard and the report, and print the table. Runs offline on a CPU in a few minutes.",
    )
    quick.add_argument("--out", type=Path, default=Path("quickstart"), help="output folder (default %(default)s)")
    _add_common(quick)
    quick.set_defaults(func=_quickstart)


def _add_common(parser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="training seed (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="dataset build workers (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_run_arguments(parser, tasks) -> None:
    parser.add_argument("--task", choices=tasks, required=True, help="task whose protocol to follow")
    parser.add_argument("--model", required=True, help="a registered model (clip, symile) or module:Class")
    parser.add_argument("--data", type=Path, required=True, help="dataset folder built by `polymodal build`")
    parser.add_argument("--out", type=Path, required=True, help="run folder to write")
    parser.add_argument("--model-config", type=json.loads, default={}, help='model settings as JSON, e.g. \'{"d_model": 32}\'')
    parser.add_argument("--epochs", type=int, help="override the task's default")
    parser.add_argument("--batch-size", type=int, help="override the task's default")
    parser.add_argument("--lr", type=float, help="override the task's default")
    parser.add_argument("--weight-decay", type=float, help="override the task's default")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default %(default)s)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast for the encoders")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model's forward")
    parser.add_argument("--resume", action="store_true", help="continue this run from its last checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _train_config(task_name: str, args):
    import dataclasses

    from polymodal.benchmarks.tasks import load_task

    overrides = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "weight_decay") if getattr(args, k, None) is not None}
    overrides.update({k: True for k in ("amp", "compile") if getattr(args, k, False)})
    return dataclasses.replace(load_task(task_name).train_defaults, seed=args.seed, **overrides)


def _train(args) -> int:
    from polymodal.benchmarks.runs import train_run

    _join_torchrun()
    record = train_run(args.task, args.model, args.data, args.out, _train_config(args.task, args),
                       model_config=args.model_config, progress=not args.no_progress, resume=args.resume)
    s = record["summary"]
    if int(os.environ.get("RANK", 0)) != 0:
        return 0
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

    print_metrics(evaluate_run(args.run, args.out))
    return 0


def _submit(args) -> int:
    from polymodal.benchmarks.bench import folder_name, print_metrics
    from polymodal.benchmarks.runs import RESULT, evaluate_run, train_run

    card = json.loads(args.card.read_text())
    unknown = set(card) - CARD_FIELDS
    if not isinstance(card, dict) or unknown:
        raise SystemExit(f"{args.card}: a card may set only {sorted(CARD_FIELDS)}; unknown: {sorted(unknown)}")
    train_run(args.task, args.model, args.data, args.out, _train_config(args.task, args),
              model_config=args.model_config, card=card, progress=not args.no_progress, resume=args.resume)
    result = evaluate_run(args.out)
    print_metrics(result)
    if args.results:
        from polymodal.benchmarks.results import write_result

        write_result(result, args.results / f"{folder_name(result['model']['name'])}-{result['dataset']['id']}.json")
    print(f"result: {args.out / RESULT}")
    return 0


def _bench(args) -> int:
    from polymodal.benchmarks.bench import bench

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bench(args.task, models, args.out, args.extra, seed=args.seed, workers=args.workers, progress=not args.no_progress)
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

    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Train, score and rank polymodal models.")
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return dispatch(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
