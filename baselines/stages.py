"""Models trained in two stages, as TRML's and Synergy-CLIP's papers train them: the contrastive model first,
then, with it frozen, the head that stands in for a missing modality."""

from __future__ import annotations

#: "two-stage": the papers' recipe; "joint": every term in one run, the head beside the encoders.
RECIPES = ("two-stage", "joint")


class TwoStage:
    """For a model with a ``config.recipe`` and its missing-modality modules under the attribute ``head``.

    The trainer runs each of :meth:`stages` in turn, calling :meth:`set_stage` first; a model then computes
    its loss and its validation loss for ``self.stage``. Outside training ``stage`` is None: every term.
    """

    head: str  # the attribute that holds the modules the second stage trains
    second_stage: str  # that stage's name, as the papers call it
    stage: str | None = None

    def stages(self) -> tuple[str, ...]:
        return ("contrastive", self.second_stage) if self.config.recipe == "two-stage" else ()

    def set_stage(self, stage: str | None) -> None:
        """Train only what ``stage`` trains: the head in the second stage, everything else before it (all at
        None). Frozen parameters get no gradient, so neither the optimizer nor DDP sees them."""
        if stage not in (None, *self.stages()):
            raise ValueError(f"unknown stage {stage!r}; {type(self).__name__} has {self.stages()}")
        self.stage = stage
        head = {id(p) for p in getattr(self, self.head).parameters()}
        for p in self.parameters():
            p.requires_grad_(stage is None or (id(p) in head) == (stage == self.second_stage))
