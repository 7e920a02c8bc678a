"""What a task is: a dataset builder, a training recipe and a scoring protocol, versioned.

A task's `version` names its protocol. Any change that can move a number
(splits, candidates, metric) gets a new version, so old results are never
silently compared with new ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from polymodal.leaderboard.declarations import Metric, Reference

if TYPE_CHECKING:
    import numpy as np
    import torch

    from polymodal.benchmarks.featurize import Featurizer
    from polymodal.benchmarks.streaming import Source


#: The log logit scale models start at on tasks whose encoders end in LayerNorm: a scale of 1, since their
#: embeddings have norm ~sqrt(d), where CLIP's 1/0.07 is meant for unit vectors.
LAYERNORM_LOGIT_SCALE_INIT = 0.0


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
    lr_schedule: str = "constant"  # a key of benchmarks.lr_schedules.SCHEDULES
    warmup: int = 0  # steps of linear learning-rate warm-up
    streams: int = 0  # the training split's streams (benchmarks.streaming); 0: one per rank
    shuffle_buffer: int = 10_000  # rows each stream shuffles among


@dataclass
class Evaluation:
    """Metrics as {name: {"value", "stderr", "n"}}, reference levels for the primary metric, and the scoring
    rules that depend on the model (rule -> what it did), which the result states."""

    metrics: dict[str, dict]
    references: dict[str, float]
    scoring: dict[str, str] = field(default_factory=dict)


class TrainView(Protocol):
    """A training split that a task's protocol redraws every epoch (VGG-sound+'s template captions).

    ``view(arrays, epoch, seed, piece)`` gives the columns that replace a training piece's own (``piece``: its
    place in the split's manifest order) in that epoch. It depends on those alone, never on the rank or on
    what ran before, so every DDP rank trains on the same rows and a resumed run on those of an
    uninterrupted one.
    """

    #: What is redrawn and how, in a line that run records and results state.
    rule: str

    def __call__(self, arrays: dict[str, "np.ndarray"], epoch: int, seed: int, piece: int) -> dict[str, "np.ndarray"]: ...


class Task:
    name: ClassVar[str]
    version: ClassVar[str]
    builder: ClassVar[str]  # the dataset builder whose shards this task reads
    primary_metric: ClassVar[str]
    #: Every metric the evaluation reports (name or `*` family, range, direction, meaning); the leaderboard reads
    #: them from leaderboard/declarations.json, which `python -m polymodal.benchmarks.tasks.declarations` writes.
    metrics: ClassVar[tuple[Metric, ...]] = ()
    #: The reference levels `evaluate` returns, by name: how the leaderboard labels and explains each.
    references: ClassVar[dict[str, Reference]] = {}
    #: The built splits a run trains, selects or scores on: `train` and `bench` refuse a dataset with no sample in one.
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")
    #: Encoder name -> featurizer of this task's datasets (`polymodal featurize --encoder`); none: they hold arrays.
    featurizers: ClassVar[dict[str, type[Featurizer]]] = {}
    #: How the leaderboard plots the primary metric, written into every result: against the dataset param
    #: "x", labelled "symbol" (matplotlib mathtext); None: no plot.
    plot: ClassVar[dict[str, str] | None] = None
    train_defaults: ClassVar[TrainConfig] = TrainConfig()
    model_defaults: ClassVar[dict] = {}  # reference-model settings this task's protocol fixes (e.g. d_model)
    #: Whether the encoders of model_defaults end in LayerNorm (embeddings of norm ~sqrt(d), not 1).
    layernorm_encoders: ClassVar[bool] = False

    def model_config(self, model: str | type) -> dict:
        """The settings reference model ``model`` (a registered name or a class) is built with on this task:
        model_defaults, a logit scale of 1 where LayerNorm embeddings meet a model that does not L2-normalise
        them, and the encoders the model prefers to the task's."""
        from polymodal.baselines.models import model_class

        cls = model_class(model) if isinstance(model, str) else model
        config = dict(self.model_defaults)
        # A model that L2-normalises its outputs keeps its own initial scale (CLIP's, for most).
        if self.layernorm_encoders and not getattr(cls, "normalises", False):
            config["logit_scale_init"] = LAYERNORM_LOGIT_SCALE_INIT
        return {**config, **getattr(cls, "preferred_encoders", {}).get(config.get("encoders"), {})}

    def inputs(self, manifest: dict) -> dict[str, int]:
        """Modality name -> input feature dimension, the `inputs` every model is built with."""
        raise NotImplementedError

    def source(self, data_dir, split: str) -> Source:
        """The split as the models read it, streamed a shard at a time (benchmarks.streaming)."""
        raise NotImplementedError

    def load_split(self, data_dir, split: str) -> dict[str, "torch.Tensor"]:
        """The whole split in memory: for small splits and tests; training and scoring stream `source`."""
        return self.source(data_dir, split).read_all()

    def train_view(self, data_dir, manifest: dict) -> TrainView | None:
        """The training split's per-epoch redraw where this task's protocol has one; None: the same rows every epoch."""
        return None

    def tiny_manifest(self) -> dict:
        """The manifest fields `inputs` reads, for models built without a dataset (tests/benchmarks/test_compatibility)."""
        raise NotImplementedError

    def tiny_batch(self, n: int) -> dict[str, "torch.Tensor"]:
        """n random rows shaped as `source`'s batches, of the widths `inputs(tiny_manifest())` gives."""
        raise NotImplementedError

    def evaluate(self, model, data_dir, manifest: dict) -> Evaluation:
        raise NotImplementedError

    def dataset_params(self, manifest: dict) -> dict:
        """The dataset settings a reader compares across (shown and plotted by the leaderboard)."""
        raise NotImplementedError

    def dataset_label(self, manifest: dict) -> str:
        return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.dataset_params(manifest).items())

    @property
    def bench_prog(self) -> str:
        return f"polymodal bench --task {self.name}"

    def bench_configs(self, extra_args: list[str]) -> dict[str, object]:
        """Builder configs for `polymodal bench`, keyed by a folder name, from the builder's own options."""
        from polymodal.builders import BUILDERS

        return BUILDERS[self.builder].configs_from_argv(extra_args, self.bench_prog)
