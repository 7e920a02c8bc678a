"""Objectives: a contrastive loss paired with the zero-shot scorer that matches it.

An objective holds no parameters; a model owns the encoders and the logit scale
and hands the objective the scale and the embeddings by modality, in a fixed
modality order.
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from polymodal.registry import Registry

from .losses import SYMILE_NEGATIVES, clip_loss, symile_loss
from .scoring import clip_scores, mip_scores
from .volumes import MEASURES, volume_loss


@dataclass(frozen=True)
class ClipObjective:
    """Pairwise InfoNCE summed over every pair of modalities; scores add pairwise dot products."""

    #: An absent query drops its pair term, which is the score CLIP trains on the present pairs.
    absent_queries = None

    def loss(
        self,
        embeddings: dict[str, Tensor],
        scale: Tensor | float,
        rows: slice | None = None,
        generator: torch.Generator | None = None,  # unused: CLIP draws nothing at random
    ) -> Tensor:
        return clip_loss(list(embeddings.values()), scale, rows)

    def score(self, queries: Sequence[Tensor], candidates: Tensor, scale: Tensor | float | None = None) -> Tensor:
        return clip_scores(queries, candidates, scale)


@dataclass(frozen=True)
class SymileObjective:
    """Symile over every modality at once; scores are multilinear inner products."""

    #: The MIP of fewer modalities is a plain dot product, which Symile never trains; the Symile paper
    #: scores data with a modality missing at that modality's mean embedding instead.
    absent_queries = "mean"
    negatives: str = "n"

    def __post_init__(self) -> None:
        if self.negatives not in SYMILE_NEGATIVES:
            raise ValueError(f"negatives must be one of {SYMILE_NEGATIVES}, got {self.negatives!r}")

    def loss(
        self,
        embeddings: dict[str, Tensor],
        scale: Tensor | float,
        rows: slice | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        return symile_loss(list(embeddings.values()), scale, self.negatives, rows, generator)

    def score(self, queries: Sequence[Tensor], candidates: Tensor, scale: Tensor | float | None = None) -> Tensor:
        return mip_scores(queries, candidates, scale)


@dataclass(frozen=True)
class VolumeObjective:
    """GRAM's loss over a measure of :data:`baselines.volumes.MEASURES` (smaller: better aligned): CE on
    logits −scale·measure, each anchor row against every tuple of the other modalities and back.

    anchor: the anchor modality; "all" averages the loss over every modality as anchor (the
        re-implementations in gated_symile do); None, the default, anchors on "text" where there is a text
        modality, as the official GRAM and TRIANGLE do, else on every modality.
    label_smoothing: 0.1 in the official code (0 in gated_symile's re-implementations).
    """

    measure: ClassVar[str]
    anchor: str | None = None
    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")

    def anchors(self, modalities: Sequence[str]) -> list[int]:
        """The indices of the anchor modalities among ``modalities``."""
        anchor = self.anchor if self.anchor is not None else ("text" if "text" in modalities else "all")
        if anchor == "all":
            return list(range(len(modalities)))
        if anchor not in modalities:
            raise ValueError(f"anchor {anchor!r} is not a modality: expected one of {tuple(modalities)} or 'all'")
        return [list(modalities).index(anchor)]

    def loss(
        self,
        embeddings: dict[str, Tensor],
        scale: Tensor | float,
        rows: slice | None = None,
        generator: torch.Generator | None = None,  # unused: every tuple is a candidate
    ) -> Tensor:
        anchors = self.anchors(list(embeddings))
        return volume_loss(list(embeddings.values()), scale, MEASURES[self.measure], anchors, self.label_smoothing, rows)

    def score(self, queries: Sequence[Tensor], candidates: Tensor, scale: Tensor | float | None = None) -> Tensor:
        """−measure of each query tuple with each candidate: the candidate that closes the smallest volume
        (or area) with the queries ranks first."""
        measured = MEASURES[self.measure](list(queries), [candidates])
        return -measured if scale is None else -scale * measured


@dataclass(frozen=True)
class GramObjective(VolumeObjective):
    """GRAM: the volume sqrt(|det G|) of the Gram matrix of any number of unit vectors."""

    measure = "volume"
    #: The volume of fewer vectors is GRAM's own measure of them (|sin θ| for two), so a present pair is scored alone.
    absent_queries = None


@dataclass(frozen=True)
class TriangleObjective(VolumeObjective):
    """TRIANGLE: the squared-area surrogate of exactly three unit vectors."""

    measure = "area"
    #: Two points span no triangle: an absent query's mean train embedding stands in as the third vertex.
    absent_queries = "mean"


def swap_modalities(embeddings: Sequence[Tensor], p: float, generator: torch.Generator | None = None) -> list[Tensor]:
    """Modality swapping (CPAL 2025): each row, with probability ``p``, exchanges the
    embeddings of one pair of its modalities, drawn uniformly from the M(M-1)/2 pairs
    (with two modalities, always that pair). Row i of modality a then holds b's
    embedding of sample i and vice versa; the other modalities of the row stay.

    Draws N uniforms, then N pair indices, from ``generator`` (on its device), so
    ranks that share a seed swap the same gathered rows.
    """
    n = len(embeddings[0])
    device = torch.device("cpu") if generator is None else generator.device
    swapped = torch.rand(n, generator=generator, device=device) < p
    pairs = list(itertools.combinations(range(len(embeddings)), 2))
    which = torch.randint(len(pairs), (n,), generator=generator, device=device)
    out = list(embeddings)
    for k, (a, b) in enumerate(pairs):
        mask = (swapped & (which == k)).to(embeddings[0].device)[:, None]
        out[a], out[b] = torch.where(mask, out[b], out[a]), torch.where(mask, out[a], out[b])
    return out


#: Objectives by name; the name is also the reference model's name.
OBJECTIVES: Registry[type] = Registry(
    "objective", {"clip": ClipObjective, "symile": SymileObjective, "gram": GramObjective, "triangle": TriangleObjective}
)
