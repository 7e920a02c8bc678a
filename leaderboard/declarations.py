"""What tasks declare about their metrics, and which model names are reserved, read from declarations.json.

Tasks declare their metrics on their classes (benchmarks/tasks); those classes
import torch, so the leaderboard reads a JSON export of them instead:
`python -m polymodal.benchmarks.tasks.declarations` writes it, and a test
keeps it in step with the tasks.
"""

from __future__ import annotations

import fnmatch
import functools
import json
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

FILENAME = "declarations.json"
RANGE_SLACK = 1e-6  # a cosine of 1 computed in float32 may come out as 1.0000001


@dataclass(frozen=True)
class Metric:
    """A metric a task reports. `name` may hold `*` for a family (`retrieval/*/recall@1`)."""

    name: str
    low: float
    high: float
    higher_is_better: bool | None  # None: descriptive (a modality gap), never ranked on
    meaning: str

    def matches(self, metric: str) -> bool:
        return fnmatch.fnmatchcase(metric, self.name)

    def problem(self, value: float) -> str | None:
        """Why `value` cannot be this metric, or None."""
        if self.low - RANGE_SLACK <= value <= self.high + RANGE_SLACK:
            return None
        return f"{value!r} is outside its declared range [{self.low:g}, {self.high:g}]"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Reference:
    """A reference level a task's results carry (chance, a Bayes bound): how to label and read it."""

    label: str
    meaning: str


@dataclass(frozen=True)
class TaskDeclaration:
    name: str
    version: str
    primary_metric: str
    metrics: tuple[Metric, ...]
    references: dict[str, Reference]

    def metric(self, name: str) -> Metric | None:
        # The first declaration that matches: an exact name is listed before the family it would also match.
        return next((m for m in self.metrics if m.matches(name)), None)


@functools.cache
def _load() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath(FILENAME).read_text("utf-8"))


def task_declaration(key: str) -> TaskDeclaration | None:
    """The declaration of task version `key` ("xor@1.0"), or None if no task declares it."""
    raw = _load()["tasks"].get(key)
    if raw is None:
        return None
    name, _, version = key.partition("@")
    return TaskDeclaration(
        name=name,
        version=version,
        primary_metric=raw["primary_metric"],
        metrics=tuple(Metric(**m) for m in raw["metrics"]),
        references={k: Reference(**v) for k, v in raw["references"].items()},
    )


def declared_tasks() -> list[str]:
    return sorted(_load()["tasks"])


def reserved_names() -> dict[str, str]:
    """Reference model name -> the only source that may submit under it."""
    reserved = _load()["reference_models"]
    return {name: reserved["source"] for name in reserved["names"]}
