"""The reference CLIP and Symile models: one encoder per modality, a logit scale, an objective."""

import dataclasses
import math

import torch
from torch import Tensor

from .encoders import build_encoders
from .interface import ContrastiveModel, card_of, ordered_queries
from .logit_scale import TEMPERATURES
from .objectives import OBJECTIVES, swap_modalities


class ReferenceModel(ContrastiveModel):
    """One encoder per modality from the family ``encoders`` of :data:`ENCODERS` (by default an
    affine map onto the unit sphere), a logit scale, and an objective from
    :data:`baselines.objectives.OBJECTIVES`.

    objective_options go to the objective, e.g. ``negatives="n_squared"`` for Symile;
    encoder_options to the encoder family, e.g. ``{"width": 32}``.

    Modality-gap mitigations (CPAL 2025, arXiv 2412.07909):

    temperature: a key of :data:`TEMPERATURES`. "learned" (the default), "fixed" at
        ``logit_scale_init``, or "schedule": the inverse temperature rises linearly from
        exp(logit_scale_init) to exp(temperature_options["end"]) over
        temperature_options["steps"] training loss calls (counted in training mode only).
        ``learn_logit_scale`` is the older spelling: True means "learned", False "fixed".
    swap_p: in training mode, the probability that a row exchanges two of its
        modalities' embeddings before the loss (see :func:`swap_modalities`).
    """

    def __init__(
        self,
        inputs: dict[str, int],
        objective: str = "clip",
        d_model: int = 16,
        logit_scale_init: float = math.log(1 / 0.07),
        temperature: str = "learned",
        temperature_options: dict | None = None,
        swap_p: float = 0.0,
        encoders: str = "linear_l2",
        encoder_options: dict | None = None,
        learn_logit_scale: bool | None = None,
        **objective_options,
    ):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; known: {sorted(OBJECTIVES)}")
        temperature = _temperature(temperature, learn_logit_scale)
        if not 0.0 <= swap_p <= 1.0:
            raise ValueError(f"swap_p must be a probability, got {swap_p}")
        self.modalities = tuple(inputs)
        self.encoders = build_encoders(encoders, inputs, d_model, encoder_options)
        self.logit_scale = TEMPERATURES[temperature](logit_scale_init, **(temperature_options or {}))
        self.objective = OBJECTIVES[objective](**objective_options)
        self.swap_p = swap_p
        self._config = {
            "objective": objective,
            "d_model": d_model,
            "logit_scale_init": logit_scale_init,
            "temperature": temperature,
            "temperature_options": dict(temperature_options or {}),
            "swap_p": swap_p,
            "encoders": encoders,
            "encoder_options": dict(encoder_options or {}),
            **dataclasses.asdict(self.objective),
        }

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
            if self.swap_p > 0:
                ordered = swap_modalities(ordered, self.swap_p, generator)
        return self.objective.loss(ordered, scale, rows, generator)

    def score(self, queries: dict[str, Tensor], target: str, candidates: Tensor) -> Tensor:
        return self.objective.score(ordered_queries(self.modalities, queries, target), candidates, self.logit_scale())

    def card(self) -> dict:
        return card_of(self, self._config["objective"], self._config)


def _temperature(temperature: str, learn_logit_scale: bool | None) -> str:
    """The temperature named by either spelling; older configs say ``learn_logit_scale``."""
    if temperature not in TEMPERATURES:
        raise ValueError(f"unknown temperature {temperature!r}; known: {sorted(TEMPERATURES)}")
    if learn_logit_scale is None:
        return temperature
    implied = "learned" if learn_logit_scale else "fixed"
    if temperature not in ("learned", implied):
        raise ValueError(f"learn_logit_scale={learn_logit_scale} contradicts temperature={temperature!r}")
    return implied
