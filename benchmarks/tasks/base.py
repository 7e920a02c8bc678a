"""What a task is: a dataset builder, a training recipe and a scoring protocol, versioned.

A task's `version` names its protocol. Any change that can move a number
(splits, candidates, metric) gets a new version, so old results are never
silently compared with new ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import torch


#: Overrides for tasks whose encoders end in LayerNorm (embeddings of norm ~sqrt(d)) and so start the
#: logit scale at 1: the reference models that L2-normalise their own outputs keep CLIP's 1/0.07.
L2_MODELS_KEEP_CLIP_SCALE: dict[str, dict] = {
    name: {"logit_scale_init": math.log(1 / 0.07)} for name in ("synergy-clip", "alignclip")
}


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 1000
    lr: float = 0.05
    weight_decay: float = 0.01
    seed: int = 0
    threads: int | None = None  # torch CPU threads; None keeps torch's default
    amp: bool = False  # bf16 autocast for the encoders
    compile: bool = False  # torch.compile the model's forward


@dataclass
class Evaluation:
    """Metrics as {name: {"value", "stderr", "n"}} and reference levels for the primary metric."""

    metrics: dict[str, dict]
    references: dict[str, float]


class Task:
    name: ClassVar[str]
    version: ClassVar[str]
    builder: ClassVar[str]  # the dataset builder whose shards this task reads
    primary_metric: ClassVar[str]
    train_defaults: ClassVar[TrainConfig] = TrainConfig()
    model_defaults: ClassVar[dict] = {}  # reference-model settings this task's protocol fixes (e.g. d_model)
    model_overrides: ClassVar[dict[str, dict]] = {}  # per reference model, over model_defaults

    def model_config(self, name: str) -> dict:
        """The settings reference model ``name`` is built with on this task."""
        return {**self.model_defaults, **self.model_overrides.get(name, {})}

    def inputs(self, manifest: dict) -> dict[str, int]:
        """Modality name -> input feature dimension, the `inputs` every model is built with."""
        raise NotImplementedError

    def load_split(self, data_dir, split: str) -> dict[str, "torch.Tensor"]:
        raise NotImplementedError

    def evaluate(self, model, data_dir, manifest: dict) -> Evaluation:
        raise NotImplementedError

    def dataset_params(self, manifest: dict) -> dict:
        """The dataset settings a reader compares across (shown and plotted by the leaderboard)."""
        raise NotImplementedError

    def dataset_label(self, manifest: dict) -> str:
        return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.dataset_params(manifest).items())

    def bench_configs(self, extra_args: list[str]) -> dict[str, object]:
        """Builder configs for `polymodal bench`, keyed by a folder name, from the task's dataset options."""
        raise NotImplementedError
