"""The registry of every reference model, and :func:`resolve_model`, which also
accepts a user's ``module:Class``.

The contract every model meets is in :mod:`baselines.interface`.
"""

import functools
import importlib
from collections.abc import Callable

from torch import nn

from polymodal.registry import Registry, parse_spec

from .alignclip import AlignClip
from .confu import ConFu
from .gated_symile import GatedSymile
from .gram import Gram
from .interface import INTERFACE, ContrastiveModel
from .reference import ReferenceModel
from .synergy_clip import SynergyClip
from .triangle import Triangle
from .trml import Trml

__all__ = ["MODELS", "ReferenceModel", "model_class", "resolve_model"]


#: Reference models by name; each builds as ``MODELS[name](inputs, **config)``.
MODELS: Registry[Callable[..., ContrastiveModel]] = Registry("model", {
    "clip": functools.partial(ReferenceModel, objective="clip"),
    "symile": functools.partial(ReferenceModel, objective="symile"),
    "alignclip": AlignClip,
    "synergy-clip": SynergyClip,
    "trml": Trml,
    "gram": Gram,
    "triangle": Triangle,
    "gated-symile": GatedSymile,
    "confu": ConFu,
})


def resolve_model(spec: str) -> Callable[..., ContrastiveModel]:
    """The model factory named by ``spec``: a key of :data:`MODELS`, or
    ``"package.module:ClassName"`` for a user model importable from ``sys.path``."""
    if spec in MODELS:
        return MODELS[spec]
    module_name, class_name = parse_spec(spec)
    if not module_name or not class_name:
        raise ValueError(f"unknown model {spec!r}: expected one of {sorted(MODELS)} or 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import {module_name!r} for model {spec!r}: {error}") from error
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ValueError(f"model {spec!r}: {module_name} has no class {class_name!r}")
    abstract = getattr(cls, "__abstractmethods__", frozenset())
    missing = [m for m in INTERFACE if not callable(getattr(cls, m, None)) or m in abstract]
    if missing or not issubclass(cls, nn.Module):
        raise ValueError(
            f"model {spec!r} must be an nn.Module implementing {', '.join(INTERFACE)}; "
            f"missing: {', '.join(missing) or 'nn.Module'}"
        )
    return cls


def model_class(spec: str) -> type:
    """The class :func:`resolve_model` builds ``spec`` with, whose declarations a task reads
    (the registry builds "clip" and "symile" as a ReferenceModel with that objective)."""
    factory = resolve_model(spec)
    return factory.func if isinstance(factory, functools.partial) else factory
