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
COMMAND_MODULES = ("builders.cli", "benchmarks.cli", "leaderboard.cli")


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


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
