"""The temperature of contrastive logits: learned as in CLIP and Symile, fixed, scheduled, or a learned divisor.

The modality-gap mitigations of CPAL 2025 (arXiv 2412.07909) replace the learned
temperature with a fixed or an increasing inverse temperature; GRAM learns the
temperature τ itself. :data:`TEMPERATURES` names the four, each built as
``TEMPERATURES[name](init, **options)``.
"""

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from polymodal.registry import Registry

#: CLIP's initial log logit scale, log(1/0.07): the start for embeddings on the unit sphere.
CLIP_LOGIT_SCALE_INIT = math.log(1 / 0.07)


class LogitScale(nn.Module):
    """Holds log(s) and returns s = exp(log s), the factor applied to every similarity.

    Learning the log keeps s positive. ``min_value``/``max_value`` bound the returned s
    (CLIP caps it at 100, AlignCLIP keeps it in [1, 100]); past a bound the gradient to
    the parameter is zero. A fixed scale is still a parameter, so checkpoints look the
    same either way.
    """

    def __init__(
        self,
        init: float = CLIP_LOGIT_SCALE_INIT,
        learnable: bool = True,
        max_value: float | None = None,
        min_value: float | None = None,
    ):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(float(init)), requires_grad=learnable)
        self.min_value, self.max_value = min_value, max_value

    def forward(self) -> Tensor:
        if self.min_value is None and self.max_value is None:
            return self.log_scale.exp()
        # Clamped as a log, where a parameter that sits exactly on a bound still gets its gradient.
        return self.log_scale.clamp(*self._log_bounds()).exp()

    def advance(self) -> None:
        """One training step has passed; a learned or fixed scale does not care."""

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp the parameter itself into the bounds, as CLIP's and AlignCLIP's trainers do after each
        optimizer step: the gradient keeps flowing at a bound, where clamping only the output stops it."""
        self.log_scale.clamp_(*self._log_bounds())

    def _log_bounds(self) -> tuple[float | None, float | None]:
        return tuple(None if v is None else math.log(v) for v in (self.min_value, self.max_value))

    def extra_repr(self) -> str:
        learnable = self.log_scale.requires_grad
        return (
            f"log_scale={self.log_scale.item():.4f}, learnable={learnable}, "
            f"min_value={self.min_value}, max_value={self.max_value}"
        )


class ScheduledLogitScale(nn.Module):
    """s rises linearly from exp(init) to exp(end) over ``steps`` calls of :meth:`advance`, then stays.

    ``init`` and ``end`` are logs, like every ``logit_scale_init``; the interpolation is
    linear in s itself, the inverse temperature. The step count is a buffer, so it is
    saved with the weights and a resumed run continues the schedule where it stopped.
    """

    def __init__(self, init: float = CLIP_LOGIT_SCALE_INIT, end: float = math.log(100), steps: int = 1000):
        super().__init__()
        if steps < 1:
            raise ValueError(f"a temperature schedule needs steps >= 1, got {steps}")
        self.start, self.end, self.steps = math.exp(init), math.exp(end), int(steps)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def forward(self) -> Tensor:
        progress = self.step.clamp(max=self.steps).double() / self.steps
        return (self.start + (self.end - self.start) * progress).float()

    def advance(self) -> None:
        self.step += 1

    def extra_repr(self) -> str:
        return f"start={self.start:.4f}, end={self.end:.4f}, steps={self.steps}, step={int(self.step)}"


class DivisorTemperature(nn.Module):
    """GRAM's and TRIANGLE's temperature: a learned τ that divides the similarities, returned as s = 1/τ.

    The official code learns τ itself (``contra_temp``, initialised to 0.07), unclamped and not through a
    log, so its steps differ from a learned log scale's. ``init`` is a log scale like every
    ``logit_scale_init``: τ starts at exp(−init).
    """

    def __init__(self, init: float = CLIP_LOGIT_SCALE_INIT):
        super().__init__()
        self.tau = nn.Parameter(torch.tensor(math.exp(-float(init))))

    def forward(self) -> Tensor:
        return 1 / self.tau

    def advance(self) -> None:
        """One training step has passed; a learned τ does not care."""

    def extra_repr(self) -> str:
        return f"tau={self.tau.item():.4f}"


#: The modules a temperature is built as, whose value training logs as a logit scale.
TEMPERATURE_MODULES = (LogitScale, ScheduledLogitScale, DivisorTemperature)

#: Temperatures by name; each builds as ``TEMPERATURES[name](logit_scale_init, **temperature_options)``.
TEMPERATURES: Registry[Callable[..., nn.Module]] = Registry("temperature", {
    "learned": LogitScale,
    "fixed": lambda init, **options: LogitScale(init, learnable=False, **options),
    "schedule": ScheduledLogitScale,
    "divisor": DivisorTemperature,
})
