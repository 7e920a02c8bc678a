"""Objectives: a contrastive loss paired with the zero-shot scorer that matches it.

An objective holds no parameters; a model owns the encoders and the logit scale
and hands the objective embeddings, in a fixed modality order, and the scale.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .losses import SYMILE_NEGATIVES, clip_loss, symile_loss
from .scoring import clip_scores, mip_scores


@dataclass(frozen=True)
class ClipObjective:
    """Pairwise InfoNCE summed over every pair of modalities; scores add pairwise dot products."""

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


#: Objectives by name; the name is also the reference model's name.
OBJECTIVES: dict[str, type] = {"clip": ClipObjective, "symile": SymileObjective}
