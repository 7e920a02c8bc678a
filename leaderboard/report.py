"""Rendering a leaderboard as Markdown tables and per-task plots."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

# Figure + the Agg canvas directly, not pyplot: no global backend to pick and no
# display needed, so reports render on headless machines.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.mathtext import MathTextParser

MISSING = "—"  # a model that was not run on that dataset

# How the reference levels a result may carry are drawn, and in which order; drawn
# above the models (zorder) so a model sitting at chance does not hide the chance line.
REFERENCE_STYLES: dict[str, dict[str, Any]] = {
    "bayes_bound": {"label": "Bayes bound", "color": "black", "linestyle": "--", "marker": "x", "zorder": 3},
    "chance": {"label": "chance", "color": "dimgrey", "linestyle": ":", "linewidth": 2, "zorder": 3},
    "chance_w": {"label": "1/w", "color": "grey", "linestyle": "-.", "zorder": 3},
}


def format_table(board: dict[str, Any], task: str) -> str:
    """The ranked Markdown table of one task (a key of board["tasks"], e.g. "xor@1.0")."""
    info = board["tasks"][task]
    datasets = info["datasets"]
    total = len(datasets)
    lines = [
        _row(["Rank", "Model", "Score", *(d["label"] for d in datasets)]),
        _row(["---:", "---", "---:", *("---:" for _ in datasets)]),
    ]
    for entry in info["entries"]:
        covered = len(entry["scores"])
        score = _number(entry["score"]) + ("" if covered == total else f" ({covered}/{total})")
        cells = [_score_cell(entry["scores"].get(d["id"])) for d in datasets]
        lines.append(_row([str(entry["rank"]), entry["model"], score, *cells]))
    # Reference levels go under the ranking, unranked, so models read against them.
    names = sorted({name for d in datasets for name in d["references"]})
    for name in names:
        cells = [_number(d["references"][name]) if name in d["references"] else MISSING for d in datasets]
        lines.append(_row(["", f"*{name}*", "", *cells]))
    return "\n".join(lines)


def write_report(board: dict[str, Any], out_dir: str | Path) -> Path:
    """Write out_dir/report.md and a plot per task whose results declare one; return the report's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = board["tasks"]
    lines = [
        "# polymodal leaderboard",
        "",
        f"Built from {board['results_scanned']} result files, {len(board['rejected'])} rejected. "
        "Score is the mean primary metric over the datasets a model was run on (higher is better); "
        "(k/n) marks a model run on only k of the n datasets.",
    ]
    for key in sorted(tasks):
        info = tasks[key]
        lines += ["", f"## {info['name']} (version {info['version']})", "",
                  f"Primary metric: `{info['primary_metric']}`.", "", format_table(board, key)]
        image = out_dir / _plot_filename(tasks, key)
        if info.get("plot") and save_plot(info, image) is not None:
            lines += ["", f"![{info['name']}: {info['primary_metric']} per model]({image.name})"]
    if board["rejected"]:
        lines += ["", "## Rejected files", ""]
        lines += [f"- `{item['path']}`: {_cell(item['reason'])}" for item in board["rejected"]]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report


def figure_against(task: dict[str, Any], param: str, symbol: str) -> Figure | None:
    """Primary metric against the dataset parameter `param` per model, with the reference levels;
    None if no dataset has a numeric `param`. Datasets that differ in more (say dim) get their own curves."""
    datasets = {d["id"]: d for d in task["datasets"] if _is_number(d["params"].get(param))}
    if not datasets:
        return None
    groups = {dataset_id: _other_params(d["params"], param) for dataset_id, d in datasets.items()}
    order = list(dict.fromkeys(groups.values()))  # the table's (numeric) order: dim=5 before dim=10
    several = len(order) > 1

    def label(name: str, group: str) -> str:
        return _plain(f"{name} ({group})" if several else name)

    figure = Figure(figsize=(8.5, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for entry in task["entries"]:
        curves: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        for dataset_id, score in entry["scores"].items():
            if dataset_id in datasets:
                x = datasets[dataset_id]["params"][param]
                curves[groups[dataset_id]].append((x, score["value"], score["stderr"] or 0.0))
        # The rank prefix also keeps a model named "_x" in the legend, which hides "_" labels.
        name = f"#{entry['rank']} {entry['model']}"
        for group, points in sorted(curves.items(), key=lambda item: order.index(item[0])):
            x, y, err = zip(*sorted(points))
            axes.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label(name, group))
    for reference, style in REFERENCE_STYLES.items():
        levels: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for dataset_id, d in datasets.items():
            if _is_number(d["references"].get(reference)):
                levels[groups[dataset_id]].append((d["params"][param], d["references"][reference]))
        for group, points in sorted(levels.items(), key=lambda item: order.index(item[0])):
            x, y = zip(*sorted(points))
            axes.plot(x, y, **{**style, "label": label(style["label"], group)})
    axes.set_xlabel(f"{symbol}  (dataset parameter {param})")
    axes.set_ylabel(_plain(task["primary_metric"]))
    title = _plain(f"{task['name']} v{task['version']}: {task['primary_metric']}")
    axes.set_title(f"{title} vs {symbol} (error bars: ±1 stderr)")
    axes.grid(True, alpha=0.3)
    # Outside the axes, so that no number of models covers the curves.
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))
    return figure


def save_plot(task: dict[str, Any], path: Path) -> Path | None:
    """The plot the task's results declare (board task "plot": x and symbol) at `path`; None if nothing to draw."""
    figure = figure_against(task, task["plot"]["x"], _mathtext(task["plot"]["symbol"]))
    if figure is None:
        return None
    figure.savefig(path, dpi=120)
    return path


def _plot_filename(tasks: dict[str, Any], key: str) -> str:
    # "xor.png" while there is one version of xor; "xor@1.0.png" etc. once there are several.
    name = tasks[key]["name"]
    versions = sum(1 for info in tasks.values() if info["name"] == name)
    return f"{name}.png" if versions == 1 else f"{key}.png"


def _other_params(params: dict[str, Any], param: str) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(params.items()) if key != param)


def _score_cell(score: dict[str, Any] | None) -> str:
    if score is None:
        return MISSING
    if score["stderr"] is None:
        return _number(score["value"])
    return f"{_number(score['value'])} ± {_number(score['stderr'])}"


def _number(value: float) -> str:
    # Fixed decimals suit accuracies; huge values would print hundreds of digits.
    return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.4g}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _cell(text: str) -> str:
    # A "|" or a line break in a model name or label would split the table.
    return " ".join(str(text).split()).replace("|", "\\|")


def _mathtext(text: str) -> str:
    # A result file's symbol is drawn as mathtext where it parses, else as plain text, never failing the report.
    try:
        MathTextParser("path").parse(text)
    except ValueError:
        return _plain(text)
    return text


def _plain(text: str) -> str:
    # matplotlib reads text between two "$" as LaTeX, which may fail to parse.
    return text.replace("$", r"\$")
