"""Command line: `polymodal leaderboard build|report|site|check` (also `python -m polymodal.leaderboard ...`).

Whatever these print from a result file (paths, names, reasons) goes through
text.safe or text.markdown first: a file name cannot send escape sequences
to the terminal.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from pathlib import Path

from polymodal.argtypes import folder, integer, number
from polymodal.leaderboard.aggregate import BOARD_FILENAME, build_leaderboard, read_leaderboard, write_leaderboard
from polymodal.leaderboard.remote import local_results, location, shown
from polymodal.leaderboard.text import safe

DESCRIPTION = (
    "Rank models from benchmark result files. `build` validates every result JSON under a "
    "directory and aggregates them into leaderboard.json; `report` renders that file as "
    "report.md with one ranked table (and, where the task has one, a plot) per task; `site` writes a static "
    "HTML site; `check` is what a results repository's CI runs on a pull request."
)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `leaderboard` (with its sub-commands) on a parent CLI."""
    parser = subparsers.add_parser(
        "leaderboard", help="build, report and publish the leaderboard from result files", description=DESCRIPTION
    )
    _add_subcommands(parser)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polymodal.leaderboard", description=DESCRIPTION)
    _add_subcommands(parser)
    args = parser.parse_args(argv)
    return args.func(args)


def _add_subcommands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="leaderboard_command", required=True, metavar="{build,report,site,check}")
    build = commands.add_parser(
        "build",
        help="validate result files and aggregate them into leaderboard.json",
        description=(
            "Scan DIR recursively for result files (other JSON, such as manifests and run files, is skipped), "
            "validate each against the result schema and its task's metric declarations, keep the newest of "
            "duplicate (task, model, dataset) results, and rank models per task version and suite. Invalid files "
            "are reported on stderr as `path: reason` and listed in the output; they never stop the build."
        ),
    )
    _add_results(build)
    build.add_argument("--out", type=Path, default=Path(BOARD_FILENAME), metavar="FILE",
                       help=f"where to write the aggregated leaderboard (default: ./{BOARD_FILENAME})")
    build.add_argument("--strict", action="store_true",
                       help="exit with status 1 if any result file was rejected (for CI)")
    build.set_defaults(func=_on_local_results(_build))
    report = commands.add_parser(
        "report",
        help="render leaderboard.json as report.md plus plots, and print the tables",
        description=(
            "Write DIR/report.md with the suites' rankings and one ranked Markdown table per task (rank, rank "
            "group, model, score with its 95%% interval, then each dataset), a plot per task that has one (e.g. "
            "xor.png) and its robustness sweep where its results carry one (xor-robustness.png), and the list "
            "of rejected files; print the tables to stdout."
        ),
    )
    report.add_argument("--leaderboard", type=Path, default=Path(BOARD_FILENAME), metavar="FILE",
                        help=f"leaderboard written by `build` (default: ./{BOARD_FILENAME})")
    report.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="directory for report.md and the plots (created if missing)")
    report.set_defaults(func=_report)
    site = commands.add_parser(
        "site", help="write the leaderboard as a static HTML site",
        description="Build the board from DIR and write a static site to SITE: a page per suite, task, model and "
        "dataset, with sortable tables, filters, a column picker, SVG plots and a CSV per table. It needs no server "
        "and no network: open SITE/index.html from the file system.",
    )
    _add_results(site)
    site.add_argument("--out", required=True, type=Path, metavar="SITE", help="folder to write the site into")
    site.set_defaults(func=_on_local_results(_site))
    check = commands.add_parser(
        "check", help="check submitted results as a results repository's CI would",
        description="Validate every result file under DIR (exit 1 if any is rejected), and flag results whose "
        "datasets belong to no suite and results whose card names the dataset they were scored on as training "
        "data (they are not zero-shot). With --rerun it also trains the first --limit results again, as each "
        "records (task, model source and config, training config, seed), on the dataset of the same id under "
        "--data, and fails any whose primary metric differs from its claim by more than --tolerance. --rerun "
        "needs the benchmark harness (torch).",
    )
    _add_results(check, positional=True)
    check.add_argument("--rerun", action="store_true", help="retrain and re-score results to confirm their numbers")
    check.add_argument("--data", type=folder(), metavar="DIR", help="folder holding the built datasets, searched "
                       "recursively for the ones the results name (with --rerun)")
    check.add_argument("--tolerance", type=number(low=0), default=0.01, help="largest accepted difference of the "
                       "primary metric (default %(default)s; on a CPU a rerun gives the same number)")
    check.add_argument("--limit", type=integer(low=1), default=3, help="how many results to rerun, the first in "
                       "path order (default %(default)s)")
    check.add_argument("--trust-code", action="store_true", help="rerun models whose code comes with the "
                       "submission (module:Class); that runs it, so only for a submission you have read")
    check.set_defaults(func=_on_local_results(_check))


