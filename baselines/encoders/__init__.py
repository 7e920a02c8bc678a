"""Encoders of the reference models, and the registry of encoder families."""

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


#: Encoder families by name; each builds as ``family(inputs, d_model, **encoder_options)``.
ENCODERS: Registry[Callable[..., nn.ModuleDict]] = Registry("encoders", {"linear_l2": linear_l2_encoders, **M3_ENCODERS, **AV_ENCODERS,
                                                 "hf-synergy": hf_synergy_encoders})


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
