"""The `polymodal` command: one entry point over the builders, the harness and the leaderboard.

Each package registers its own sub-commands, and imports its heavy
dependencies only when one of them runs, so `polymodal leaderboard` works
on a machine without torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from polymodal import __version__

# Packages that contribute sub-commands, in the order `--help` lists them.
COMMAND_MODULES = ("polymodal.builders.cli", "polymodal.benchmarks.cli", "polymodal.leaderboard.cli")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polymodal",
        description="Datasets and benchmarks for contrastive learning over three or more modalities. "
        "Start with `polymodal quickstart`.",
    )
    parser.add_argument("--version", action="version", version=f"polymodal {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(subparsers)
    return parser


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse and run the chosen command's handler."""
    # `bench` passes options it does not know on to the task's dataset builder.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted; re-running the same command resumes a build or a bench", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    return dispatch(make_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
