"""Command-line values checked where argparse parses them.

Each `type=` function here raises ``argparse.ArgumentTypeError``, so a bad value
becomes one line naming its flag and what it may be, and the command exits 2
before it has done anything. :class:`Parser` prints that line without the usage
block. This module imports nothing heavy: building the parser never needs torch.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line; its sub-command parsers are Parsers too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def out_of_bounds(value: float, low: float | None = None, high: float | None = None,
                  above: float | None = None) -> str | None:
    """Why `value` breaks the bounds (`low`/`high` included, `above` excluded), or None when it keeps them."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if low is not None and high is not None and not low <= value <= high:
        return f"must lie in [{low:g}, {high:g}], got {value:g}"
    if low is not None and value < low:
        return f"must be >= {low:g}, got {value:g}"
    if high is not None and value > high:
        return f"must be <= {high:g}, got {value:g}"
    if above is not None and value <= above:
        return f"must be > {above:g}, got {value:g}"
    return None


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    return _bounded(int, "an integer", low=low, high=high)


def number(low: float | None = None, high: float | None = None, above: float | None = None) -> Callable[[str], float]:
    return _bounded(float, "a number", low=low, high=high, above=above)


def _bounded(kind: type, what: str, **bounds) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        why = out_of_bounds(value, **bounds)
        if why:
            raise argparse.ArgumentTypeError(why)
        return value

    return parse


def folder(holding: str | None = None, what: str = "") -> Callable[[str], Path]:
    """An existing folder; with `holding`, one that holds that file (`what` says what such a folder is)."""

    def parse(text: str) -> Path:
        path = Path(text)
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"no folder {text}" if not path.exists() else f"{text} is not a folder")
        if holding and not (path / holding).is_file():
            raise argparse.ArgumentTypeError(f"{text} holds no {holding}" + (f": is it {what}?" if what else ""))
        return path

    return parse


def out_folder(text: str) -> Path:
    """A folder to write into: one that exists, or a path with nothing there yet."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return path


def json_object(text: str) -> dict:
    return _object(text, repr(text))


def json_file(text: str) -> dict:
    """A file holding one JSON object."""
    try:
        content = Path(text).read_text()
    except OSError as err:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {err.strerror}") from None
    return _object(content, text)


def _object(content: str, shown: str) -> dict:
    try:
        value = json.loads(content)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"{shown} is not JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{shown} must be a JSON object {{...}}")
    return value