def _add_results(parser: argparse.ArgumentParser, positional: bool = False) -> None:
    help = "folder holding result JSON files, searched recursively, or an fsspec URL of one (s3://bucket/results)"
    if positional:
        parser.add_argument("results", type=location, metavar="DIR", help=help)
    else:
        parser.add_argument("--results", required=True, type=location, metavar="DIR", help=help)


def _on_local_results(command):
    """`command` run on a local folder of results: a URL's objects copied into one first (remote.local_results);
    `results_shown` is what messages name."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        with local_results(args.results) as folder:
            return command(argparse.Namespace(**{**vars(args), "results": folder, "results_shown": args.results}))

    return run


def _board(results: Path) -> dict | None:
    try:
        return build_leaderboard(results)
    except NotADirectoryError as exc:
        print(f"error: {safe(exc)}", file=sys.stderr)
        return None


def _print_rejections(board: dict, results) -> None:
    for item in board["rejected"]:
        print(f"{safe(shown(results, item['path']))}: {safe(item['reason'])}", file=sys.stderr)


def _build(args: argparse.Namespace) -> int:
    board = _board(args.results)
    if board is None:
        return 2
    write_leaderboard(board, args.out)
    _print_rejections(board, args.results_shown)
    rejected, superseded = board["rejected"], board["superseded"]
    accepted = board["results_scanned"] - len(rejected)
    print(f"{accepted} accepted ({len(superseded)} superseded by newer duplicates), {len(rejected)} rejected, "
          f"{board['skipped']} other JSON files skipped; wrote {safe(args.out)}")
    return 1 if args.strict and rejected else 0


def _report(args: argparse.Namespace) -> int:
    from polymodal.leaderboard.report import format_table, write_report

    try:
        board = read_leaderboard(args.leaderboard)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read leaderboard: {safe(exc)}", file=sys.stderr)
        return 2
    path = write_report(board, args.out)
    for key in sorted(board["tasks"]):
        print(f"\n{safe(key)} (primary metric: {safe(board['tasks'][key]['primary_metric'])})")
        print(format_table(board, key))
    print(f"\nwrote {safe(path)}")
    return 0


def _site(args: argparse.Namespace) -> int:
    from polymodal.leaderboard.site import write_site

    board = _board(args.results)
    if board is None:
        return 2
    _print_rejections(board, args.results_shown)
    print(f"site: {safe(write_site(board, args.out))}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from polymodal.leaderboard.submission import check

    if args.rerun and args.data is None:
        raise SystemExit("polymodal leaderboard check: error: --rerun needs --data, the folder of built datasets")
    board = _board(args.results)
    if board is None:
        return 2
    status = check(board, args.results)
    if args.rerun:
        # Imported here: the leaderboard runs without torch, and only --rerun trains.
        rerun_results = importlib.import_module("polymodal.benchmarks.rerun").rerun_results
        paths = sorted({path for task in board["tasks"].values() for entry in task["entries"] + task["partial"]
                        for path in entry["results"].values()})
        if rerun_results(args.results, paths, args.data, args.tolerance, args.limit, args.trust_code):
            status = 1
    return status
