"""The `polymodal` command: one entry point over the builders, the harness and the leaderboard.

Each package registers its own sub-commands, and imports its heavy
dependencies only when one of them runs, so `polymodal leaderboard` works
on a machine without torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from polymodal import __version__, configfile, progress
from polymodal.argtypes import Parser

# Packages that contribute sub-commands, in the order `--help` lists them.
COMMAND_MODULES = ("polymodal.builders.cli", "polymodal.benchmarks.cli", "polymodal.leaderboard.cli")


def make_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="polymodal",
        description="Datasets and benchmarks for contrastive learning over three or more modalities. "
        "Start with `polymodal quickstart`.",
    )
    parser.add_argument("--version", action="version", version=f"polymodal {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log what polymodal does, such as retried downloads and why (-vv: its debug detail, and "
                        "every other package's log at INFO too)")
    parser.add_argument("-q", "--quiet", action="store_true", help="show no progress bars")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(subparsers)
    return parser


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse and run the chosen command's handler."""
    argv, tokens = configfile.expand(parser, sys.argv[1:] if argv is None else list(argv))
    # `bench` passes options it does not know on to the task's dataset builder.
    args, extra = parser.parse_known_args(argv)
    args.config_tokens = tokens
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    _configure_output(getattr(args, "verbose", 0), getattr(args, "quiet", False))
    if getattr(args, "no_verify", False):
        from polymodal.benchmarks.data import skip_verification

        skip_verification()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted; re-running the same command resumes a build or a bench", file=sys.stderr)
        return 130


def _configure_output(verbose: int, quiet: bool) -> None:
    # -v is about what polymodal does (its loggers are polymodal.*); other packages speak up from -vv.
    logging.basicConfig(level=logging.INFO if verbose > 1 else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("polymodal").setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    progress.QUIET = quiet


def main(argv: list[str] | None = None) -> int:
    return dispatch(make_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
