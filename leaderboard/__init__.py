"""The polymodal leaderboard: result files in, ranked tables, plots and a static site out.

The benchmark harness writes one JSON result per (model, task, dataset), in
the shape of result.schema.json, with the model described by a ModelCard.
`build_leaderboard` validates a directory of them and ranks models per task
version and suite; `write_report` renders the ranking as Markdown and plots,
`write_site` as a static HTML site.

This package needs neither torch nor the builders/baselines/benchmarks
packages, so a leaderboard can be rebuilt anywhere the results are.
"""

import importlib
from typing import Any

# Public name -> defining module, imported on first use: the harness only needs
# ModelCard and the schema, and should not pay for importing matplotlib or jinja2.
_EXPORTS = {
    "SCHEMA_VERSION": "polymodal.leaderboard.schema",
    "ResultError": "polymodal.leaderboard.schema",
    "load_result": "polymodal.leaderboard.schema",
    "load_schema": "polymodal.leaderboard.schema",
    "validate_result": "polymodal.leaderboard.schema",
    "ModelCard": "polymodal.leaderboard.model_card",
    "build_leaderboard": "polymodal.leaderboard.aggregate",
    "read_leaderboard": "polymodal.leaderboard.aggregate",
    "write_leaderboard": "polymodal.leaderboard.aggregate",
    "format_table": "polymodal.leaderboard.report",
    "write_report": "polymodal.leaderboard.report",
    "write_site": "polymodal.leaderboard.site",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'polymodal.leaderboard' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
