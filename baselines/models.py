"""The model interface of polymodal, and the reference CLIP and Symile models.

Submitting a model
==================
A model is an ``nn.Module`` that implements :class:`ContrastiveModel`. Subclassing
it is easiest, but any class with the same methods is accepted. Name it by import
path, ``"package.module:ClassName"``, wherever a model name is expected (see
:func:`resolve_model`); the reference models are simply ``"clip"`` and ``"symile"``.

Construction
    ``Model(inputs, **config)``. ``inputs`` maps each modality name to its input
    feature dimension, e.g. ``{"a": 5, "b": 5, "c": 5}``, in the dataset's
    modality order; ``config`` holds your hyperparameters as keyword arguments.

``modalities: tuple[str, ...]``
    The modalities the model embeds, normally ``tuple(inputs)``.

``encode(modality, x) -> (N, d)``
    Embeds a batch of one modality's inputs, ``x`` of shape ``(N, ...)``. Every
    modality must map to the same ``d`` so that embeddings can be compared.

``loss(embeddings, rows=None, generator=None) -> scalar``
    The training loss of one batch, given ``{modality: (N, d)}`` embeddings whose
    rows are aligned (row i of each is the same sample). Under DDP the embeddings
    hold every rank's rows, gathered with gradient
    (:func:`baselines.distributed.gather_with_grad`), and ``rows`` is the slice this
    rank owns: return the mean over those rows only, labelling local row r by its
    global index ``rows.start + r``, so that the mean of the per-rank losses is the
    loss of the global batch. Draw any randomness from ``generator`` (seeded alike
    on every rank) so that the ranks agree; ``None`` means torch's global RNG.

``score(queries, target, candidates) -> (n_q, n_c)``
    Zero-shot prediction of modality ``target`` from the others. ``queries`` maps
    each query modality to ``(n_q, d)`` row-aligned embeddings, ``candidates`` are
    ``(n_c, d)`` embeddings of ``target``; higher scores mean more likely. Only
    the ranking of each row is evaluated.

``card() -> dict``
    ``{"name": str, "parameters": int, "config": dict}``: a display name, the
    number of parameters, and the JSON-able keyword arguments that rebuild the
    model with ``Model(inputs, **config)``.

``forward`` (provided by :class:`ContrastiveModel`) embeds a dict of batches, so
that a DDP-wrapped model can be called as usual.

Example: Symile over small MLP encoders, submitted as ``mypackage.models:MlpSymile``::

    import torch.nn.functional as F
    from torch import nn
    from baselines import ContrastiveModel, LogitScale, mip_scores, symile_loss

    class MlpSymile(ContrastiveModel):
        def __init__(self, inputs, width=64):
            super().__init__()
            self.modalities, self.width = tuple(inputs), width
            self.encoders = nn.ModuleDict(
                {m: nn.Sequential(nn.Linear(d, width), nn.GELU(), nn.Linear(width, width)) for m, d in inputs.items()}
            )
            self.scale = LogitScale()

        def encode(self, modality, x):
            return F.normalize(self.encoders[modality](x), dim=-1)

        def loss(self, embeddings, rows=None, generator=None):
            ordered = [embeddings[m] for m in self.modalities]
            return symile_loss(ordered, self.scale(), rows=rows, generator=generator)

        def score(self, queries, target, candidates):
            return mip_scores([queries[m] for m in self.modalities if m in queries], candidates)

        def card(self):
            size = sum(p.numel() for p in self.parameters())
            return {"name": "mlp-symile", "parameters": size, "config": {"width": self.width}}
"""

import abc
import dataclasses
import functools
import importlib
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .encoders import LinearL2
from .logit_scale import LogitScale
from .objectives import OBJECTIVES

#: What :func:`resolve_model` checks a user class for.
INTERFACE = ("encode", "loss", "score", "card")


