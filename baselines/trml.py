"""TRML (arXiv 2401.13697; no public code): a contrastive model plus per-modality generators
of "virtual" embeddings that stand in for a missing modality."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.registry import Registry

from .interface import card_of, source_sets
from .losses import infonce
from .reference import ReferenceModel
from .stages import RECIPES, TwoStage


@dataclasses.dataclass(frozen=True)
class Fusion:
    """How a generator combines its source embeddings: ``combine`` them, ``width`` of the result."""

    combine: Callable[[list[Tensor]], Tensor]
    width: Callable[[int, int], int]  # (number of sources, d) -> input width
    partial: bool  # whether a subset of the sources still makes a valid input


#: Generator inputs by name. The mean is defined for any subset of the sources; the
#: concatenation needs every one, in modality order.
FUSIONS: Registry[Fusion] = Registry("fusion", {
    "mean": Fusion(lambda parts: torch.stack(parts).mean(0), lambda n, d: d, partial=True),
    "concat": Fusion(lambda parts: torch.cat(parts, dim=-1), lambda n, d: n * d, partial=False),
})


class Generator(nn.Module):
    """Fused source embeddings -> Linear(4d) -> GELU -> Linear(d) -> a direction, scaled to the target's norm.

    The base model's embeddings need not be unit vectors (LayerNorm heads give norms near √d), so a
    virtual embedding takes the mean norm of the real target embeddings seen in training: it then
    weighs in the base score as much as a real one would.
    """

    #: how fast the tracked norm follows the training batches, once 1/momentum of them are seen (a mean before)
    momentum = 0.1

    def __init__(self, sources: tuple[str, ...], d_model: int, fusion: Fusion):
        super().__init__()
        self.sources, self.fusion = sources, fusion
        self.mlp = nn.Sequential(
            nn.Linear(fusion.width(len(sources), d_model), 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )
        self.register_buffer("target_norm", torch.ones(()))  # buffers: saved with the weights, broadcast by DDP
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))

    def source_sets(self) -> list[tuple[str, ...]]:
        """Every set of present sources the generator accepts: any with "mean" fusion, all of them with "concat"."""
        return source_sets(self.sources) if self.fusion.partial else [self.sources]

    def direction(self, present: dict[str, Tensor]) -> Tensor:
        parts = [present[m] for m in self.sources if m in present]
        if not parts or (len(parts) < len(self.sources) and not self.fusion.partial):
            raise ValueError(f"this generator needs {'some' if self.fusion.partial else 'all'} of {self.sources}, "
                             f"got {sorted(present)}")
        return F.normalize(self.mlp(self.fusion.combine(parts)), dim=-1)

    def forward(self, present: dict[str, Tensor]) -> Tensor:
        # A copy: in training, the matching loss tracks the buffer in place after a fill has used it.
        return self.direction(present) * self.target_norm.clone()

    @torch.no_grad()
    def track(self, target: Tensor) -> None:
        """Fold a training batch's mean target norm into ``target_norm``."""
        weight = max(self.momentum, 1 / (int(self.batches) + 1))
        self.target_norm.lerp_(target.norm(dim=-1).mean().to(self.target_norm), weight)
        self.batches += 1


