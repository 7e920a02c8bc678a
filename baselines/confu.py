"""ConFu (Contrastive Fusion, arXiv 2511.21331, CVPR 2026; ``estafons/confu``): unimodal and fused-pair
embeddings in one space, each fused pair contrasted against the third modality."""

from __future__ import annotations

import dataclasses
import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig, build
from .encoders import build_encoders
from .interface import ContrastiveModel, card_of, ordered_queries
from .logit_scale import CLIP_LOGIT_SCALE_INIT, LogitScale
from .losses import infonce


def fusion_mlp(d_in: int, hidden: int, d_out: int, layers: int, dropout: float) -> nn.Sequential:
    """The official fusion MLP: ReLU between layers, LeakyReLU(0.2) after the last, dropout after every one."""
    widths = [d_in, *([hidden] * (layers - 1)), d_out]
    parts: list[nn.Module] = []
    for k, (a, b) in enumerate(itertools.pairwise(widths)):
        parts += [nn.Linear(a, b), nn.LeakyReLU(0.2) if k == layers - 1 else nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*parts)


class ConFu(ContrastiveModel):
    """ConFu as the official code trains it, for exactly three modalities, over the task's encoders.

    The task's encoders give each modality's features e_m (``encode`` returns them, so the harness's
    embeddings, and its gap measures, are these pre-projection features). The shared space holds
      - unimodal embeddings z_m = normalise(Linear_m(e_m)), and
      - fused pairs z_mn = normalise(MLP_mn([e_m, e_n])), one :func:`fusion_mlp` per pair.
    Loss: symmetric InfoNCE at a fixed τ = 0.07 (``logit_scale_init``, not learned), over the three pairs
    (z_m, z_n) and the three fused pairs against the third modality (z_mn, z_k), weighted
    [λ·Σ fused + (1 − λ)·Σ pairwise] / 6 with λ = 0.5, so each term weighs 1/12.
    Score: the cosine of the candidate's z with the fused pair of the two queries (two-to-one, as the
    official retrieval), or with the one query's z.

    This is the official model, not ConFu's re-implementations of the others (its GRAM and TRIANGLE anchor on
    modality 1 at a fixed τ; :class:`baselines.gram.Gram` is the official GRAM).

    Training calls :meth:`forward`, which also returns the fused pairs under ``"<m>+<n>"`` keys, so that
    under DDP each rank fuses (and drops out) its own rows and the fused rows are gathered like embeddings.
    """

    #: Its scores are cosines of unit vectors at τ = 0.07 on every task, whatever the encoders end in.
    normalises = True

    @dataclasses.dataclass(frozen=True)
    class Config(ModelConfig):
        logit_scale_init: float = CLIP_LOGIT_SCALE_INIT  # ln(1/0.07): the fixed τ of 0.07
        fusion_weight: float = 0.5  # λ, the fused terms' share; 0 drops the fusion heads
        fusion_hidden: int = 512  # the fusion MLPs' hidden width
        fusion_layers: int = 2
        dropout: float = 0.1  # after every fusion layer, the last included
        # A factor on the task's learning rate. At fixed τ its embeddings collapse onto one point within a few
        # AdamW steps at XOR's 0.05 and Symile-M3's 1e-2; the official code trains at 5e-5 to 1e-4.
        lr_scale: float = 0.1

        def __post_init__(self) -> None:
            super().__post_init__()
            if not 0.0 <= self.fusion_weight <= 1.0:
                raise ValueError(f"fusion_weight must be in [0, 1], got {self.fusion_weight}")
            if self.fusion_layers < 1:
                raise ValueError(f"fusion_layers must be >= 1, got {self.fusion_layers}")
            if not self.lr_scale > 0:
                raise ValueError(f"lr_scale must be > 0, got {self.lr_scale}")

    def __init__(self, inputs: dict[str, int], **options):
        super().__init__()
        if len(inputs) != 3:
            raise ValueError(f"ConFu fuses pairs of exactly three modalities, got {len(inputs)}: {tuple(inputs)}")
        self.config = c = build(self.Config, options, type(self).__name__)
        self.modalities = tuple(inputs)
        self.encoders = build_encoders(c.encoders, inputs, c.d_model, c.encoder_options)
        self.projections = nn.ModuleDict({m: nn.Linear(c.d_model, c.d_model) for m in inputs})
        self.pairs = tuple(itertools.combinations(self.modalities, 2))
        # λ = 0 leaves the fusion heads out of the model, as the official code does.
        self.fusions = nn.ModuleDict({} if c.fusion_weight == 0 else {
            self.pair_key(*p): fusion_mlp(2 * c.d_model, c.fusion_hidden, c.d_model, c.fusion_layers, c.dropout)
            for p in self.pairs
        })
        self.logit_scale = LogitScale(c.logit_scale_init, learnable=False)
        self.lr_scale = c.lr_scale

    @staticmethod
    def pair_key(a: str, b: str) -> str:
        return f"{a}+{b}"

    def encode(self, modality: str, x: Tensor) -> Tensor:
        return self.encoders[modality](x)

    def project(self, modality: str, features: Tensor) -> Tensor:
        return F.normalize(self.projections[modality](features), dim=-1)

    def fuse(self, a: str, b: str, features: dict[str, Tensor]) -> Tensor:
        a, b = sorted((a, b), key=self.modalities.index)
        return F.normalize(self.fusions[self.pair_key(a, b)](torch.cat([features[a], features[b]], dim=-1)), dim=-1)

    def forward(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        out = super().forward(inputs)
        for a, b in self.pairs:
            if self.fusions and a in out and b in out:
                out[self.pair_key(a, b)] = self.fuse(a, b, out)
        return out

    def loss(
        self, embeddings: dict[str, Tensor], rows: slice | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        # Nothing here is random but the dropout, which each rank draws for its own rows in forward.
        scale, lam = self.logit_scale(), self.config.fusion_weight
        z = {m: self.project(m, embeddings[m]) for m in self.modalities}
        pairwise = sum(infonce(z[a], z[b], scale, rows) for a, b in self.pairs)
        if not self.fusions:
            return pairwise / 6
        fused = 0.0
        for a, b in self.pairs:
            (third,) = set(self.modalities) - {a, b}
            key = self.pair_key(a, b)
            z_ab = embeddings[key] if key in embeddings else self.fuse(a, b, embeddings)
            fused = fused + infonce(z_ab, z[third], scale, rows)
        return (lam * fused + (1 - lam) * pairwise) / 6

    def score(self, queries: dict[str, Tensor], target: str, candidates: Tensor) -> Tensor:
        ordered_queries(self.modalities, queries, target)  # checks only
        if len(queries) == 2 and self.fusions:
            query = self.fuse(*queries, queries)
        else:  # one query, or two without fusion heads (λ = 0), which is pairwise CLIP's score
            query = sum(self.project(m, features) for m, features in queries.items())
        return self.logit_scale() * (query @ self.project(target, candidates).T)

    def card(self) -> dict:
        return card_of(self, "confu", dataclasses.asdict(self.config))
