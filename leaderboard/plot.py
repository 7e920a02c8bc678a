"""What a task's plots show, apart from how they are drawn (report.py draws PNGs, svg.py SVGs).

The primary metric against the dataset parameter the task names (xor: p_hat),
one curve per model and group of other parameters, with the 95% interval of
each point as an error bar. A reference level (chance, 1/w, a Bayes bound) is
known only at the datasets that were run, so it is drawn as a short level at
each of those x, never as a line between them: between w=2 and w=5 there is
no dataset whose 1/w would be 0.35.

The robustness sweep (benchmarks/protocols/robustness.py writes it as metrics
`robustness/{corruption}/{modality}@{p}`): per dataset a row of panels, one per
corruption, each with the primary accuracy against the share p of test queries
whose query modality was corrupted, one curve per model. A curve's point at p is
the mean over the task's query modalities (each corrupted alone, the other kept
clean); the per-modality values stay on the curve, as they stay in
leaderboard.json among each entry's scores. The dataset's reference levels are
flat across each panel: they do not depend on p.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

LEVEL_WIDTH = 0.3  # of the smallest gap between the x values run, each side of a level's point
#: The sweep's corruptions in the order the producer lists them (the leaderboard cannot import it); a corruption
#: a newer producer adds is drawn after these, by name.
CORRUPTIONS = ("missing-own", "missing-mean", "misaligned", "noisy")
_SWEEP = re.compile(r"^robustness/([^/@]+)/([^/@]+)@([^/@]+)$")


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
        name = _legend_name(entry)
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


@dataclass
class SweepCurve:
    label: str  # the model as the primary plot's legend names it
    model: int  # its place in Sweep.models, so that a model has one colour in every panel
    points: list[tuple[float, float]]  # p, the accuracy averaged over the modalities corrupted at that p
    by_modality: dict[str, list[tuple[float, float]]]  # modality -> (p, accuracy) with only it corrupted


@dataclass
class SweepRow:
    dataset: str  # the dataset's key
    label: str
    ranked: bool
    modalities: list[str]  # the query modalities averaged over in this row
    panels: dict[str, list[SweepCurve]]  # corruption -> one curve per model that ran it, in Sweep.models order
    levels: list[tuple[str, str, float]]  # reference name, label, level


@dataclass
class Sweep:
    metric: str  # the primary metric, which every point is a value of
    corruptions: list[str]  # the panels of every row, in this order
    models: list[str]  # legend labels, in rank order
    rows: list[SweepRow]

    @property
    def modalities(self) -> list[str]:
        return sorted({m for row in self.rows for m in row.modalities})


def sweep_data(task: dict[str, Any]) -> Sweep | None:
    """The task's robustness sweep per dataset and model, or None where no result carries one (older results)."""
    entries = task["entries"] + task["partial"]
    models = [_legend_name(entry) for entry in entries]
    ranked = {d["key"] for d in task["datasets"]}
    rows = []
    for dataset in task["datasets"] + task["other_datasets"]:
        panels: dict[str, list[SweepCurve]] = defaultdict(list)
        modalities: set[str] = set()
        for index, entry in enumerate(entries):
            sweep = _sweep_of(entry["scores"].get(dataset["key"], {}))
            for corruption, by_modality in sweep.items():
                modalities.update(by_modality)
                panels[corruption].append(SweepCurve(models[index], index, _mean_curve(by_modality), by_modality))
        if panels:
            levels = [(name, reference["label"], dataset["references"][name])
                      for name, reference in task["references"].items()
                      if _is_number(dataset["references"].get(name))]
            rows.append(SweepRow(dataset["key"], dataset["label"], dataset["key"] in ranked, sorted(modalities),
                                 dict(panels), levels))
    if not rows:
        return None
    found = {c for row in rows for c in row.panels}
    corruptions = [c for c in CORRUPTIONS if c in found] + sorted(found - set(CORRUPTIONS))
    return Sweep(task["primary_metric"], corruptions, models, rows)


def sweep_caption(task: dict[str, Any], sweep: Sweep) -> str:
    """What the sweep's figure plots, in one line of plain text (each renderer escapes it)."""
    return (f"Robustness: {sweep.metric} with one query modality corrupted at test time in a share p of the test "
            f"queries (p = 0: clean), one panel per corruption ({', '.join(sweep.corruptions)}), one row per "
            f"dataset, one line per model; each point is the mean over the query modalities "
            f"({', '.join(sweep.modalities)}), each corrupted on its own; flat grey lines: the dataset's reference "
            "levels.")


def sweep_command(task: dict[str, Any]) -> str:
    """What writes the sweep: every evaluation of the task, since it is part of each."""
    return f"polymodal bench --task {task['name']} --models ..."


def _sweep_of(scores: dict[str, Any]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """One result's sweep: corruption -> modality -> (p, value) by p. Names that do not parse, and rates outside
    [0, 1], are no point of it."""
    found: dict[str, dict[str, dict[float, float]]] = defaultdict(lambda: defaultdict(dict))
    for name, metric in scores.items():
        match = _SWEEP.match(name)
        if not match:
            continue
        try:
            p = float(match[3])
        except ValueError:
            continue
        if math.isfinite(p) and 0 <= p <= 1 and _is_number(metric.get("value")):
            found[match[1]][match[2]][p] = metric["value"]
    return {corruption: {m: sorted(points.items()) for m, points in sorted(by_modality.items())}
            for corruption, by_modality in found.items()}


def _mean_curve(by_modality: dict[str, list[tuple[float, float]]]) -> list[tuple[float, float]]:
    at: dict[float, list[float]] = defaultdict(list)
    for points in by_modality.values():
        for p, value in points:
            at[p].append(value)
    return [(p, sum(values) / len(values)) for p, values in sorted(at.items())]


def _legend_name(entry: dict[str, Any]) -> str:
    return f"#{entry['rank']} {entry['model']}" if entry["rank"] else f"{entry['model']} (unranked)"


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
