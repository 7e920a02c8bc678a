"""The leaderboard as a static site: plain files that open from file://, with no server and no network.

    SITE/index.html                 suites, tasks, rejected files
    SITE/suite-<name>.html          a suite's ranking
    SITE/task-<slug>.html           a task's ranking: filters, a column picker for every metric, sortable columns
    SITE/model-<slug>.html          a model's card and results
    SITE/dataset-<slug>.html        a dataset's card, digest and reproduce command
    SITE/plots/<slug>.svg           the task's plot
    SITE/plots/<slug>-robustness.svg  its robustness sweep, where its results carry one
    SITE/csv/<page>.csv             each table
    SITE/assets/site.js, site.css   the few lines of script (sort, filter, pick columns) and the style

Pages come from jinja2 templates with autoescape on, so every string from a
result file is HTML-escaped; no page links to anything a result names.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, FunctionLoader, StrictUndefined
from markupsafe import Markup

from polymodal.leaderboard.identity import slug
from polymodal.leaderboard.plot import plot_data, sweep_caption, sweep_command, sweep_data
from polymodal.leaderboard.submission import trained_on
from polymodal.leaderboard.svg import render_svg, render_sweep_svg
from polymodal.leaderboard.text import lines, plain

ASSETS = ("site.js", "site.css")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet would run as a formula


def write_site(board: dict[str, Any], out: str | Path) -> Path:
    """Write the site for `board` into `out`; return the path of its index.html."""
    out = Path(out)
    for folder in ("assets", "plots", "csv"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        shutil.copyfile(str(_resource(name)), out / "assets" / name)
    env = _environment()
    pages = _pages(board)
    for name, (template, context, tables) in pages.items():
        (out / name).write_text(env.get_template(template).render(board=board, **context), encoding="utf-8")
        for csv_name, rows in tables.items():
            (out / "csv" / csv_name).write_text(_csv(rows), encoding="utf-8")
    for key, task in board["tasks"].items():
        data = plot_data(task)
        if data is not None:
            svg = render_svg(data, f"{task['name']} v{task['version']}: {task['primary_metric']}")
            (out / "plots" / f"{task_slug(key)}.svg").write_text(svg, encoding="utf-8")
        sweep = sweep_data(task)
        if sweep is not None:
            svg = render_sweep_svg(sweep, _sweep_title(task, sweep))
            (out / "plots" / f"{task_slug(key)}-robustness.svg").write_text(svg, encoding="utf-8")
    return out / "index.html"


def _sweep_title(task: dict[str, Any], sweep) -> str:
    return (f"{task['name']} v{task['version']}: {sweep.metric} with one query modality corrupted "
            f"(mean over {', '.join(sweep.modalities)})")


def task_slug(key: str) -> str:
    return slug(key, key)


def suite_slug(name: str) -> str:
    return slug(name, name)


def _pages(board: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any], dict[str, list[list[Any]]]]]:
    """File name -> (template, context, {csv file: rows})."""
    models, datasets = board["models"], board["datasets"]
    pages: dict[str, tuple[str, dict[str, Any], dict[str, list[list[Any]]]]] = {
        "index.html": ("index.html", {}, {}),
    }
    for name, suite in board["suites"].items():
        page = f"suite-{suite_slug(name)}"
        pages[f"{page}.html"] = ("suite.html", {"suite": suite, "csv": f"{page}.csv", "models": models},
                                 {f"{page}.csv": _suite_rows(suite)})
    for key, task in board["tasks"].items():
        page = f"task-{task_slug(key)}"
        view = _task_view(task, models)
        sweep = sweep_data(task)
        robustness = sweep and {"src": f"plots/{task_slug(key)}-robustness.svg", "caption": sweep_caption(task, sweep),
                                "command": sweep_command(task), "alt": _sweep_title(task, sweep)}
        pages[f"{page}.html"] = ("task.html", {"task": task, "view": view, "csv": f"{page}.csv",
                                               "plot": f"plots/{task_slug(key)}.svg" if plot_data(task) else None,
                                               "robustness": robustness},
                                 {f"{page}.csv": view["csv"]})
    for key, model in models.items():
        runs = [(task_key, entry) for task_key, task in board["tasks"].items()
                for entry in task["entries"] + task["partial"] if entry["model_key"] == key]
        pages[f"model-{model['slug']}.html"] = ("model.html", {
            "model": model, "runs": runs,
            "config": Block(json.dumps(model["card"].get("config", {}), indent=2, sort_keys=True, ensure_ascii=False))},
            {})
    for key, dataset in datasets.items():
        ran = [entry for entry in _entries_of(board, dataset["task"]) if key in entry["scores"]]
        pages[f"dataset-{dataset['slug']}.html"] = ("dataset.html", {
            "dataset": dataset, "ran": ran,
            "params": Block(json.dumps(dataset["params"], indent=2, sort_keys=True, ensure_ascii=False))}, {})
    return pages


def _entries_of(board: dict[str, Any], task_key: str) -> list[dict[str, Any]]:
    task = board["tasks"].get(task_key)
    return task["entries"] + task["partial"] if task else []


def _task_view(task: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    """The task table's columns (primary metric first, then every other metric per dataset) and rows."""
    datasets = task["datasets"] + task["other_datasets"]
    names = sorted({name for e in task["entries"] + task["partial"] for by in e["scores"].values() for name in by},
                   key=lambda n: (n != task["primary_metric"], n))
    columns = [{"metric": name, "dataset": d, "metric_index": names.index(name),
                "ranked": d in task["datasets"]} for name in names for d in datasets]
    rows = [_row(entry, task, models, columns) for entry in task["entries"] + task["partial"]]
    header = ["rank", "group", "model", "source", "revision", "score", "score_low", "score_high", "coverage"]
    table = [header + [f"{c['metric']} [{c['dataset']['label']}]" for c in columns]]
    for row in rows:
        table.append([row["rank"], row["group"], row["model"], row["card"]["source"], row["card"].get("revision"),
                      row["score"], row["low"], row["high"], row["coverage"]]
                     + [cell["value"] for cell in row["cells"]])
    return {"metrics": names, "columns": columns, "rows": rows, "csv": table,
            "filters": _filters(rows)}


