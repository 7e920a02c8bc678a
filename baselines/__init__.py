"""Reference contrastive baselines for three or more modalities: CLIP, Symile,
Synergy-CLIP, AlignCLIP and TRML.

Pure torch: losses that also work sharded across DDP ranks, zero-shot scorers,
the :class:`ContrastiveModel` interface that submitted models implement, and the
reference models built on it.
"""

from .alignclip import AlignClip
from .distributed import gather_with_grad
from .encoders import ENCODERS, LinearL2
from .interface import ContrastiveModel
from .logit_scale import LogitScale
from .losses import SYMILE_NEGATIVES, clip_loss, infonce, mip, symile_loss
from .models import MODELS, ReferenceModel, resolve_model
from .objectives import OBJECTIVES, ClipObjective, SymileObjective
from .scoring import clip_scores, mip_scores
from .synergy_clip import SynergyClip
from .trml import Trml

__all__ = [
    "AlignClip",
    "SynergyClip",
    "Trml",
    "ENCODERS",
    "MODELS",
    "OBJECTIVES",
    "SYMILE_NEGATIVES",
    "ClipObjective",
    "ContrastiveModel",
    "LinearL2",
    "LogitScale",
    "ReferenceModel",
    "SymileObjective",
    "clip_loss",
    "clip_scores",
    "gather_with_grad",
    "infonce",
    "mip",
    "mip_scores",
    "resolve_model",
    "symile_loss",
]
