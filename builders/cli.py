"""`polymodal build` and `polymodal verify`."""

from __future__ import annotations

import argparse
import sys

from polymodal.argtypes import Parser, folder, integer, number, out_folder
from polymodal.configfile import add_config_option


def add_commands(subparsers) -> None:
    from polymodal.builders import BUILDERS
    from polymodal.builders.core.engines import ENGINES
    from polymodal.builders.core.manifest import MANIFEST
    from polymodal.builders.core.storage import dataset_type, location_type

    build = subparsers.add_parser(
        "build",
        help="build a dataset as deterministic WebDataset shards",
        description="Build a dataset into OUT as deterministic WebDataset shards with manifest.json and a data "
        "card (README.md). Re-running the same command resumes: finished shards are kept, the rest are built.",
    )
    datasets = build.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    for name, cls in BUILDERS.items():
        doc = sys.modules[cls.__module__].__doc__ or ""
        p = datasets.add_parser(
            name, help=doc.strip().splitlines()[0], description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        p.add_argument(
            "--out", required=True, type=location_type(out_folder), metavar="OUT",
            help="output folder, or an fsspec URL (s3://bucket/prefix, gs://…) with the backend installed (pip "
            "install 'polymodal[s3]') and its credentials in the environment (FSSPEC_S3_ENDPOINT_URL for an S3 "
            "API other than AWS's). A remote OUT has no lock: run one build per remote OUT at a time; shards are "
            "built under $POLYMODAL_STAGING (default the temp dir) and uploaded, each stats file last",
        )
        p.add_argument("--workers", type=integer(low=1), default=1, help="parallel shard workers (default %(default)s)")
        p.add_argument("--engine", choices=sorted(ENGINES), default="local", help="what runs the shards (default %(default)s)")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
        p.add_argument(
            "--min-success", type=number(0, 1), default=0.0, metavar="F",
            help="fail (exit 1) when fewer than this fraction of the input rows become samples (default 0: only a "
            "build with no sample at all fails)",
        )
        p.add_argument(
            "--retry-failed", action="store_true",
            help="also rebuild finished shards that have failed rows; rows that succeeded are kept, not made again",
        )
        cls.add_arguments(p)
        add_config_option(p)
        p.set_defaults(func=_build, builder_cls=cls)

    verify = subparsers.add_parser(
        "verify",
        help="check a built dataset against its manifest",
        description="Re-hash every shard against manifest.json and check sample counts and field sets. "
        "Exits 1 and names each bad shard: missing, truncated, altered, extra, or with wrong counts or fields.",
    )
    verify.add_argument("data", type=dataset_type(MANIFEST, folder(MANIFEST, "a dataset built by `polymodal build`")),
                        help="dataset folder (holding manifest.json), or its fsspec URL (s3://bucket/prefix)")
    verify.set_defaults(func=_verify)


def _build(args: argparse.Namespace) -> int:
    from polymodal.builders.core.runner import build, summary
    from polymodal.builders.core.storage import join

    configs = args.builder_cls.configs_from_args(args)
    for sub, config in configs.items():
        out = join(args.out, sub) if len(configs) > 1 else args.out  # a sweep gets one folder per value
        manifest = build(args.builder_cls(config), out, workers=args.workers, engine=args.engine,
                         progress=not args.no_progress, retry_failed=args.retry_failed)
        counts = ", ".join(f"{k} {v['samples']}" for k, v in sorted(manifest["splits"].items()))
        print(f"{out}: dataset {manifest['dataset_id']} ({counts}); {summary(manifest)}")
        rows = sum(s["rows"] for s in manifest["splits"].values())
        samples = sum(s["samples"] for s in manifest["splits"].values())
        if samples == 0 or samples < args.min_success * rows:
            print(f"{out}: {samples:,} of {rows:,} rows became samples, below "
                  f"{'--min-success ' + format(args.min_success, 'g') if samples else 'one'}; the row tables say why",
                  file=sys.stderr)
            return 1
    return 0


def _verify(args: argparse.Namespace) -> int:
    from polymodal.builders.core.manifest import verify

    problems = verify(args.data)
    for problem in problems:
        print(f"BAD {problem}", file=sys.stderr)
    if problems:
        print(f"{args.data}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args.data}: all shards match the manifest")
    return 0


def main(argv=None) -> int:
    parser = Parser(prog="python -m polymodal.builders", description="Build and verify polymodal datasets.")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)
