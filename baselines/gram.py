"""GRAM (Cicchetti et al., ICLR 2025; ``ispamm/GRAM``): contrastive alignment by the volume of the
parallelotope that k unit embeddings span."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from .matching import MatchingHead, matching_loss, rerank
from .reference import ReferenceModel
from .volumes import MEASURES


class Gram(ReferenceModel):
    """GRAM as the official code trains it, over the task's encoders.

    Embeddings are L2-normalised. Score of a tuple: its volume V = sqrt(|det G|), G the Gram matrix of its
    embeddings (|sin θ| for two); smaller is better aligned. Loss: ½[CE(−V/τ) over each anchor's candidate
    tuples + CE over each tuple's candidate anchors] with label smoothing 0.1, τ learned as a divisor from
    0.07 (``temperature="divisor"``), and the anchor the text modality where there is one
    (:class:`baselines.objectives.VolumeObjective` has the anchor rule and options). Predicting a modality
    from the others ranks its candidates by the volume they close with the queries (the official code only
    ever ranks text against tuples).

    The data–text matching (DTM) term is an option, off by default, so that reference rows score the volume
    alone, as GRAM's "volume" logs do. ``dtm_weight`` > 0 (0.1 in the official config) adds
    :func:`baselines.matching.matching_loss` with hard negatives drawn from the volumes, and scoring then
    re-ranks each query's ``dtm_rerank`` best candidates by the head's P(match) (50 officially). The head is
    :class:`baselines.matching.MatchingHead` over the unit embeddings, not GRAM's BERT cross-encoder over
    video and audio tokens, which polymodal's pooled features do not have.
    """

    normalises = True

    @dataclasses.dataclass(frozen=True)
    class Config(ReferenceModel.Config):
        objective: str = "gram"  # the volume objective; "triangle" is TRIANGLE's
        temperature: str = "divisor"  # τ itself is learned, from exp(-logit_scale_init) = 0.07
        dtm_weight: float = 0.0  # the matching term's weight (official 0.1); 0 leaves the head out
        dtm_hidden: int = 256  # the matching head's hidden width
        dtm_rerank: int = 50  # with the head, how many best candidates per query it re-scores; 0 scores volume only

        def __post_init__(self, learn_logit_scale: bool | None) -> None:
            super().__post_init__(learn_logit_scale)
            if self.dtm_weight < 0 or self.dtm_rerank < 0 or self.dtm_hidden < 1:
                raise ValueError("dtm_weight and dtm_rerank must be >= 0 and dtm_hidden >= 1, got "
                                 f"{self.dtm_weight}, {self.dtm_rerank} and {self.dtm_hidden}")

    def __init__(self, inputs: dict[str, int], **options):
        super().__init__(inputs, **options)
        c = self.config
        self.matching = MatchingHead(len(inputs), c.d_model, c.dtm_hidden) if c.dtm_weight > 0 else None

    def loss(
        self, embeddings: dict[str, Tensor], rows: slice | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        loss = super().loss(embeddings, rows, generator)
        if self.matching is None:
            return loss
        ordered = [embeddings[m] for m in self.modalities]
        measure = MEASURES[self.objective.measure]
        anchors = self.objective.anchors(self.modalities)
        dtm = matching_loss(self.matching, ordered, self.logit_scale(), measure, anchors, rows, generator)
        self.loss_terms = {self.config.objective: loss.detach(), "dtm": dtm.detach()}  # logged by the trainer
        return loss + self.config.dtm_weight * dtm

    def score(self, queries: dict[str, Tensor], target: str, candidates: Tensor) -> Tensor:
        scores = super().score(queries, target, candidates)
        # The head judges whole tuples: with a query absent there is none to re-rank.
        if self.matching is None or not self.config.dtm_rerank or len(queries) + 1 != len(self.modalities):
            return scores

        def tuple_of(query_rows: Tensor, candidate_rows: Tensor) -> list[Tensor]:
            return [candidates[candidate_rows] if m == target else queries[m][query_rows] for m in self.modalities]

        return rerank(self.matching, scores, tuple_of, self.config.dtm_rerank)

    def encode(self, modality: str, x: Tensor) -> Tensor:
        return F.normalize(super().encode(modality, x), dim=-1)
