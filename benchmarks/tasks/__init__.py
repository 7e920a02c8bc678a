"""The task registry; see `benchmarks.tasks.base.Task` for what a task is.

Tasks are registered by import path and loaded on first use, so listing them
(for `--help`) never imports torch.
"""

from __future__ import annotations

import importlib

from polymodal.registry import Registry, parse_spec

TASKS: Registry[str] = Registry("task", {
    "symile-m3": "polymodal.benchmarks.tasks.symile_m3.task:SymileM3Task",
    "vggsound-plus": "polymodal.benchmarks.tasks.vggsound_plus.task:VggSoundPlusTask",
    "xnor": "polymodal.benchmarks.tasks.xnor:XnorTask",
    "xor": "polymodal.benchmarks.tasks.xor:XorTask",
}, error=SystemExit)


def load_task(name: str):
    """An instance of the task registered as `name`."""
    module, cls = parse_spec(TASKS[name])
    return getattr(importlib.import_module(module), cls)()