class Trml(TwoStage, ReferenceModel):
    """TRML: a base contrastive objective plus a semantic matching loss on generated embeddings.

    The reference CLIP or Symile model (``objective``; every option of
    :class:`~baselines.reference.ReferenceModel` applies, temperature and swap_p included)
    with a generator per modality on top.

    Loss: L = L_task + α·L_sml, where
        L_task  the reference model's loss, on the batch;
        L_sml   Σ over target modalities t of the mean, over the source sets S that G_t accepts at
                test time, of the symmetric InfoNCE at the fixed temperature τ = ``sml_temperature``
                between the directions of G_t(S) and of the real embeddings of t (cosines, as
                in the paper's CLIP space, whatever the norm of the base model's embeddings).

    Score: the base objective's scorer. :meth:`fill_missing` returns G_t's embedding: its
    direction at the mean norm of the real embeddings of t in training.

    The paper leaves these open; our choices (see the spec):
      - One generator G_t per target modality t (the paper has Text-2-Visual and Visual-2-Text
        MLPs), reading the ``fusion`` ("mean" or "concat") of the other modalities'
        embeddings; hidden width 4·d, GELU, a unit direction times the tracked target norm.
      - L_sml is the symmetric InfoNCE between generated and real embeddings in the batch,
        summed over targets (as CLIP sums pairs); α = 1, τ = 0.07.
      - ``recipe`` "two-stage" (the paper's): the base model trains alone first (L_task on complete
        samples, its checkpoint selected on that loss), standing in for the paper's frozen CLIP
        foundation model; then, with it frozen, the generators train on L_task + α·L_sml (the
        "inference module"), selected on that stage's validation loss. "joint" trains everything
        at once, and L_sml's gradient then reaches the encoders too, pulling each modality towards
        what the others predict.
      - Training-time missingness: with probability ``missing_p`` (default 0.5) a training row of
        L_task has one modality replaced by its generated fill, as a test fills it, so the fills
        learn to be scored by the base model (in the second stage; throughout, when "joint").
      - A missing modality is replaced at test time by its generated embedding. With "mean"
        fusion a generator accepts any subset of its sources and trains on each of them; with
        "concat" it needs them all.
    """

    @dataclasses.dataclass(frozen=True)
    class Config(ReferenceModel.Config):
        alpha: float = 1.0  # the weight of L_sml
        sml_temperature: float = 0.07  # τ, L_sml's fixed temperature
        fusion: str = "mean"  # a key of FUSIONS: how a generator reads its sources
        missing_p: float = 0.5  # the probability that a training row loses one modality to its generated fill
        recipe: str = "two-stage"  # a key of RECIPES: the base model, then the generators on it frozen; or joint

        def __post_init__(self, learn_logit_scale: bool | None) -> None:
            if self.recipe not in RECIPES:
                raise ValueError(f"unknown recipe {self.recipe!r}; known: {', '.join(RECIPES)}")
            if self.fusion not in FUSIONS:
                raise ValueError(f"unknown fusion {self.fusion!r}; known: {sorted(FUSIONS)}")
            if not 0.0 <= self.missing_p <= 1.0:
                raise ValueError(f"missing_p must be a probability, got {self.missing_p}")
            super().__post_init__(learn_logit_scale)

    head, second_stage = "generators", "inference"

    def __init__(self, inputs: dict[str, int], **options):
        if len(inputs) < 2:
            raise ValueError(f"TRML needs at least two modalities, got {list(inputs)}")
        super().__init__(inputs, **options)
        self.generators = nn.ModuleDict({
            t: Generator(tuple(m for m in self.modalities if m != t), self.config.d_model, FUSIONS[self.config.fusion])
            for t in self.modalities
        })

    def task_loss(
        self, embeddings: dict[str, Tensor], rows: slice | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        if self.training and self.config.missing_p > 0 and self.stage != "contrastive":  # no fills to learn yet
            embeddings = self.drop_modalities(embeddings, generator)
        return super().loss(embeddings, rows, generator)

    def drop_modalities(self, embeddings: dict[str, Tensor], generator: torch.Generator | None = None) -> dict:
        """Training-time missingness: each row, with probability ``missing_p``, has one modality (uniform)
        replaced by its generator's fill from the others, as a test fills it.

        Draws N uniforms, then N modality indices, from ``generator`` (on its device), so ranks that share
        a seed drop the same gathered rows.
        """
        n = len(embeddings[self.modalities[0]])
        device = torch.device("cpu") if generator is None else generator.device
        dropped = torch.rand(n, generator=generator, device=device) < self.config.missing_p
        which = torch.randint(len(self.modalities), (n,), generator=generator, device=device)
        out = dict(embeddings)
        for k, t in enumerate(self.modalities):
            mask = (dropped & (which == k)).to(embeddings[t].device)[:, None]
            if mask.any():
                others = {m: e for m, e in embeddings.items() if m != t}
                out[t] = torch.where(mask, self.generators[t](others).to(embeddings[t].dtype), embeddings[t])
        return out

    def matching_loss(self, embeddings: dict[str, Tensor], rows: slice | None = None) -> Tensor:
        """L_sml: Σ_t mean_S InfoNCE(dir G_t(S), dir t) at scale 1/τ, over ``rows``.

        Every row is generated, not just the local ones, since all of them are negatives. In
        training mode each generator also tracks its target's norm.
        """
        scale, loss = 1 / self.config.sml_temperature, 0
        for t, g in self.generators.items():
            if self.training:
                g.track(embeddings[t])
            real, sets = F.normalize(embeddings[t], dim=-1), g.source_sets()
            terms = [infonce(g.direction({m: embeddings[m] for m in s}), real, scale, rows) for s in sets]
            loss = loss + sum(terms) / len(sets)
        return loss

    def loss(
        self, embeddings: dict[str, Tensor], rows: slice | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        task = self.task_loss(embeddings, rows, generator)
        return task if self.stage == "contrastive" else task + self.config.alpha * self.matching_loss(embeddings, rows)

    def fill_missing(self, present: dict[str, Tensor], target: str) -> Tensor | None:
        """G_target's virtual embedding of ``target`` from the present modalities' embeddings;
        None (the caller imputes the mean) where "concat" fusion lacks one of its sources."""
        if target in present:
            raise ValueError(f"target {target!r} is present")
        generator = self.generators[target]
        if not generator.fusion.partial and not set(generator.sources) <= present.keys():
            return None
        return generator(present)

    def card(self) -> dict:
        return card_of(self, "trml", self.card_config())
