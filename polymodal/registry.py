"""Named choices, and `kind:arg` specs, with one error wording for every layer.

Every registry of polymodal (builders, engines, tasks, models, encoders,
featurizers, media sources, captioners, ...) is a :class:`Registry`: a dict
whose failed lookup names what is known. A spec such as ``dir:/clips`` or
``hf:Salesforce/blip-image-captioning-base`` is split by :func:`parse_spec`
and looked up with :meth:`Registry.spec`.

This module imports nothing of polymodal, so every layer may use it.
"""

from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")


class UnknownName(LookupError, ValueError):
    """A name or spec that no registry entry answers; the message lists the known ones."""


class Spec(NamedTuple):
    kind: str
    arg: str


def parse_spec(text: str) -> Spec:
    """``"kind:arg"`` -> Spec(kind, arg); a bare ``"kind"`` has arg ``""``. Only the first colon splits."""
    kind, _, arg = text.partition(":")
    return Spec(kind, arg)


class Registry(dict, Generic[T]):
    """``{name: entry}`` for one kind of thing (``what``, e.g. "media source").

    ``registry[name]`` raises ``error`` (:class:`UnknownName` by default) naming the known entries;
    ``registry.spec(text)`` looks up a ``kind:arg`` spec's kind and checks
    whether the entry takes an argument (``takes_arg``: a set of the kinds that
    must have one; ``None`` lets every kind take one or not).
    """

    def __init__(self, what: str, entries: dict[str, T] | None = None, takes_arg: set[str] | None = None,
                 forms: str = "", error: type[Exception] = UnknownName):
        super().__init__(entries or {})
        self.what = what
        self.takes_arg = takes_arg
        self.forms = forms  # how a spec is written, for the error, e.g. "youtube, url:TEMPLATE or dir:PATH"
        self.error = error  # a layer's own kind of clear error (the builders' SourceError prints one line)

    def __missing__(self, name: str):
        raise self.error(f"unknown {self.what} {name!r}; {self.choices()}")

    def choices(self) -> str:
        return f"choose {self.forms}" if self.forms else f"known: {', '.join(sorted(self))}"

    def register(self, name: str):
        """Decorator: ``@REGISTRY.register("name")`` adds a class or function under ``name``."""

        def add(entry: T) -> T:
            if name in self:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self[name] = entry
            return entry

        return add

    def spec(self, text: str) -> tuple[T, str]:
        """The entry of a ``kind:arg`` spec and its argument."""
        kind, arg = parse_spec(text)
        if kind not in self or (self.takes_arg is not None and bool(arg) != (kind in self.takes_arg)):
            raise self.error(f"unknown {self.what} {text!r}; {self.choices()}")
        return self[kind], arg