def _row(entry: dict[str, Any], task: dict[str, Any], models: dict[str, Any], columns: list[dict[str, Any]]) -> dict:
    model = models[entry["model_key"]]
    card = model["card"]
    interval = entry["interval"] or {}
    cells = []
    for column in columns:
        shown = entry["scores"].get(column["dataset"]["key"], {}).get(column["metric"])
        cells.append({"value": shown and shown["value"], "interval": shown and shown["interval"]})
    return {
        "rank": entry["rank"], "group": entry["group"], "model": entry["model"], "slug": model["slug"], "card": card,
        "score": entry["score"], "low": interval.get("low"), "high": interval.get("high"),
        "method": interval.get("method"), "coverage": "{}/{}".format(*entry["coverage"]), "cells": cells,
        "modalities": ",".join(sorted(card["modalities"])), "license": card.get("license") or "unknown",
        "training": _training(card, task),
    }


def _training(card: dict[str, Any], task: dict[str, Any]) -> str:
    """zero-shot, trained on this task, or unknown: what the card's training_data says of the task's datasets."""
    if not card.get("training_data"):
        return "unknown"
    datasets = task["datasets"] + task["other_datasets"]
    return "trained on this task" if any(trained_on(card, d) for d in datasets) else "zero-shot"


def _filters(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {key: sorted({row[key] for row in rows}) for key in ("modalities", "license", "training")}


def _suite_rows(suite: dict[str, Any]) -> list[list[Any]]:
    tasks = [f"{t['task']}@{t['version']}" for t in suite["tasks"]]
    rows = [["rank", "model", "borda", "mean_rank", *(f"{t} rank" for t in tasks)]]
    rows += [[e["rank"], e["model"], e["borda"], e["mean_rank"], *(e["task_ranks"][t] for t in tasks)]
             for e in suite["entries"]]
    rows += [["", e["model"], "", "", *("" for _ in tasks)] for e in suite["partial"]]
    return rows


def _csv(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow(["" if v is None else _cell(v) for v in row])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    # A name such as "=HYPERLINK(...)" would run as a formula where the CSV is opened; a quote keeps it text.
    if isinstance(value, str):
        value = plain(value)
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    return value


class Block(str):
    """Text shown preformatted: its newlines stay (other control characters still go, and it is still escaped)."""


def _finalize(value: Any) -> Any:
    # Every {{ }} of every template passes here before autoescape: one place strips control characters.
    # Markup is what the templates' own macros return, already escaped.
    if isinstance(value, Markup):
        return value
    if isinstance(value, Block):
        return lines(value)
    return plain(value) if isinstance(value, str) else value


def _resource(name: str):
    return resources.files(__package__).joinpath("resources", name)


def _environment() -> Environment:
    def load(name: str) -> str:
        return _resource(name).read_text("utf-8")

    env = Environment(loader=FunctionLoader(load), autoescape=True, undefined=StrictUndefined, finalize=_finalize,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _number
    env.globals.update(task_slug=task_slug, suite_slug=suite_slug)
    return env


def _number(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.4g}"
