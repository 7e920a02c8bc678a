"""Builder options, declared once on the config dataclass.

A config field declared with :func:`option` carries its help, its parser, its
bounds or choices, and whether it defines the data or only how a build runs.
From that one declaration come the `polymodal build NAME` flags
(:func:`add_options`, which refuse a value out of bounds as it is parsed), the
configs they give (:func:`configs_from_args`, also what `polymodal bench`
passes its dataset options through), the same check for configs made in code
(:func:`check_values`), and the card's reproduce-this command (:func:`command_line`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from polymodal.argtypes import integer, number, out_of_bounds
from polymodal.registry import parse_spec

IDENTITY = "What defines the data (enters the dataset id)"
RUNTIME_GROUP = "How the build runs (may change between a build and its resume)"


class Identity:
    """How an option's value enters the dataset id. By default the value itself; a local path never does."""

    def key(self, value: Any) -> Any:
        return value

    def portable(self, value: Any) -> Any:
        """The value as the card shows it: what another machine would type."""
        return value

    def local(self, value: Any) -> bool:
        """Whether the value names something on this machine (it then goes to the manifest's `local`)."""
        return False


class FileContent(Identity):
    """A file's path: its sha256 enters the id, and the card shows the file's name only."""

    def key(self, value: str) -> Any:
        return {"sha256": _file_sha256(value)} if value else ""

    def portable(self, value: str) -> str:
        return Path(value).name

    def local(self, value: str) -> bool:
        return bool(value)


@dataclass(frozen=True)
class SpecKind(Identity):
    """A `kind:arg` spec whose argument is local (a folder, a mirror): its kind enters the id. Kinds in `files`
    name a file whose content defines the data (a translations table): their sha256 enters too."""

    files: tuple[str, ...] = ()

    def key(self, value: str) -> Any:
        kind, arg = parse_spec(value)
        if not arg:
            return kind
        return {"kind": kind, "sha256": _file_sha256(arg)} if kind in self.files else kind

    def portable(self, value: str) -> str:
        kind, arg = parse_spec(value)
        return f"{kind}:{Path(arg).name if kind in self.files else kind.upper().replace('-', '_')}" if arg else kind

    def local(self, value: str) -> bool:
        return bool(parse_spec(value).arg)


