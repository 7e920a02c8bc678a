"""Learning-rate schedules by name, as open_clip's trainer offers them: a factor of the base rate per step,
with a linear warm-up over the first ``warmup`` steps."""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

from polymodal.registry import Registry

if TYPE_CHECKING:  # the CLI's parser names the schedules without importing torch
    import torch


def _warming(step: int, warmup: int) -> float | None:
    """The warm-up factor (step + 1)/warmup while it lasts, else None."""
    return (step + 1) / warmup if step < warmup else None


def constant(step: int, warmup: int, total: int) -> float:
    """The base rate after the warm-up."""
    warming = _warming(step, warmup)
    return 1.0 if warming is None else warming


def cosine(step: int, warmup: int, total: int) -> float:
    """Half a cosine from the base rate down to 0 over the steps after the warm-up."""
    warming = _warming(step, warmup)
    if warming is not None:
        return warming
    return 0.5 * (1 + math.cos(math.pi * min((step - warmup) / max(total - warmup, 1), 1.0)))


#: Schedules by name: the factor of the base learning rate at a step, given the warm-up and the total steps.
SCHEDULES = Registry("lr schedule", {"constant": constant, "cosine": cosine})


def lr_scheduler(optimizer: torch.optim.Optimizer, name: str, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler stepped once per optimizer step; its state_dict holds plain numbers only, so a checkpoint
    carries it through ``torch.load(weights_only=True)``."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(SCHEDULES[name], warmup=warmup, total=total))
