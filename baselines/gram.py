"""GRAM (Cicchetti et al., ICLR 2025; ``ispamm/GRAM``): contrastive alignment by the volume of the
parallelotope that k unit embeddings span."""

from __future__ import annotations

import dataclasses

import torch.nn.functional as F
from torch import Tensor

from .reference import ReferenceModel


class Gram(ReferenceModel):
    """GRAM as the official code trains it, over the task's encoders.

    Embeddings are L2-normalised. Score of a tuple: its volume V = sqrt(|det G|), G the Gram matrix of its
    embeddings (|sin θ| for two); smaller is better aligned. Loss: ½[CE(−V/τ) over each anchor's candidate
    tuples + CE over each tuple's candidate anchors] with label smoothing 0.1, τ learned as a divisor from
    0.07 (``temperature="divisor"``), and the anchor the text modality where there is one
    (:class:`baselines.objectives.VolumeObjective` has the anchor rule and options). Predicting a modality
    from the others ranks its candidates by the volume they close with the queries (the official code only
    ever ranks text against tuples).

    Left out: the hard-negative data-text matching head (``itm_ratio`` 0.1 in the official config), which
    needs GRAM's BERT cross-encoder over video and audio tokens and re-ranks a top-50 at test time. Every
    reference row here scores the volume alone, as GRAM's "volume" logs do.
    """

    normalises = True

    @dataclasses.dataclass(frozen=True)
    class Config(ReferenceModel.Config):
        objective: str = "gram"  # the volume objective; "triangle" is TRIANGLE's
        temperature: str = "divisor"  # τ itself is learned, from exp(-logit_scale_init) = 0.07

    def encode(self, modality: str, x: Tensor) -> Tensor:
        return F.normalize(super().encode(modality, x), dim=-1)