def _file_sha256(path: str) -> str:
    try:
        stat = os.stat(path)
    except OSError as err:
        raise SystemExit(f"cannot read {path}: {err.strerror}") from None
    return _sha256_of(os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    """Keyed by size and mtime too, so an index edited in place is hashed again."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass(frozen=True)
class Option:
    help: str
    parse: Callable[[str], Any] | None = None  # text -> value; default: the field's type
    show: Callable[[Any], str] | None = None  # value -> text, the inverse of parse, for the card's command
    runtime: bool = False  # how a build runs, not what it holds: out of the id, free to change on resume
    many: bool = False  # a tuple field, given as several words (nargs="+")
    choices: tuple | None = None
    # Bounds of a number, or of each number a list or sweep gives: builder numbers are counts, sizes, seconds,
    # probabilities or seeds, so none may be negative unless its field says low=None.
    low: float | None = 0
    high: float | None = None
    metavar: str | None = None
    required: bool = False
    sweep: bool = False  # `parse` gives a list; one dataset per value, in OUT/<field>=<value>
    shorthands: tuple[tuple[str, str, str], ...] = ()  # (flag, metavar, template): `--flag X` sets template.format(X)
    preset: str | None = None  # the name of a Preset that may set this field
    identity: Identity = Identity()  # how the value enters the dataset id


@dataclass(frozen=True)
class Preset:
    """A flag that sets several fields at once (`--size xs`); a field given on its own wins."""

    flag: str
    fields: tuple[str, ...]
    values: dict[str, tuple]
    help: str


def option(default: Any = dataclasses.MISSING, help: str = "", **kwargs) -> Any:
    """A config field that is also a command-line option; see :class:`Option` for the keywords."""
    opt = Option(help=help, **kwargs)
    return field(default=default, metadata={"option": opt, "runtime": opt.runtime})


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _options(config_cls) -> list[tuple[dataclasses.Field, Option]]:
    return [(f, f.metadata["option"]) for f in dataclasses.fields(config_cls) if "option" in f.metadata]


def _parse(f: dataclasses.Field, opt: Option) -> Callable[[str], Any]:
    """The field's text -> value parser; a bad value raises argparse's error, which names the flag."""
    if opt.parse:
        return functools.partial(_checked, opt)
    kind = f.type if isinstance(f.type, type) else {"int": int, "float": float, "str": str}.get(str(f.type), str)
    if opt.many:  # tuple[str, ...]
        return str
    return {int: integer(opt.low, opt.high), float: number(opt.low, opt.high)}.get(kind, kind)


def _checked(opt: Option, text: str) -> Any:
    try:
        value = opt.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    why = _out_of_bounds(opt, value)
    if why:
        raise argparse.ArgumentTypeError(why)
    return value


def _out_of_bounds(opt: Option, value: Any) -> str | None:
    for v in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            why = out_of_bounds(v, opt.low, opt.high)
            if why:
                return why
    return None


def check_values(config) -> None:
    """Raise ValueError naming the flag of the first field whose value breaks its declared bounds: the same
    check as the flag's own, for configs made in code (tests, a manifest's config)."""
    for f, opt in _options(type(config)):
        why = _out_of_bounds(opt, getattr(config, f.name))
        if why:
            raise ValueError(f"{flag(f.name)} {why}")


def add_options(parser: argparse.ArgumentParser, config_cls, presets: tuple[Preset, ...] = ()) -> None:
    """Add one flag per declared field of `config_cls` (and its shorthands and presets) to `parser`."""
    defaults = config_cls.__dataclass_fields__
    groups = {False: parser.add_argument_group(IDENTITY), True: parser.add_argument_group(RUNTIME_GROUP)}
    for preset in presets:
        shown = "; ".join(f"{k}: {'/'.join(f'{n:,}' for n in v)}" for k, v in preset.values.items())
        groups[False].add_argument(preset.flag, choices=sorted(preset.values), help=f"{preset.help} ({shown})")
    for f, opt in _options(config_cls):
        group = groups[opt.runtime]
        default = defaults[f.name].default
        kwargs: dict[str, Any] = {"dest": f.name, "help": _help(opt, default), "metavar": opt.metavar}
        if opt.choices:
            kwargs["choices"] = opt.choices
        if opt.many:
            kwargs["nargs"] = "+"
        kwargs["type"] = _parse(f, opt)
        if opt.preset:
            kwargs["default"] = None  # unset: the preset's value, else the field's default
        elif opt.required:
            kwargs["required"] = not opt.shorthands
        else:
            kwargs["default"] = [default] if opt.sweep else default
        if opt.shorthands:
            exclusive = group.add_mutually_exclusive_group(required=opt.required)
            exclusive.add_argument(flag(f.name), **kwargs)
            for short, metavar, template in opt.shorthands:
                exclusive.add_argument(short, dest=f.name, metavar=metavar, type=template.format,
                                       help=f"the same as {flag(f.name)} {template.format(metavar)}")
        else:
            group.add_argument(flag(f.name), **kwargs)


def _help(opt: Option, default: Any) -> str:
    if opt.required or opt.preset:
        return opt.help
    shown = _show(opt, default) if default not in ("", ()) else "none"
    return f"{opt.help} (default {shown})".replace("%", "%%")


def configs_from_args(config_cls, args: argparse.Namespace, presets: tuple[Preset, ...] = ()) -> dict[str, Any]:
    """The configs the parsed flags give, keyed by sub-folder: {"": config}, or one per value of a sweep."""
    values = {f.name: getattr(args, f.name) for f, _ in _options(config_cls) if hasattr(args, f.name)}
    for preset in presets:
        chosen = getattr(args, preset.flag.lstrip("-").replace("-", "_"), None)
        for n, name in enumerate(preset.fields):
            if values.get(name) is None:
                if chosen:
                    values[name] = preset.values[chosen][n]
                else:
                    values.pop(name)  # the field's own default
    for name, value in values.items():
        if isinstance(value, list) and not _option_of(config_cls, name).sweep:
            values[name] = tuple(value)
    sweep = next((f.name for f, opt in _options(config_cls) if opt.sweep), None)
    try:
        if sweep is None:
            return {"": config_cls(**values)}
        return {f"{sweep}={_show(_option_of(config_cls, sweep), v)}": config_cls(**{**values, sweep: v})
                for v in values[sweep]}
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None


def _option_of(config_cls, name: str) -> Option:
    return config_cls.__dataclass_fields__[name].metadata["option"]


def _show(opt: Option, value: Any) -> str:
    if opt.show:
        return opt.show(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def identity(config) -> dict[str, Any]:
    """What defines the data: every non-runtime field, each as its Identity keys it. Hashed into the id."""
    return {f.name: _identity(f).key(getattr(config, f.name)) for f in dataclasses.fields(config)
            if not f.metadata.get("runtime")}


def local_values(config) -> dict[str, Any]:
    """The fields that name things on this machine (paths), as given: for the manifest's `local` section."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if not f.metadata.get("runtime") and _identity(f).local(getattr(config, f.name))}


