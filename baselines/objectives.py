"""Objectives: a contrastive loss paired with the zero-shot scorer that matches it.

An objective holds no parameters; a model owns the encoders and the logit scale
and hands the objective embeddings, in a fixed modality order, and the scale.
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from polymodal.registry import Registry

from .losses import SYMILE_NEGATIVES, clip_loss, symile_loss
from .scoring import clip_scores, mip_scores


@dataclass(frozen=True)
class ClipObjective:
    """Pairwise InfoNCE summed over every pair of modalities; scores add pairwise dot products."""

    #: An absent query drops its pair term, which is the score CLIP trains on the present pairs.
    absent_queries = None

    def loss(
        self,
        embeddings: Sequence[Tensor],
        scale: Tensor | float,
        rows: slice | None = None,
        generator: torch.Generator | None = None,  # unused: CLIP draws nothing at random
    ) -> Tensor:
        return clip_loss(embeddings, scale, rows)

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
        embeddings: Sequence[Tensor],
        scale: Tensor | float,
        rows: slice | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        return symile_loss(embeddings, scale, self.negatives, rows, generator)

    def score(self, queries: Sequence[Tensor], candidates: Tensor, scale: Tensor | float | None = None) -> Tensor:
        return mip_scores(queries, candidates, scale)


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
OBJECTIVES: Registry[type] = Registry("objective", {"clip": ClipObjective, "symile": SymileObjective})