class ContrastiveModel(nn.Module, abc.ABC):
    """Base class of polymodal models; see the module docstring for the contract."""

    modalities: tuple[str, ...]

    @abc.abstractmethod
    def encode(self, modality: str, x: Tensor) -> Tensor:
        """(N, ...) inputs of ``modality`` -> (N, d) embeddings."""

    @abc.abstractmethod
    def loss(
        self, embeddings: dict[str, Tensor], rows: slice | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Mean loss over ``rows`` (default: all) of row-aligned (N, d) embeddings."""

    @abc.abstractmethod
    def score(self, queries: dict[str, Tensor], target: str, candidates: Tensor) -> Tensor:
        """(n_q, n_c) scores of ``target`` candidates given query embeddings; higher is better."""

    @abc.abstractmethod
    def card(self) -> dict:
        """{"name": str, "parameters": int, "config": JSON-able constructor kwargs}."""

    def forward(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        return {m: self.encode(m, x) for m, x in inputs.items()}


class ReferenceModel(ContrastiveModel):
    """One affine encoder onto the unit sphere per modality, a learned logit scale,
    and an objective from :data:`baselines.objectives.OBJECTIVES`.

    objective_options go to the objective, e.g. ``negatives="n_squared"`` for Symile.
    """

    def __init__(
        self,
        inputs: dict[str, int],
        objective: str = "clip",
        d_model: int = 16,
        logit_scale_init: float = math.log(1 / 0.07),
        learn_logit_scale: bool = True,
        **objective_options,
    ):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; known: {sorted(OBJECTIVES)}")
        self.modalities = tuple(inputs)
        self.encoders = nn.ModuleDict({m: LinearL2(d_in, d_model) for m, d_in in inputs.items()})
        self.logit_scale = LogitScale(logit_scale_init, learnable=learn_logit_scale)
        self.objective = OBJECTIVES[objective](**objective_options)
        self._config = {
            "objective": objective,
            "d_model": d_model,
            "logit_scale_init": logit_scale_init,
            "learn_logit_scale": learn_logit_scale,
            **dataclasses.asdict(self.objective),
        }

    def encode(self, modality: str, x: Tensor) -> Tensor:
        return self.encoders[modality](x)

    def loss(
        self, embeddings: dict[str, Tensor], rows: slice | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        # A fixed modality order keeps Symile's permutations reproducible.
        ordered = [embeddings[m] for m in self.modalities]
        return self.objective.loss(ordered, self.logit_scale(), rows, generator)

    def score(self, queries: dict[str, Tensor], target: str, candidates: Tensor) -> Tensor:
        if target not in self.modalities or target in queries:
            raise ValueError(f"target {target!r} must be one of {self.modalities} and not a query")
        ordered = [queries[m] for m in self.modalities if m in queries]
        return self.objective.score(ordered, candidates, self.logit_scale())

    def card(self) -> dict:
        return {
            "name": self._config["objective"],
            "parameters": sum(p.numel() for p in self.parameters()),
            "config": dict(self._config),
        }


#: Reference models by name; each builds as ``MODELS[name](inputs, **config)``.
MODELS: dict[str, Callable[..., ContrastiveModel]] = {
    name: functools.partial(ReferenceModel, objective=name) for name in OBJECTIVES
}


def resolve_model(spec: str) -> Callable[..., ContrastiveModel]:
    """The model factory named by ``spec``: a key of :data:`MODELS`, or
    ``"package.module:ClassName"`` for a user model importable from ``sys.path``."""
    if spec in MODELS:
        return MODELS[spec]
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"unknown model {spec!r}: expected one of {sorted(MODELS)} or 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import {module_name!r} for model {spec!r}: {error}") from error
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ValueError(f"model {spec!r}: {module_name} has no class {class_name!r}")
    abstract = getattr(cls, "__abstractmethods__", frozenset())
    missing = [m for m in INTERFACE if not callable(getattr(cls, m, None)) or m in abstract]
    if missing or not issubclass(cls, nn.Module):
        raise ValueError(
            f"model {spec!r} must be an nn.Module implementing {', '.join(INTERFACE)}; "
            f"missing: {', '.join(missing) or 'nn.Module'}"
        )
    return cls
