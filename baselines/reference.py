"""The reference CLIP and Symile models: one encoder per modality, a logit scale, an objective."""

import dataclasses

import torch
from torch import Tensor

from .config import ModelConfig, build, settings
from .encoders import build_encoders
from .interface import ContrastiveModel, card_of, ordered_queries
from .logit_scale import TEMPERATURES
from .objectives import OBJECTIVES, swap_modalities


class ReferenceModel(ContrastiveModel):
    """One encoder per modality from the family ``encoders`` of :data:`ENCODERS` (by default an
    affine map onto the unit sphere), a logit scale, and an objective from
    :data:`baselines.objectives.OBJECTIVES`.

    Its settings are :class:`Config`'s; any other keyword goes to the objective, e.g.
    ``negatives="n_squared"`` for Symile, and the card lists both.

    Modality-gap mitigations (CPAL 2025, arXiv 2412.07909):

    temperature: a key of :data:`TEMPERATURES`. "learned" (the default), "fixed" at
        ``logit_scale_init``, or "schedule": the inverse temperature rises linearly from
        exp(logit_scale_init) to exp(temperature_options["end"]) over
        temperature_options["steps"] training loss calls (counted in training mode only);
        "divisor" learns τ = 1/scale itself, as GRAM does.
        ``learn_logit_scale`` is the older spelling: True means "learned", False "fixed".
    swap_p: in training mode, the probability that a row exchanges two of its
        modalities' embeddings before the loss (see :func:`swap_modalities`).
    """

    @dataclasses.dataclass(frozen=True)
    class Config(ModelConfig):
        objective: str = "clip"  # a key of OBJECTIVES
        temperature: str = "learned"  # a key of TEMPERATURES
        temperature_options: dict = dataclasses.field(default_factory=dict)  # a schedule's "end" and "steps"
        swap_p: float = 0.0  # the probability that a training row swaps two modalities
        # The older spelling of temperature, resolved into it (so never on the card).
        learn_logit_scale: dataclasses.InitVar[bool | None] = None

        def __post_init__(self, learn_logit_scale: bool | None) -> None:
            super().__post_init__()
            OBJECTIVES[self.objective]  # an unknown one fails here, naming the known ones
            object.__setattr__(self, "temperature", _temperature(self.temperature, learn_logit_scale))
            if not 0.0 <= self.swap_p <= 1.0:
                raise ValueError(f"swap_p must be a probability, got {self.swap_p}")
            object.__setattr__(self, "temperature_options", dict(self.temperature_options or {}))

    def __init__(self, inputs: dict[str, int], **options):
        super().__init__()
        own = settings(self.Config)
        self.config = c = self.Config(**{k: v for k, v in options.items() if k in own})
        rest = {k: v for k, v in options.items() if k not in own}
        self.objective = build(OBJECTIVES[c.objective], rest, f"{type(self).__name__} ({c.objective})", own)
        self.modalities = tuple(inputs)
        self.encoders = build_encoders(c.encoders, inputs, c.d_model, c.encoder_options)
        self.logit_scale = TEMPERATURES[c.temperature](c.logit_scale_init, **c.temperature_options)

    def encode(self, modality: str, x: Tensor) -> Tensor:
        return self.encoders[modality](x)

    def loss(
        self, embeddings: dict[str, Tensor], rows: slice | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        # A fixed modality order keeps Symile's permutations reproducible.
        ordered = [embeddings[m] for m in self.modalities]
        scale = self.logit_scale()
        if self.training:
            self.logit_scale.advance()
            # Drawing nothing when swap_p is 0 keeps the generator's stream, and so Symile's negatives, as before.
            if self.config.swap_p > 0:
                ordered = swap_modalities(ordered, self.config.swap_p, generator)
        return self.objective.loss(dict(zip(self.modalities, ordered)), scale, rows, generator)

    def score(self, queries: dict[str, Tensor], target: str, candidates: Tensor) -> Tensor:
        return self.objective.score(ordered_queries(self.modalities, queries, target), candidates, self.logit_scale())

    @property
    def absent_queries(self) -> str | None:
        return self.objective.absent_queries

    def card(self) -> dict:
        return card_of(self, self.config.objective, self.card_config())

    def card_config(self) -> dict:
        """The card's config: the settings and the objective's options, the keywords that rebuild the model."""
        return {**dataclasses.asdict(self.config), **dataclasses.asdict(self.objective)}


def _temperature(temperature: str, learn_logit_scale: bool | None) -> str:
    """The temperature named by either spelling; older configs say ``learn_logit_scale``."""
    TEMPERATURES[temperature]  # an unknown one fails here, naming the known ones
    if learn_logit_scale is None:
        return temperature
    implied = "learned" if learn_logit_scale else "fixed"
    if temperature not in ("learned", implied):
        raise ValueError(f"learn_logit_scale={learn_logit_scale} contradicts temperature={temperature!r}")
    return implied
