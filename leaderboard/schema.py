"""Reading and checking result files.

result.schema.json says what a result looks like; this module adds what JSON
Schema cannot say (finite numbers, a timestamp that can be compared and is not
in the future, metrics that their task declares, within their declared range,
and backed by their outcomes) and turns every failure into one line that names
the file and the field.
"""

from __future__ import annotations

import functools
import json
import math
import stat
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from polymodal.leaderboard import outcomes
from polymodal.leaderboard.declarations import declared_tasks, task_declaration

SCHEMA_VERSION = 1
MAX_FILE_BYTES = 16 * 2**20  # results are a few KiB; anything huge is not one
MAX_DEPTH = 32  # deeper nesting only serves to exhaust the stack of whoever prints it
MAX_MAGNITUDE = 1e300  # leaves room to sum, average and plot without overflowing to inf
MAX_REASON_CHARS = 300  # jsonschema messages quote the offending value, which may be huge
CLOCK_SKEW = timedelta(minutes=10)  # how far ahead of ours a submitter's clock may run


class ResultError(ValueError):
    """A result file that the leaderboard will not use, and why."""

    def __init__(self, reason: str, path: str | Path | None = None) -> None:
        self.reason = _one_line(reason)
        self.path = path
        super().__init__(reason if path is None else f"{path}: {reason}")


def load_schema() -> dict[str, Any]:
    """The result JSON Schema, freshly parsed so callers may modify it."""
    return json.loads(resources.files(__package__).joinpath("result.schema.json").read_text("utf-8"))


