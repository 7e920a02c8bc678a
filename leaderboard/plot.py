"""What a task's plot shows, apart from how it is drawn (report.py draws a PNG, site/svg.py an SVG).

The primary metric against the dataset parameter the task names (xor: p_hat),
one curve per model and group of other parameters, with the 95% interval of
each point as an error bar. A reference level (chance, 1/w, a Bayes bound) is
known only at the datasets that were run, so it is drawn as a short level at
each of those x, never as a line between them: between w=2 and w=5 there is
no dataset whose 1/w would be 0.35.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

LEVEL_WIDTH = 0.3  # of the smallest gap between the x values run, each side of a level's point


@dataclass
class Curve:
    label: str
    points: list[tuple[float, float, float | None, float | None]] = field(default_factory=list)  # x, y, low, high


@dataclass
class Level:
    name: str
    label: str
    segments: list[tuple[float, float, float]] = field(default_factory=list)  # x from, x to, y


@dataclass
class Plot:
    x_param: str
    symbol: str
    y_label: str
    curves: list[Curve]
    levels: list[Level]


def plot_data(task: dict[str, Any]) -> Plot | None:
    """The plot the task's results declare, or None if there is none or no dataset has a numeric x."""
    if not task.get("plot"):
        return None
    x_param = task["plot"]["x"]
    datasets = {d["key"]: d for d in task["datasets"] + task["other_datasets"] if _is_number(d["params"].get(x_param))}
    if not datasets:
        return None
    groups = _groups(datasets, x_param)
    several = len(set(groups.values())) > 1
    curves = []
    for entry in task["entries"] + task["partial"]:
        name = f"#{entry['rank']} {entry['model']}" if entry["rank"] else f"{entry['model']} (unranked)"
        by_group: dict[str, Curve] = {}
        for key in sorted(datasets, key=lambda k: datasets[k]["params"][x_param]):
            metric = entry["scores"].get(key, {}).get(task["primary_metric"])
            if metric is None:
                continue
            curve = by_group.setdefault(groups[key], Curve(f"{name} ({groups[key]})" if several else name))
            interval = metric["interval"]
            curve.points.append((datasets[key]["params"][x_param], metric["value"], interval["low"], interval["high"]))
        curves.extend(by_group.values())
    xs = sorted({d["params"][x_param] for d in datasets.values()})
    gaps = [b - a for a, b in itertools.pairwise(xs)]
    half = LEVEL_WIDTH * (min(gaps) if gaps else max(abs(xs[0]), 1.0))
    levels = []
    for name, reference in task["references"].items():
        level = Level(name, reference["label"])
        for key in sorted(datasets, key=lambda k: datasets[k]["params"][x_param]):
            y = datasets[key]["references"].get(name)
            if _is_number(y):
                x = datasets[key]["params"][x_param]
                level.segments.append((x - half, x + half, y))
        if level.segments:
            levels.append(level)
    return Plot(x_param, task["plot"]["symbol"], task["primary_metric"], curves, levels)


def _groups(datasets: dict[str, dict[str, Any]], x_param: str) -> dict[str, str]:
    """Dataset key -> its curve group: the other params (dim=5). Two datasets of a group at the same x (built
    alike but for their size, say) would draw one point on another, so those get their own group, by label."""
    groups = {k: ", ".join(f"{p}={v}" for p, v in sorted(d["params"].items()) if p != x_param) or "-"
              for k, d in datasets.items()}
    at: dict[tuple[str, float], list[str]] = defaultdict(list)
    for key, dataset in datasets.items():
        at[groups[key], dataset["params"][x_param]].append(key)
    for keys in at.values():
        if len(keys) > 1:
            for key in keys:
                groups[key] = datasets[key]["label"]
    return groups


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
