"""The registry of every reference model, and :func:`resolve_model`, which also
accepts a model that an installed package registers under the ``polymodal.models``
entry-point group, and a user's ``module:Class``.

The contract every model meets is in :mod:`baselines.interface`.
"""

import functools
import importlib
import os
import sys
from collections.abc import Callable
from importlib import metadata

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

__all__ = ["ENTRY_POINT_GROUP", "MODELS", "ReferenceModel", "is_installed", "model_class", "resolve_model"]

#: The entry-point group an installed package declares its models in (examples/my_model/pyproject.toml).
ENTRY_POINT_GROUP = "polymodal.models"


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
    """The model factory named by ``spec``: a key of :data:`MODELS`, the name of an installed package's
    :data:`ENTRY_POINT_GROUP` entry point, or ``"package.module:ClassName"`` for a user model importable from
    ``sys.path`` or the current folder. A name that is both built-in and an entry point is refused, as is one
    that two distributions declare: which one runs would depend on what happens to be installed."""
    entry_point = _entry_point(spec)
    if spec in MODELS:
        return MODELS[spec]
    if entry_point is not None:
        return _load(entry_point)
    module_name, class_name = parse_spec(spec)
    if not module_name or not class_name:
        installed = ", ".join(sorted(metadata.entry_points(group=ENTRY_POINT_GROUP).names)) or "none"
        raise ValueError(f"unknown model {spec!r}: expected a built-in ({', '.join(sorted(MODELS))}), "
                         f"an installed one ({installed}) or 'package.module:ClassName'")
    # A module beside the user imports without PYTHONPATH=.; appended last, the folder shadows no installed module.
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import {module_name!r} for model {spec!r}: {error}") from error
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ValueError(f"model {spec!r}: {module_name} has no class {class_name!r}")
    return _checked(f"model {spec!r}", cls)


def is_installed(spec: str) -> bool:
    """Whether ``spec`` names a built-in model or an installed package's entry point: code the user installed,
    which a run folder may name without ``--trust-code`` (a ``module:Class`` there is code from the folder)."""
    return spec in MODELS or spec in metadata.entry_points(group=ENTRY_POINT_GROUP).names


def _entry_point(name: str) -> metadata.EntryPoint | None:
    """The installed entry point ``name`` of :data:`ENTRY_POINT_GROUP`, if any; an ambiguous name is an error."""
    found = list(metadata.entry_points(group=ENTRY_POINT_GROUP, name=name))
    if found and name in MODELS:
        raise ValueError(f"model {name!r} is both a built-in model and the {_where(found[0])}; rename the entry point")
    if len(found) > 1:
        raise ValueError(f"model {name!r} is declared twice: {'; '.join(map(_where, found))}; uninstall one")
    return found[0] if found else None


def _where(entry_point: metadata.EntryPoint) -> str:
    return f"entry point {entry_point.name} = {entry_point.value} of distribution {entry_point.dist.name}"


def _load(entry_point: metadata.EntryPoint) -> type:
    what = f"model {entry_point.name!r} ({_where(entry_point)})"
    try:
        cls = entry_point.load()
    except Exception as error:  # the package's own code runs on import, and may raise anything
        raise ValueError(f"{what} cannot be loaded: {type(error).__name__}: {error}") from error
    if not isinstance(cls, type):
        raise ValueError(f"{what} is not a class")
    return _checked(what, cls)


def _checked(what: str, cls: type) -> type:
    """``cls``, once it is an nn.Module that implements the interface."""
    abstract = getattr(cls, "__abstractmethods__", frozenset())
    missing = [m for m in INTERFACE if not callable(getattr(cls, m, None)) or m in abstract]
    if missing or not issubclass(cls, nn.Module):
        raise ValueError(
            f"{what} must be an nn.Module implementing {', '.join(INTERFACE)}; "
            f"missing: {', '.join(missing) or 'nn.Module'}"
        )
    return cls


def model_class(spec: str) -> type:
    """The class :func:`resolve_model` builds ``spec`` with, whose declarations a task reads
    (the registry builds "clip" and "symile" as a ReferenceModel with that objective)."""
    factory = resolve_model(spec)
    return factory.func if isinstance(factory, functools.partial) else factory
