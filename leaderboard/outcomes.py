"""Per-query outcomes, kept in result files so the leaderboard can bootstrap differences between models.

A metric that is a mean may carry `outcomes`, in one of two forms:

    {"form": "hits", "n": 2000, "bits": "<base64>"}
        one 0/1 outcome per test query, in the protocol's query order: bit i of the
        little-endian bit stream (numpy.packbits(hits, bitorder="little")), padded
        with zero bits to whole bytes. 2,000 queries take 336 characters.
    {"form": "draws", "values": [0.51, 0.49, ...]}
        the metric on each independent test draw, in draw order (XOR's test_0..test_9).

The metric's value is the mean of its outcomes; a file where it is not is rejected.
Two results on the same dataset list the same queries in the same order, which is
what makes the bootstrap paired.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import numpy as np

MEAN_SLACK = 1e-9  # the value is a float mean; its outcomes' mean may differ in the last bits


def hits_outcome(hits: Any) -> dict[str, Any]:
    """The `hits` form of a sequence of 0/1 (or bool) outcomes."""
    hits = np.asarray(hits).astype(bool).ravel()
    return {"form": "hits", "n": int(hits.size),
            "bits": base64.b64encode(np.packbits(hits, bitorder="little").tobytes()).decode("ascii")}


def draws_outcome(values: Any) -> dict[str, Any]:
    """The `draws` form of per-draw scores."""
    return {"form": "draws", "values": [float(v) for v in values]}


def decode(outcome: dict[str, Any]) -> np.ndarray:
    """The outcomes as floats (0/1 for hits); ValueError naming what is wrong with a malformed one."""
    if outcome["form"] == "draws":
        return np.asarray(outcome["values"], dtype=np.float64)
    n = outcome["n"]
    try:
        raw = base64.b64decode(outcome["bits"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("bits is not base64") from None
    if len(raw) != math.ceil(n / 8):
        raise ValueError(f"bits holds {len(raw)} bytes; {n} queries take {math.ceil(n / 8)}")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    if bits[n:].any():
        raise ValueError("bits has set bits past the last query")
    return bits[:n].astype(np.float64)


def problem(metric: dict[str, Any]) -> str | None:
    """Why a metric's outcomes do not back its value and n, or None (also when it has none)."""
    outcome = metric.get("outcomes")
    if outcome is None:
        return None
    try:
        values = decode(outcome)
    except ValueError as exc:
        return f"outcomes: {exc}"
    if "n" in metric and metric["n"] != len(values):
        return f"outcomes: {len(values)} outcomes for n={metric['n']}"
    if abs(float(values.mean()) - metric["value"]) > MEAN_SLACK:
        return f"outcomes average {values.mean():.6g}, not the value {metric['value']:.6g}"
    return None
