"""Command line: `polymodal leaderboard build|report` and `python -m leaderboard build|report`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from polymodal.leaderboard.aggregate import BOARD_FILENAME, build_leaderboard, read_leaderboard, write_leaderboard

DESCRIPTION = (
    "Rank models from benchmark result files. `build` validates every result JSON under a "
    "directory and aggregates them into leaderboard.json; `report` renders that file as "
    "report.md with one ranked table (and, where the task has one, a plot) per task."
)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `leaderboard` (with `build` and `report` under it) on a parent CLI."""
    parser = subparsers.add_parser(
        "leaderboard", help="build and report the leaderboard from result files", description=DESCRIPTION
    )
    _add_subcommands(parser)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leaderboard", description=DESCRIPTION)
    _add_subcommands(parser)
    args = parser.parse_args(argv)
    return args.func(args)


def _add_subcommands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="leaderboard_command", required=True, metavar="{build,report}")
    build = commands.add_parser(
        "build",
        help="validate result files and aggregate them into leaderboard.json",
        description=(
            "Scan DIR recursively for *.json result files (skipping any leaderboard.json), validate "
            "each against the result schema, keep the newest of duplicate (model, task, dataset) "
            "results and rank models per task version by their mean primary metric. Invalid files "
            "are reported on stderr as `path: reason` and listed in the output; they never stop the build."
        ),
    )
    build.add_argument("--results", required=True, type=Path, metavar="DIR",
                       help="directory holding result JSON files, searched recursively")
    build.add_argument("--out", type=Path, default=Path(BOARD_FILENAME), metavar="FILE",
                       help=f"where to write the aggregated leaderboard (default: ./{BOARD_FILENAME})")
    build.add_argument("--strict", action="store_true",
                       help="exit with status 1 if any result file was rejected (for CI)")
    build.set_defaults(func=_build)
    report = commands.add_parser(
        "report",
        help="render leaderboard.json as report.md plus plots, and print the tables",
        description=(
            "Write DIR/report.md with one ranked Markdown table per task (rank, model, score, then "
            "value ± stderr per dataset), a plot per task that has one (e.g. xor.png), and the list "
            "of rejected files; print the tables to stdout."
        ),
    )
    report.add_argument("--leaderboard", type=Path, default=Path(BOARD_FILENAME), metavar="FILE",
                        help=f"leaderboard written by `build` (default: ./{BOARD_FILENAME})")
    report.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="directory for report.md and the plots (created if missing)")
    report.set_defaults(func=_report)


def _build(args: argparse.Namespace) -> int:
    try:
        board = build_leaderboard(args.results)
    except NotADirectoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_leaderboard(board, args.out)
    rejected, superseded = board["rejected"], board["superseded"]
    for item in rejected:
        print(f"{args.results / item['path']}: {item['reason']}", file=sys.stderr)
    accepted = board["results_scanned"] - len(rejected)
    print(f"{accepted} accepted ({len(superseded)} superseded by newer duplicates), "
          f"{len(rejected)} rejected; wrote {args.out}")
    return 1 if args.strict and rejected else 0


def _report(args: argparse.Namespace) -> int:
    # Here, not at the top: matplotlib takes most of a second to import and `build` needs none of it.
    from polymodal.leaderboard.report import format_table, write_report

    try:
        board = read_leaderboard(args.leaderboard)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read leaderboard: {exc}", file=sys.stderr)
        return 2
    path = write_report(board, args.out)
    for key in sorted(board["tasks"]):
        print(f"\n{key} (primary metric: {board['tasks'][key]['primary_metric']})")
        print(format_table(board, key))
    print(f"\nwrote {path}")
    return 0
