"""Rendering a leaderboard as Markdown (report.md, and the tables `leaderboard report` prints) and PNG plots.

Every string from a result file goes through text.markdown: HTML-escaped,
control characters stripped, Markdown's table and link syntax escaped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polymodal.leaderboard.plot import plot_data, sweep_caption, sweep_command, sweep_data
from polymodal.leaderboard.text import markdown, plain

MISSING = "—"  # a model that was not run on that dataset


def format_table(board: dict[str, Any], task: str) -> str:
    """The ranked Markdown table of one task (a key of board["tasks"], e.g. "xor@1.0")."""
    info = board["tasks"][task]
    primary = info["primary_metric"]
    columns = info["datasets"] + info["other_datasets"]
    header = [d["label"] + ("" if i < len(info["datasets"]) else " (not ranked)") for i, d in enumerate(columns)]
    lines = [_row(["Rank", "Group", "Model", f"{primary} (95% CI)", *header]),
             _row(["---:", "---:", "---", "---:", *("---:" for _ in columns)], escape=False)]
    for entry in info["entries"]:
        lines.append(_row([entry["rank"], entry["group"], entry["model"], _with_interval(entry["score"], entry["interval"]),
                           *(_cell(entry, d["key"], primary) for d in columns)]))
    for entry in info["partial"]:
        ran, total = entry["coverage"]
        lines.append(_row(["—", "", entry["model"], f"unranked: {ran}/{total} datasets",
                           *(_cell(entry, d["key"], primary) for d in columns)]))
    for name, reference in info["references"].items():  # read against, never ranked
        cells = [_number(d["references"][name]) if name in d["references"] else MISSING for d in columns]
        if any(cell != MISSING for cell in cells):
            lines.append(_row(["", "", f"*{markdown(reference['label'])}*", "", *cells], escape=False))
    return "\n".join(lines)


def write_report(board: dict[str, Any], out_dir: str | Path) -> Path:
    """Write out_dir/report.md and a plot per task whose results declare one; return the report's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = board["tasks"]
    lines = [
        "# polymodal leaderboard",
        "",
        (f"Built from {board['results_scanned']} result files, {len(board['rejected'])} rejected "
         f"({board['skipped']} other JSON files skipped). A model is ranked on a task only with a result on every "
         "dataset that ranks it; the others are listed below it, unranked, with their coverage. "
         f"Rank groups: {board['groups']}. Intervals are 95%; each table's notes name the method."),
    ]
    for name, suite in board["suites"].items():
        lines += ["", f"## Suite {markdown(name)}", "", markdown(suite["description"]), "", format_suite(suite)]
    for key in sorted(tasks):
        info = tasks[key]
        lines += ["", f"## {markdown(info['name'])} (version {markdown(info['version'])})", "",
                  format_table(board, key), "", _methods(info), "", "Metrics:", ""]
        lines += [f"- `{markdown(m['name'])}` in [{m['low']:g}, {m['high']:g}], {_direction(m)}: {markdown(m['meaning'])}"
                  for m in info["metrics"]]
        lines += [f"- *{markdown(r['label'])}* (`{markdown(n)}`): {markdown(r['meaning'])}" for n, r in info["references"].items()]
        image = out_dir / _plot_filename(tasks, key)
        if save_plot(info, image) is not None:
            lines += ["", f"![{markdown(info['name'])}: {markdown(info['primary_metric'])} per model]({image.name})"]
        sweep = out_dir / _plot_filename(tasks, key).replace(".png", "-robustness.png")
        if save_sweep_plot(info, sweep) is not None:
            lines += ["", f"![{markdown(info['name'])}: robustness of {markdown(info['primary_metric'])} per model]"
                          f"({sweep.name})", "",
                      f"{markdown(sweep_caption(info, sweep_data(info)))} The sweep is part of every evaluation: "
                      f"`{markdown(sweep_command(info))}` writes it."]
    if board["rejected"]:
        lines += ["", "## Rejected files", ""]
        lines += [f"- {markdown(item['path'])}: {markdown(item['reason'])}" for item in board["rejected"]]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report


def format_suite(suite: dict[str, Any]) -> str:
    tasks = [f"{t['task']}@{t['version']}" for t in suite["tasks"]]
    lines = [_row(["Rank", "Model", "Borda", "Mean rank", *(f"{t} rank" for t in tasks)]),
             _row(["---:", "---", "---:", "---:", *("---:" for _ in tasks)], escape=False)]
    for entry in suite["entries"]:
        lines.append(_row([entry["rank"], entry["model"], f"{entry['borda']:g}", f"{entry['mean_rank']:.2f}",
                           *(entry["task_ranks"][t] for t in tasks)]))
    for entry in suite["partial"]:
        ran, total = entry["coverage"]
        lines.append(_row(["—", entry["model"], f"unranked: {ran}/{total} datasets", "", *("" for _ in tasks)]))
    if not suite["entries"]:
        lines.append(_row(["", "no model has a result on every dataset of this suite", "", "", *("" for _ in tasks)]))
    return "\n".join(lines) + f"\n\nOrdered by {markdown(suite['ordered_by'])}."


