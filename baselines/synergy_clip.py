"""Synergy-CLIP (the ``JoSangYeon/Synergy-CLIP`` repository): pairwise CLIP over three
modalities with one learnable temperature per pair, and a module that reconstructs a
missing modality's embedding from the two others."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig, build
from .encoders import build_encoders
from .interface import ContrastiveModel, card_of, ordered_queries, source_sets
from .logit_scale import LogitScale
from .losses import infonce
from .stages import RECIPES, TwoStage


class Reconstructor(nn.Module):
    """The reference's missing-modality encoder, predicting one modality's embedding.

    Each source modality's embedding goes through its own bias-free Linear; the results
    are summed and refined by a residual bottleneck, h + W₂·GELU(W₁·LayerNorm(h)).
    Sources absent from the input are left out of the sum.
    """

    def __init__(self, sources: tuple[str, ...], d_model: int, bottleneck: int):
        super().__init__()
        self.mappers = nn.ModuleDict({m: nn.Linear(d_model, d_model, bias=False) for m in sources})
        self.bottleneck = nn.Sequential(
            nn.LayerNorm(d_model), nn.Linear(d_model, bottleneck), nn.GELU(), nn.Linear(bottleneck, d_model)
        )

    def forward(self, present: dict[str, Tensor]) -> Tensor:
        sources = [m for m in self.mappers if m in present]
        if not sources:
            raise ValueError(f"need at least one of {tuple(self.mappers)}, got {sorted(present)}")
        h = sum(self.mappers[m](present[m]) for m in sources)
        return h + self.bottleneck(h)


class SynergyClip(TwoStage, ContrastiveModel):
    """Synergy-CLIP for exactly three modalities m0, m1, m2 (in the order of ``inputs``).

    Encoders: one per modality from the family ``encoders`` of :data:`ENCODERS`, then a
    bias-free Linear projection to ``d_model`` (768 or 1024 with the paper's Base or Large backbones) and an L2 norm. A family whose outputs are not
    ``d_model`` wide says so in each encoder's ``out_features`` (``hf-synergy``: the pooler
    outputs of CLIP ViT, RoBERTa and AST, the paper's encoders).

    Loss: α·L(m0, m1) + β·L(m1, m2) + γ·L(m2, m0), each L the symmetric InfoNCE at that
    pair's own learned logit scale; with image, text, audio this is the paper's
    L(img, txt) + L(txt, aud) + L(aud, img).

    Score: the sum over query modalities q of s_{q,target} · q·cᵀ, each pair at its scale.

    Missing modality (:meth:`fill_missing`): one :class:`Reconstructor` per target modality
    predicts its embedding from the others', in embedding space (the paper decodes raw
    images, spectrograms and tokens; see the spec). Our choices:
      - ``recipe`` "two-stage" (the official code's): the contrastive model trains first, its
        checkpoint selected on the contrastive validation loss alone; then the reconstructors
        train on its frozen embeddings, selected on their own validation loss. "joint" trains
        them in the same run, on DETACHED embeddings (no gradient of theirs reaches the
        encoders), the checkpoint still selected on the contrastive loss. Their term is
        ``recon_weight`` times the sum over targets of the mean, over every non-empty set of
        sources (one, or both: tests fill from either), of the mean cosine distance 1 − cos(ŷ, y).
      - They read and predict the final L2-normalised embeddings (the paper's read the
        backbones' pooler outputs), and their bottleneck has no dropout.
    """

    normalises = True
    #: On rows of the audio-visual layout (tasks whose encoders are av-embedded): the paper's backbone
    #: families (CLIP ViT, AST, RoBERTa), at the one size that reads that layout.
    preferred_encoders = {"av-embedded": {"encoders": "hf-synergy", "encoder_options": {"size": "tiny"}}}

    @dataclasses.dataclass(frozen=True)
    class Config(ModelConfig):
        alpha: float = 1.0  # the weight of L(m0, m1)
        beta: float = 1.0  # of L(m1, m2)
        gamma: float = 1.0  # of L(m2, m0)
        bottleneck: int = 128  # the reconstructors' hidden width
        recon_weight: float = 1.0  # the weight of the reconstruction term
        recipe: str = "two-stage"  # a key of RECIPES: contrastive, then the reconstructors on it frozen; or joint

        def __post_init__(self) -> None:
            if self.recipe not in RECIPES:
                raise ValueError(f"unknown recipe {self.recipe!r}; known: {', '.join(RECIPES)}")
            super().__post_init__()

    head, second_stage = "reconstructors", "reconstruction"

    def __init__(self, inputs: dict[str, int], **options):
        super().__init__()
        if len(inputs) != 3:
            raise ValueError(f"Synergy-CLIP pairs exactly three modalities, got {list(inputs)}")
        self.config = c = build(self.Config, options, type(self).__name__)
        self.modalities = tuple(inputs)
        self.encoders = build_encoders(c.encoders, inputs, c.d_model, c.encoder_options, projects=True)
        # The paper's backbones fix the embedding width (768 Base, 1024 Large); other encoders use d_model.
        self.width = getattr(next(iter(self.encoders.values())), "projection_width", None) or c.d_model
        self.projections = nn.ModuleDict({
            m: nn.Linear(getattr(self.encoders[m], "out_features", self.width), self.width, bias=False) for m in inputs
        })
        m0, m1, m2 = self.modalities
        self.pairs = ((m0, m1), (m1, m2), (m2, m0))
        self.logit_scales = nn.ModuleList(LogitScale(c.logit_scale_init) for _ in self.pairs)
        self.reconstructors = nn.ModuleDict({
            t: Reconstructor(tuple(m for m in self.modalities if m != t), self.width, c.bottleneck)
            for t in self.modalities
        })

    def encode(self, modality: str, x: Tensor) -> Tensor:
        return F.normalize(self.projections[modality](self.encoders[modality](x)), dim=-1)

    def pair_scale(self, a: str, b: str) -> Tensor:
        """The learned scale of the unordered pair {a, b}."""
        for (m, n), scale in zip(self.pairs, self.logit_scales):
            if {m, n} == {a, b}:
                return scale()
        raise ValueError(f"no pair {{{a}, {b}}} among {self.pairs}")

    def contrastive_loss(self, embeddings: dict[str, Tensor], rows: slice | None = None) -> Tensor:
        c = self.config
        return sum(
            weight * infonce(embeddings[a], embeddings[b], scale(), rows)
            for (a, b), weight, scale in zip(self.pairs, (c.alpha, c.beta, c.gamma), self.logit_scales)
        )

    def reconstruction_loss(self, embeddings: dict[str, Tensor], rows: slice | None = None) -> Tensor:
        """Σ_targets mean over source sets and ``rows`` of 1 − cos(reconstructed, real), on detached embeddings."""
        local = {m: e[slice(None) if rows is None else rows].detach() for m, e in embeddings.items()}
        loss = 0
        for t, block in self.reconstructors.items():
            sets = source_sets(tuple(block.mappers))
            loss = loss + sum(
                (1 - F.cosine_similarity(block({m: local[m] for m in s}), local[t], dim=-1)).mean() for s in sets
            ) / len(sets)
        return loss

    def validation_loss(
        self, embeddings: dict[str, Tensor], rows: slice | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """What selects the checkpoint: the contrastive loss, without the reconstruction term; in the
        reconstruction stage, the reconstruction loss."""
        if self.stage == self.second_stage:
            return self.reconstruction_loss(embeddings, rows)
        return self.contrastive_loss(embeddings, rows)

    def loss(
        self, embeddings: dict[str, Tensor], rows: slice | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        # Nothing here is random, so ``generator`` is unused.
        if self.stage == self.second_stage:
            return self.reconstruction_loss(embeddings, rows)
        contrastive = self.contrastive_loss(embeddings, rows)
        if self.stage == "contrastive":
            return contrastive
        return contrastive + self.config.recon_weight * self.reconstruction_loss(embeddings, rows)

    def score(self, queries: dict[str, Tensor], target: str, candidates: Tensor) -> Tensor:
        ordered_queries(self.modalities, queries, target)  # checks only: each query has its own pair scale
        return sum(self.pair_scale(q, target) * (e @ candidates.T) for q, e in queries.items())

    def fill_missing(self, present: dict[str, Tensor], target: str) -> Tensor:
        """The reconstructed, L2-normalised embedding of ``target`` from the present ones."""
        if target in present:
            raise ValueError(f"target {target!r} is present")
        return F.normalize(self.reconstructors[target](present), dim=-1)

    def card(self) -> dict:
        return card_of(self, "synergy-clip", dataclasses.asdict(self.config))
