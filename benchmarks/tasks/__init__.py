"""The task registry; see `benchmarks.tasks.base.Task` for what a task is.

Tasks are registered by import path and loaded on first use, so listing them
(for `--help`) never imports torch.
"""

from __future__ import annotations

import importlib

TASKS: dict[str, str] = {
    "symile-m3": "polymodal.benchmarks.tasks.symile_m3.task:SymileM3Task",
    "vggsound-plus": "polymodal.benchmarks.tasks.vggsound_plus.task:VggSoundPlusTask",
    "xor": "polymodal.benchmarks.tasks.xor:XorTask",
}


def load_task(name: str):
    """An instance of the task registered as `name`."""
    if name not in TASKS:
        raise SystemExit(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
