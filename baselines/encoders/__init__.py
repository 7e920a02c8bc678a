"""Encoders of the reference models, and the registry of encoder families."""

import inspect
from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.registry import Registry

from .av import AV_ENCODERS
from .hf import hf_synergy_encoders
from .m3 import M3_ENCODERS


class LinearL2(nn.Linear):
    """An affine map onto the unit sphere: the per-modality encoder of the Symile XOR
    experiments. Unit norm bounds every logit by the logit scale."""

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(super().forward(x), dim=-1)


def linear_l2_encoders(inputs: dict[str, int], d_model: int) -> nn.ModuleDict:
    return nn.ModuleDict({m: LinearL2(d_in, d_model) for m, d_in in inputs.items()})


class Mlp(nn.Sequential):
    """``depth`` Linear layers with ReLU between, ``width`` wide inside, onto the unit sphere if ``unit``."""

    def __init__(self, d_in: int, d_out: int, width: int, depth: int, unit: bool):
        widths = [d_in, *([width] * (depth - 1)), d_out]
        layers: list[nn.Module] = []
        for k in range(depth):
            linear = nn.Linear(widths[k], widths[k + 1])
            nn.init.kaiming_normal_(linear.weight, mode="fan_out")
            nn.init.zeros_(linear.bias)
            layers += [linear] if k == depth - 1 else [linear, nn.ReLU()]
        super().__init__(*layers)
        self.unit = unit

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)
        return F.normalize(y, dim=-1) if self.unit else y


def mlp_encoders(inputs: dict[str, int], d_model: int, width: int = 256, depth: int = 3,
                 unit: bool = True) -> nn.ModuleDict:
    """The encoders of Gated Symile's Synthetic-XNOR: Linear(d_in, 256)–ReLU–Linear(256, 256)–ReLU–
    Linear(256, d_model) at the defaults, Kaiming-normal (fan_out) weights and zero biases as there, and
    L2-normalised outputs, as its ``embedding_norm: True`` gives every model."""
    if depth < 1:
        raise ValueError(f"an mlp needs depth >= 1, got {depth}")
    return nn.ModuleDict({m: Mlp(d_in, d_model, width, depth, unit) for m, d_in in inputs.items()})


#: Encoder families by name; each builds as ``family(inputs, d_model, **encoder_options)``.
ENCODERS: Registry[Callable[..., nn.ModuleDict]] = Registry("encoders", {"linear_l2": linear_l2_encoders, "mlp": mlp_encoders, **M3_ENCODERS, **AV_ENCODERS,
                                                 "hf-synergy": hf_synergy_encoders})


def with_declared_augment(family: str, options: dict | None) -> dict:
    """A copy of ``options`` with the family's default ``augment`` filled in where it declares one:
    augmentation changes what training saw, so a model's card names it even at its default."""
    options = dict(options or {})
    declared = inspect.signature(ENCODERS[family]).parameters.get("augment")
    if declared is not None:
        options.setdefault("augment", declared.default)
    return options


def build_encoders(family: str, inputs: dict[str, int], d_model: int, options: dict | None = None,
                   projects: bool = False) -> nn.ModuleDict:
    """The encoders of family ``family`` of :data:`ENCODERS`, one per modality of ``inputs``.

    A family may give its own width (``out_features``: hf-synergy's backbones); only a model
    that ``projects`` from it to ``d_model`` can use those, so any other model is refused here
    rather than failing at its first matrix product.
    """
    encoders = ENCODERS[family](inputs, d_model, **(options or {}))
    widths = {m: getattr(e, "out_features", d_model) for m, e in encoders.items()}
    if not projects and set(widths.values()) != {d_model}:
        raise ValueError(f"encoders {family!r} give widths {widths}, not d_model={d_model}; only a model that "
                         "projects them (synergy-clip) can use them")
    return encoders
