"""The model interface of polymodal: what a submitted model implements.

Submitting a model
==================
A model is an ``nn.Module`` that implements :class:`ContrastiveModel`. Subclassing
it is easiest, but any class with the same methods is accepted. Wherever a model name
is expected (see :func:`resolve_model`), name it by the entry point that its installed
package declares in the ``polymodal.models`` group (``examples/my_model`` is such a
package), or by import path, ``"package.module:ClassName"``, importable from
``sys.path`` or the current folder; the reference models go by their names in
:data:`MODELS`, such as ``"clip"`` and ``"symile"``.

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

``fill_missing(present, target) -> (N, d) | None`` (optional)
    The model's own estimate of the embedding of a missing modality ``target``
    from the row-aligned embeddings ``present`` of the others. Tasks that score
    robustness to a missing modality use it; ``None``, the default, makes them
    fall back to mean imputation.

``absent_queries: str | None`` (optional)
    How a view that lacks a query modality is scored (``zeroshot/image`` on three
    modalities): ``None``, the default, scores the present queries alone; ``"mean"``
    puts each absent modality's mean train embedding in its place.

``validation_loss(embeddings, rows=None, generator=None) -> scalar`` (optional)
    The loss whose validation mean selects the best epoch, called as ``loss``;
    without it, ``loss`` is used. Synergy-CLIP selects on its contrastive term.

``loss_terms: dict[str, Tensor]`` (optional)
    The named parts of the latest ``loss``, detached, which a model may leave
    there for the trainer to log beside the total (GRAM's volume and matching terms).

``stages() -> tuple[str, ...]`` and ``set_stage(stage)`` (optional)
    Training stages, run in turn from the best weights of the one before; ``set_stage``
    freezes what a stage does not train and picks its loss (None afterwards: every term).
    :class:`~baselines.stages.TwoStage` is TRML's and Synergy-CLIP's: the contrastive
    model, then the missing-modality head on it frozen.

``no_weight_decay() -> set[str]`` (optional)
    Names of parameters AdamW trains without weight decay (timm's convention);
    without it every parameter decays. AlignCLIP spares gains, biases and its scale.

``lr_scale: float`` (optional)
    A factor on the task's learning rate for every parameter of the model, 1 without it.
    ConFu's fixed τ = 0.07 collapses at the rates the Symile tasks set (its official rates
    are 50–1000 times smaller), so it trains at a tenth of them.

``forward`` (provided by :class:`ContrastiveModel`) embeds a dict of batches, so
that a DDP-wrapped model can be called as usual. Training calls it, so a model may
override it to add loss inputs of its own under extra keys (AlignCLIP adds its texts'
frozen semantic rows as ``"text:semantic"``); they are gathered across ranks like the
embeddings and reach ``loss`` in the same dict.

Example: ``examples/my_model/my_model.py``, Symile over small MLP encoders in 30 lines, which that
package installs as ``my-model`` (or name it ``my_model:MyModel`` from its folder).
"""

import abc
import itertools
from typing import ClassVar

import torch
from torch import Tensor, nn

#: What :func:`resolve_model` checks a user class for.
INTERFACE = ("encode", "loss", "score", "card")


class ContrastiveModel(nn.Module, abc.ABC):
    """Base class of polymodal models; see the module docstring for the contract."""

    modalities: tuple[str, ...]
    # What a task reads to configure the model (benchmarks.tasks.base.Task.model_config):
    #: Whether ``encode`` L2-normalises, whatever the encoders: then the model keeps CLIP's initial logit
    #: scale where a task's encoders end in LayerNorm and would start it at 1.
    normalises: ClassVar[bool] = False
    #: The encoder settings the model uses instead of a task's default family, keyed by that family
    #: (which names the input layout its rows follow).
    preferred_encoders: ClassVar[dict[str, dict]] = {}
    #: How a task scores a view that lacks a query modality other than the target: None scores the present
    #: queries alone; "mean" puts each absent one's mean train embedding in its place (Symile's MIP).
    absent_queries: str | None = None

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

    def fill_missing(self, present: dict[str, Tensor], target: str) -> Tensor | None:
        """(N, d) estimate of ``target``'s embeddings from the present ones; None: no estimate of its own."""
        return None

    def forward(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        return {m: self.encode(m, x) for m, x in inputs.items()}


def card_of(model: nn.Module, name: str, config: dict) -> dict:
    """A card as :meth:`ContrastiveModel.card` returns it: the parameters are counted, the config copied."""
    return {"name": name, "parameters": sum(p.numel() for p in model.parameters()), "config": dict(config)}


def source_sets(sources: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``sources``, smallest first: the inputs a missing-modality module meets at test
    time, where any of its sources may be missing too."""
    return [s for k in range(1, len(sources) + 1) for s in itertools.combinations(sources, k)]


def ordered_queries(modalities: tuple[str, ...], queries: dict[str, Tensor], target: str) -> list[Tensor]:
    """The query embeddings in the model's modality order, once ``target`` is known to be one of
    ``modalities`` and not a query, and there is a query: the check every reference ``score`` makes."""
    if target not in modalities or target in queries or not queries:
        raise ValueError(f"target {target!r} must be one of {modalities} and not a query, with queries")
    return [queries[m] for m in modalities if m in queries]
