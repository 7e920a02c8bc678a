"""Where training logs go besides the run folder's JSON lines (``--report-to``): TensorBoard and W&B, each
through its own package, imported only when asked for."""

from __future__ import annotations

import importlib
from pathlib import Path

from polymodal.registry import Registry


def _package(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise SystemExit(f"--report-to {name} needs the {name} package: pip install {name}") from None


class TensorBoard:
    """Event files in RUN/tensorboard. A resumed run purges what the killed one logged after its checkpoint,
    so no step appears twice."""

    def __init__(self, run_dir: Path, config: dict, first_step: int):
        _package("tensorboard")  # torch.utils.tensorboard writes through it
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=first_step or None)
        self.writer.add_text("config", repr(config))

    def log(self, scalars: dict[str, float], step: int) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()


class Wandb:
    """A W&B run under RUN/wandb, with the run's config; ``WANDB_MODE=offline`` keeps it on disk (W&B's
    own switch). A resumed run is a new W&B run that starts at the step where the killed one checkpointed."""

    def __init__(self, run_dir: Path, config: dict, first_step: int):
        wandb = _package("wandb")
        self.run = wandb.init(project="polymodal", name=run_dir.name, dir=str(run_dir), config=config)

    def log(self, scalars: dict[str, float], step: int) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


#: Reporters by the name --report-to takes; each is built as ``REPORTERS[name](run_dir, config, first_step)``.
REPORTERS = Registry("reporter", {"tensorboard": TensorBoard, "wandb": Wandb})
