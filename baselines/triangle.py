"""TRIANGLE (NeurIPS 2025; ``ispamm/TRIANGLE``): contrastive alignment of three modalities by the area of
the triangle their unit embeddings form."""

from __future__ import annotations

import dataclasses

from .gram import Gram


class Triangle(Gram):
    """TRIANGLE as the official code trains it: GRAM's recipe (unit embeddings, text anchor, label smoothing
    0.1, τ learned as a divisor from 0.07, the data–text matching term an option, off by default) with the volume replaced by the
    squared-area surrogate (‖u‖²‖w‖² − (u·w)²)/2, u and w the edges from one vertex, which is 2·area² and
    unclamped, as the official ``utils/area.py`` computes it. Computed from dot products in O(N²) memory,
    where the official code builds N×N×d difference tensors. Exactly three modalities.
    """

    @dataclasses.dataclass(frozen=True)
    class Config(Gram.Config):
        objective: str = "triangle"

    def __init__(self, inputs: dict[str, int], **options):
        if len(inputs) != 3:
            raise ValueError(f"TRIANGLE needs exactly 3 modalities, got {len(inputs)}: {tuple(inputs)}")
        super().__init__(inputs, **options)