def save_plot(task: dict[str, Any], path: Path) -> Path | None:
    """The task's plot as a PNG at `path`; None if it has nothing to draw."""
    data = plot_data(task)
    if data is None:
        return None
    # Here, not at the top: matplotlib takes most of a second to import, and only plots need it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.5, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for curve in data.curves:
        x, y, low, high = zip(*curve.points)
        errors = [[v - lo if lo is not None else 0 for v, lo in zip(y, low)],
                  [hi - v if hi is not None else 0 for v, hi in zip(y, high)]]
        axes.errorbar(x, y, yerr=errors, marker="o", capsize=3, label=_plain(curve.label))
    for level, style in zip(data.levels, LEVEL_STYLES):
        for i, (start, end, y) in enumerate(level.segments):
            axes.hlines(y, start, end, label=_plain(level.label) if i == 0 else None, zorder=3, **style)
    axes.set_xlabel(f"{_mathtext(data.symbol)}  (dataset parameter {_plain(data.x_param)})")
    axes.set_ylabel(_plain(data.y_label))
    axes.set_title(_plain(f"{task['name']} v{task['version']}: {task['primary_metric']} (error bars: 95% interval)"))
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))  # outside: no curve is hidden
    figure.savefig(path, dpi=120)
    return path


def save_sweep_plot(task: dict[str, Any], path: Path) -> Path | None:
    """The task's robustness sweep as a PNG at `path` (a row of panels per dataset, one per corruption); None if
    no result of the task carries one."""
    data = sweep_data(task)
    if data is None:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = len(data.corruptions)
    figure = Figure(figsize=(2.4 * columns + 2.6, 2.3 * len(data.rows) + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(len(data.rows), columns, sharex=True, sharey=True, squeeze=False)
    levels = list(dict.fromkeys(name for row in data.rows for name, _, _ in row.levels))
    curves, level_lines = {}, {}  # the legend's: model index -> line, reference name -> level
    for row, panels in zip(data.rows, grid):
        for corruption, axes in zip(data.corruptions, panels):
            for curve in row.panels.get(corruption, []):
                p, y = zip(*curve.points)
                curves[curve.model], = axes.plot(p, y, marker="o", markersize=4, color=f"C{curve.model % 10}",
                                                  label=_plain(curve.label))
            for name, label, y in row.levels:
                style = LEVEL_STYLES[levels.index(name) % len(LEVEL_STYLES)]
                level_lines[name] = axes.hlines(y, 0, 1, label=_plain(label), zorder=3, **style)
            axes.set_title(_plain(corruption), fontsize="medium")
            axes.set_xlim(-0.05, 1.05)
            axes.set_ylim(-0.03, 1.03)
            axes.set_xticks([0, 0.5, 1])
            axes.grid(True, alpha=0.3)
        panels[0].set_ylabel(_plain(row.label[:30] + ("" if row.ranked else " (not ranked)")) + "\naccuracy",
                             fontsize="small")
    for axes in grid[-1]:
        axes.set_xlabel("p (share corrupted)", fontsize="small")
    title = (f"{task['name']} v{task['version']}: {data.metric} with one query modality corrupted "
             f"(mean over {', '.join(data.modalities)})")
    figure.suptitle(plain(title).replace("$", r"\$"), x=0.01, ha="left")  # longer than a legend line may be
    figure.legend(handles=[level_lines[name] for name in levels] + [curves[m] for m in sorted(curves)],
                  fontsize="small", loc="outside right upper")
    figure.savefig(path, dpi=110)
    return path


# Reference levels in the order a task lists them: dotted, above the models so chance stays visible.
LEVEL_STYLES = ({"colors": "black", "linestyles": ":", "linewidth": 2},
                {"colors": "dimgrey", "linestyles": (0, (1, 3)), "linewidth": 2},
                {"colors": "grey", "linestyles": (0, (3, 2, 1, 2)), "linewidth": 2})


def _methods(info: dict[str, Any]) -> str:
    methods = sorted({e["interval"]["method"] for e in info["entries"]}
                     | {m["interval"]["method"] for e in info["entries"] + info["partial"]
                        for by_metric in e["scores"].values() for name, m in by_metric.items()
                        if name == info["primary_metric"]})
    return "Intervals: " + "; ".join(markdown(m) for m in methods) + "." if methods else "No intervals."


def _direction(metric: dict[str, Any]) -> str:
    return {True: "higher is better", False: "lower is better", None: "descriptive"}[metric["higher_is_better"]]


def _plot_filename(tasks: dict[str, Any], key: str) -> str:
    # "xor.png" while there is one version of xor; "xor@1.0.png" etc. once there are several.
    name = tasks[key]["name"]
    versions = sum(1 for info in tasks.values() if info["name"] == name)
    return f"{name}.png" if versions == 1 else f"{key}.png"


def _cell(entry: dict[str, Any], dataset: str, metric: str) -> str:
    shown = entry["scores"].get(dataset, {}).get(metric)
    return MISSING if shown is None else _with_interval(shown["value"], shown["interval"])


def _with_interval(value: float, interval: dict[str, Any] | None) -> str:
    if interval is None or interval["low"] is None:
        return _number(value)
    return f"{_number(value)} ({_number(interval['low'])}–{_number(interval['high'])})"


def _number(value: float) -> str:
    # Fixed decimals suit accuracies; huge values would print hundreds of digits.
    return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.4g}"


def _row(cells: list[Any], escape: bool = True) -> str:
    return "| " + " | ".join(markdown(c) if escape else str(c) for c in cells) + " |"


def _mathtext(text: str) -> str:
    # A result file's symbol is drawn as mathtext where it parses, else as plain text, never failing the report.
    from matplotlib.mathtext import MathTextParser

    try:
        MathTextParser("path").parse(text)
    except ValueError:
        return _plain(text)
    return text


def _plain(text: str) -> str:
    # matplotlib reads text between two "$" as LaTeX, which may fail to parse; it also warns about, and so
    # prints, any character its font lacks, control characters included. A legend line stays short.
    return plain(text)[:60].replace("$", r"\$")
