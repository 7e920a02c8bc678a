"""``--config FILE``: a command's options from a YAML or JSON file, keyed by flag name, and the resolved
options written back as such a file, so that a run or a build can be made again from its folder.

The file is turned into the flags it stands for and parsed with the command's own parser, so each value is
checked exactly as on the command line; flags given on the command line come after it and win.

    # polymodal train --config run.yaml --epochs 3
    task: xor
    model: symile
    data: data/xor
    out: runs/symile
    batch-size: 500
    model-config: {d_model: 16}
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import yaml

FLAG = "--config"
#: Options that say how to run, not what: never written into a stored config.
NOT_SETTINGS = {"config", "resume", "overwrite", "no_progress", "help"}
CONFIG_FILE = "config.yaml"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` a --config; its handler can then :func:`write_config` the options it ran with."""
    parser.add_argument(FLAG, metavar="FILE", help="YAML or JSON file of this command's options, keyed by flag "
                        "name (batch-size: 500); flags on the command line override it")
    parser.set_defaults(config_parser=parser)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The parser's long options by key: the flag without its dashes."""
    return {a.option_strings[-1][2:]: a for a in parser._actions if a.option_strings and a.option_strings[-1].startswith("--")}


def _load(path: str) -> dict:
    kind = "JSON" if path.endswith(".json") else "YAML"
    try:
        text = Path(path).read_text(encoding="utf-8")
        content = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except OSError as err:
        raise SystemExit(f"{FLAG} {path}: {err.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        reason = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SystemExit(f"{FLAG} {path}: not valid {kind}: {reason}{where}") from None
    if not isinstance(content, dict):
        raise SystemExit(f"{FLAG} {path}: expected a mapping of option names to values, got {type(content).__name__}")
    return content


def _tokens(path: str, content: dict, parser: argparse.ArgumentParser, passes_unknown: bool) -> list[str]:
    """The flags ``content`` stands for. A key the command does not know is refused, unless the command passes
    unknown options on (bench hands them to the dataset builder, which checks them)."""
    options = _options(parser)
    tokens: list[str] = []
    for key, value in content.items():
        key = str(key).replace("_", "-")
        action = options.get(key)
        if key == FLAG[2:] or (action is None and not passes_unknown):
            known = ", ".join(sorted(k for k in options if k not in ("help", FLAG[2:])))
            raise SystemExit(f"{FLAG} {path}: unknown option {key!r} for `{parser.prog}`; known: {known}")
        if value is None or value is False or value == []:
            continue  # absent, a switch left off, or an empty list
        if value is True and (action is None or action.nargs == 0):
            tokens.append(f"--{key}")
        elif isinstance(value, dict):
            tokens += [f"--{key}", json.dumps(value)]
        elif isinstance(value, list) and action is not None and action.nargs in ("+", "*"):
            tokens += [f"--{key}", *map(str, value)]
        elif isinstance(value, list):  # an option that takes one word: its comma form (p-hat: [0, 1] is 0,1)
            tokens += [f"--{key}", ",".join(map(str, value))]
        else:
            tokens += [f"--{key}", str(value)]
    return tokens


def _leaf(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.ArgumentParser, int]:
    """The parser of the command ``argv`` names (train; build xor), and where its options begin in ``argv``."""
    leaf, depth = parser, 0
    while True:
        subcommands = next((a for a in leaf._actions if isinstance(a, argparse._SubParsersAction)), None)
        name = next((t for t in argv[depth:] if not t.startswith("-")), None)
        if subcommands is None or name not in subcommands.choices:
            return leaf, depth
        depth = argv.index(name, depth) + 1
        leaf = subcommands.choices[name]


def expand(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` with ``--config FILE`` replaced by the flags of FILE, placed right after the command's name so
    that every flag of the command line overrides the file; and the command's own options in it, which
    :func:`write_config` stores."""
    leaf, depth = _leaf(parser, argv)
    out, path, k = argv[:depth], None, depth
    while k < len(argv):
        token = argv[k]
        if token == FLAG and k + 1 < len(argv):
            path, k = argv[k + 1], k + 2
        elif token.startswith(FLAG + "="):
            path, k = token.split("=", 1)[1], k + 1
        else:
            out.append(token)
            k += 1
    if path is None:
        return argv, argv[depth:]
    if FLAG[2:] not in _options(leaf):
        raise SystemExit(f"`{leaf.prog}` takes no {FLAG}")
    passes_unknown = bool(leaf.get_default("accepts_extra"))
    out[depth:depth] = _tokens(path, _load(path), leaf, passes_unknown)
    return out, out[depth:]


def _scalar(token: str):
    """A number as a number and a JSON object as a mapping; anything else as the string it was given as."""
    try:
        value = yaml.safe_load(token) if token else token
    except yaml.YAMLError:
        return token
    return value if isinstance(value, (int, float, dict)) and not isinstance(value, bool) else token


def from_flags(tokens: list[str], switches: frozenset[str] = frozenset()) -> dict:
    """The mapping a list of flags stands for, as :func:`expand` reads it back: each ``--key value`` (a later one
    over an earlier one), each of ``switches`` and each flag with no value after it as true."""
    given: dict[str, object] = {}
    for k, token in enumerate(tokens):
        if not token.startswith("--"):
            continue
        key, eq, inline = token[2:].partition("=")
        if eq:
            given[key] = _scalar(inline)
            continue
        words = [] if key in switches else itertools.takewhile(lambda t: not t.startswith("--"), tokens[k + 1:])
        values = [_scalar(w) for w in words]
        given[key] = values[0] if len(values) == 1 else values or True
    return given


def dump(content: dict) -> str:
    return yaml.safe_dump(content, sort_keys=False, allow_unicode=True)


def write_config(args: argparse.Namespace, folder: Path) -> Path:
    """Write the options the command ran with as FOLDER/config.yaml, which ``--config`` reads back: each
    option as it was given (the command line over the file), else its default; then the options it passed on
    (bench's dataset options)."""
    options = _options(args.config_parser)
    given = from_flags(args.config_tokens, frozenset(k for k, a in options.items() if a.nargs == 0))
    content = {}
    for key, action in options.items():
        value = given.pop(key, action.default)
        if action.dest in NOT_SETTINGS:
            continue
        content[key] = str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
    content.update(given)  # what is left: options passed on
    path = folder / CONFIG_FILE
    path.write_text(dump(content), encoding="utf-8")
    return path