def _identity(f: dataclasses.Field) -> Identity:
    return f.metadata["option"].identity if "option" in f.metadata else Identity()


def option_words(config, portable: bool = True) -> list[str]:
    """The flags that rebuild `config`'s data: every option that defines the data, with its value; local paths
    as the names another machine would substitute (the file's name, `dir:DIR`) unless `portable` is False."""
    words: list[str] = []
    for f, opt in _options(type(config)):
        value = getattr(config, f.name)
        if opt.runtime or (opt.many and not value) or value == "":
            continue
        shown = opt.identity.portable(value) if portable else value
        words.append(flag(f.name))
        words.extend([_show(opt, v) for v in shown] if opt.many else [_show(opt, shown)])
    return words


def command_line(config, prog: str, portable: bool = True) -> str:
    """The command that rebuilds `config`'s data (see :func:`option_words`)."""
    return f"{prog} --out DIR " + shlex.join(option_words(config, portable))


def float_list(text: str) -> list[float]:
    """Parse "0,0.5,1", a sweep "START:STOP:STEP" (STOP included) or "0,0.1,...,1"; a sweep whose steps do not
    land on its last value is refused rather than silently cut short."""
    if ":" in text:
        parts = [p.strip() for p in text.split(":")]
        if len(parts) != 3:
            raise ValueError(f"a sweep reads START:STOP:STEP; got {text!r}")
        first, last, step, digits = *map(float, parts), parts
        return _arithmetic(text, first, step, last, digits)
    parts = [p.strip() for p in text.split(",")]
    if "..." not in parts:
        return [float(p) for p in parts]
    if len(parts) != 4 or parts[2] != "...":
        raise ValueError(f"a sweep reads FIRST,SECOND,...,LAST; got {text!r}")
    first, second, last = float(parts[0]), float(parts[1]), float(parts[3])
    return _arithmetic(text, first, second - first, last, [parts[0], parts[1], parts[3]])


def _arithmetic(text: str, first: float, step: float, last: float, written: list[str]) -> list[float]:
    if step <= 0 or last < first:
        raise ValueError(f"a sweep must increase: {text!r}")
    steps = (last - first) / step
    if abs(steps - round(steps)) > 1e-9:
        raise ValueError(f"the sweep {text!r} steps by {step:g} from {first:g} and never reaches {last:g}")
    # Round to the step's precision so 0.1 steps give 0.3, not 0.30000000000000004.
    digits = max(len(p.partition(".")[2]) for p in written)
    return [round(first + k * step, digits + 2) for k in range(int(round(steps)) + 1)]
