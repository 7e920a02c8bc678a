"""How a reference model declares its hyperparameters: once, as a frozen dataclass ``Config``.

The model is still built as ``Model(inputs, **config)``; it turns the keywords into its
``Config``, and its card's config is ``dataclasses.asdict`` of that, so the card rebuilds it.
"""

import dataclasses
import inspect

from .encoders import with_declared_augment
from .logit_scale import CLIP_LOGIT_SCALE_INIT


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The settings every reference model has: its encoders and the start of its logit scale."""

    d_model: int = 16  # the embedding width
    encoders: str = "linear_l2"  # a family of baselines.encoders.ENCODERS
    encoder_options: dict = dataclasses.field(default_factory=dict)  # the family's own, e.g. {"width": 32}
    logit_scale_init: float = CLIP_LOGIT_SCALE_INIT  # log of the initial logit scale

    def __post_init__(self) -> None:
        # None (older configs) means no options; a copy, so the caller's dict cannot change the card later,
        # naming the family's augmentation default.
        object.__setattr__(self, "encoder_options", with_declared_augment(self.encoders, self.encoder_options))


def settings(cls: type) -> set[str]:
    """The keyword arguments ``cls`` takes (a dataclass's fields and InitVars)."""
    return set(inspect.signature(cls).parameters)


def build(cls: type, options: dict, owner: str, also: set[str] = frozenset()):
    """``cls(**options)``, but an option ``cls`` does not take is refused by name, with the settings
    ``owner`` knows (those of ``cls`` and ``also``): a dataclass alone would not list them."""
    unknown = sorted(options.keys() - settings(cls))
    if unknown:
        known = ", ".join(sorted(settings(cls) | also))
        raise TypeError(f"{owner} has no setting {', '.join(map(repr, unknown))}; its settings: {known}")
    return cls(**options)