@functools.cache
def _validator() -> Draft202012Validator:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def parse_created(text: str) -> datetime:
    """The `created` timestamp; must carry an offset so that any two compare."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment


def validate_result(obj: Any) -> None:
    """Raise ResultError unless `obj` is a result this leaderboard can use."""
    if not isinstance(obj, dict):
        raise ResultError(f"expected a JSON object at the top level, got {_json_type(obj)}")
    _check_numbers_and_depth(obj)
    version = obj.get("schema_version")
    # Before the schema, whose own complaint ("1 was expected") would not say why.
    if type(version) is int and version != SCHEMA_VERSION:
        raise ResultError(f"schema_version is {version}, but this leaderboard reads version {SCHEMA_VERSION}")
    error = best_match(_validator().iter_errors(obj))
    if error is not None:
        raise ResultError(f"{_where(error.absolute_path)}: {error.message}")
    for check in _SEMANTIC_CHECKS:
        check(obj)


def load_result(path: str | Path) -> dict[str, Any]:
    """Read and validate one result file; every failure is a ResultError naming `path`."""
    path = Path(path)
    try:
        info = path.stat()
        # A FIFO or device named *.json would block or never end.
        if not stat.S_ISREG(info.st_mode):
            raise ResultError("not a regular file", path)
        if info.st_size > MAX_FILE_BYTES:
            raise ResultError(f"file is {info.st_size} bytes, over the {MAX_FILE_BYTES}-byte limit", path)
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultError(f"cannot read: {exc.strerror or exc}", path) from None
    except UnicodeDecodeError as exc:
        raise ResultError(f"not UTF-8 text (bad byte at offset {exc.start})", path) from None
    try:
        obj = json.loads(
            text, parse_constant=_NonFinite, parse_float=_parse_float, object_pairs_hook=_unique_keys
        )
    except json.JSONDecodeError as exc:
        raise ResultError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", path) from None
    except RecursionError:
        raise ResultError("malformed JSON: nested too deeply", path) from None
    except ValueError as exc:  # duplicate keys, integers with too many digits
        raise ResultError(f"malformed JSON: {exc}", path) from None
    try:
        validate_result(obj)
    except ResultError as exc:
        raise ResultError(exc.reason, path) from None
    return obj


class _NonFinite:
    """Stands in for a NaN/Infinity token so the reason can say where it was."""

    def __init__(self, token: str) -> None:
        self.token = token


def _parse_float(text: str) -> float | _NonFinite:
    value = float(text)  # "1e999" parses to inf without any NaN/Infinity token
    return value if math.isfinite(value) else _NonFinite(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of repeated keys, so a file could say two things at once.
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen.add(key)
    return dict(pairs)


def _check_numbers_and_depth(obj: dict[str, Any]) -> None:
    # Iterative, so hostile nesting cannot exhaust the stack here; children are
    # pushed reversed so the first problem in the file is the one reported.
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), obj)]
    while stack:
        where, value = stack.pop()
        if len(where) > MAX_DEPTH:
            raise ResultError(f"{_where(where)}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend(reversed([(where + (key,), item) for key, item in value.items()]))
        elif isinstance(value, list):
            stack.extend(reversed([(where + (index,), item) for index, item in enumerate(value)]))
        else:
            problem = _number_problem(value)
            if problem:
                raise ResultError(f"{_where(where)}: {problem}")


def _number_problem(value: Any) -> str | None:
    if isinstance(value, _NonFinite):
        return f"{value.token} is not a finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):  # NaN built in memory, not parsed
        return f"{value!r} is not a finite number"
    if abs(value) > MAX_MAGNITUDE:  # exact for ints too, which may exceed any float
        return f"a number larger in magnitude than {MAX_MAGNITUDE:g}"
    return None


def _primary_metric_is_measured(obj: dict[str, Any]) -> None:
    primary, metrics = obj["primary_metric"], obj["metrics"]
    if primary not in metrics:
        raise ResultError(f"primary_metric {primary!r} is not among the metrics ({', '.join(sorted(metrics))})")


def _created_is_comparable_and_past(obj: dict[str, Any]) -> None:
    # A date in the future would win every "newest of duplicates" choice for ever.
    try:
        created = parse_created(obj["created"])
    except ValueError as exc:
        raise ResultError(f"created: {exc}") from None
    if created > datetime.now(timezone.utc) + CLOCK_SKEW:
        raise ResultError(f"created: {obj['created']} is in the future")


def _metrics_are_declared_and_in_range(obj: dict[str, Any]) -> None:
    key = f"{obj['task']['name']}@{obj['task']['version']}"
    task = task_declaration(key)
    if task is None:
        raise ResultError(f"task: {key} is not a task version this leaderboard knows ({', '.join(declared_tasks())})")
    if obj["primary_metric"] != task.primary_metric:
        raise ResultError(f"primary_metric: {key} ranks by {task.primary_metric!r}, not {obj['primary_metric']!r}")
    for name, metric in obj["metrics"].items():
        declared = task.metric(name)
        if declared is None:
            raise ResultError(f"metrics.{name}: not a metric that {key} declares")
        problem = declared.problem(metric["value"])
        if problem is None and (metric.get("stderr") or 0) > declared.high - declared.low:
            problem = f"stderr {metric['stderr']!r} is wider than the declared range"
        problem = problem or outcomes.problem(metric)
        if problem:
            raise ResultError(f"metrics.{name}: {problem}")
    primary = task.metric(task.primary_metric)
    for name, level in obj.get("references", {}).items():
        if name not in task.references:
            raise ResultError(f"references.{name}: not a reference level that {key} declares")
        problem = primary.problem(level)
        if problem:
            raise ResultError(f"references.{name}: {problem} (of {task.primary_metric})")


# Rules JSON Schema cannot express; each raises ResultError.
_SEMANTIC_CHECKS: tuple[Callable[[dict[str, Any]], None], ...] = (
    _primary_metric_is_measured,
    _created_is_comparable_and_past,
    _metrics_are_declared_and_in_range,
)


def _where(path: Any) -> str:
    """A JSON location as `metrics.acc1.value` or `model.modalities[2]`."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text.lstrip(".") or "top level"


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null",
             int: "a number", float: "a number", _NonFinite: "a number"}
    return names.get(type(value), type(value).__name__)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"
