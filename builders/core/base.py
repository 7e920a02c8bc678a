"""The contract every dataset builder follows.

A builder turns a config into independent shards. `plan()` lists them as
`ShardSpec`s; `make_shard(spec)` yields that shard's rows. A shard depends on
nothing but (builder, config, spec), so any engine - a local process pool,
Ray, a later re-run - can build any subset of shards in any order and the
bytes come out the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from polymodal.argtypes import Parser
from polymodal.builders.core.options import (
    Preset,
    add_options,
    command_line,
    configs_from_args,
    identity,
    local_values,
)


@dataclass(frozen=True)
class ShardSpec:
    split: str
    index: int  # position of the shard inside its split
    start: int  # first row of the split that this shard holds
    count: int  # number of input rows

    def stem(self, prefix: str) -> str:
        return f"{self.split}/{prefix}-{self.index:06d}"


@dataclass
class Row:
    """One input row: a sample to write, or the reason it could not be made."""

    key: str
    sample: dict[str, bytes] | None
    error_kind: str | None = None
    message: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # extra columns for the row table

    @property
    def ok(self) -> bool:
        return self.sample is not None


def sample_key(row: int) -> str:
    # Fixed width so that keys sort as numbers; 9 digits covers the largest published scale (11M).
    return f"{row:09d}"


def plan_splits(split_sizes: dict[str, int], shard_size: int) -> list[ShardSpec]:
    specs = []
    for split, size in split_sizes.items():
        for index, start in enumerate(range(0, size, shard_size)):
            specs.append(ShardSpec(split, index, start, min(shard_size, size - start)))
    return specs


def shard_rng(seed: int, spec: ShardSpec, *stream: int) -> np.random.Generator:
    """An RNG owned by one shard: independent of every other shard and of worker order. `stream` keys a
    dataset of its own under one seed (one value of a sweep), so no two of them share draws."""
    split_code = zlib.crc32(spec.split.encode())
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(*stream, split_code, spec.index)))


class Builder:
    """Base class of dataset builders. Subclasses set the class attributes and `make_shard`."""

    name: ClassVar[str]
    version: ClassVar[str]
    prefix: ClassVar[str]  # shard file prefix
    fields: ClassVar[tuple[str, ...]]  # member suffixes every sample carries, e.g. ("a.npy", "json")
    card: ClassVar[str]  # data card template name in data_cards/
    row_table: ClassVar[bool] = False  # write a parquet table of every input row per shard

    Config: ClassVar[type]  # a frozen dataclass whose fields are declared with `options.option`
    presets: ClassVar[tuple[Preset, ...]] = ()  # flags that set several fields at once

    def __init__(self, config):
        self.config = config

    # -- from the config's declarations -------------------------------------
    @classmethod
    def add_arguments(cls, parser) -> None:
        """This dataset's options, on its `polymodal build NAME` parser."""
        add_options(parser, cls.Config, cls.presets)

    @classmethod
    def configs_from_args(cls, args) -> dict[str, Any]:
        """Configs from parsed options, keyed by the sub-folder each goes to when there are several."""
        return configs_from_args(cls.Config, args, cls.presets)

    @classmethod
    def configs_from_argv(cls, argv: list[str], prog: str) -> dict[str, Any]:
        """Configs from a command line of this dataset's options alone (what `polymodal bench` passes on)."""
        parser = Parser(prog=prog, description=f"{cls.name} dataset options")
        cls.add_arguments(parser)
        return cls.configs_from_args(parser.parse_args(argv))

    def command(self) -> str:
        """The portable command that builds this config's data again."""
        return command_line(self.config, f"polymodal build {self.name}")

    # -- to implement -------------------------------------------------------
    def split_sizes(self) -> dict[str, int]:
        raise NotImplementedError

    def make_shard(self, spec: ShardSpec) -> Iterator[Row]:
        raise NotImplementedError

    def rebuild_shard(self, spec: ShardSpec, previous: Mapping[str, dict[str, bytes]]) -> Iterator[Row]:
        """Make a shard again (a resume, `--retry-failed`), given the samples its last tar holds, by key.

        Builders whose rows are costly to make reuse those; by default the shard is made from scratch.
        """
        return self.make_shard(spec)

    def tool_versions(self) -> dict[str, str]:
        return {}

    def card_fields(self, manifest: dict) -> dict[str, str]:
        """Extra values for the card template, beyond the common ones."""
        return {}

    def card_metadata(self, manifest: dict) -> dict[str, Any]:
        """The card's YAML keys that only the dataset knows: pretty_name, licence, languages, tasks, sources, tags."""
        raise NotImplementedError

    def features(self) -> list[dict]:
        """The columns 🤗 datasets reads from the shards, as a card's `dataset_info.features` (schema.hub_features)."""
        raise NotImplementedError

    def check_environment(self) -> None:
        """Raise a clear error naming any missing tool before any shard is written."""

    def prepare(self) -> None:
        """One-off work before the shards, run once by `build` in its own process (e.g. a pool that shards
        only read). A resumed build calls it again, so it must be deterministic and cheap to repeat."""

    def manifest_info(self) -> dict[str, Any]:
        """Facts about the build that follow from its config and sources (e.g. class counts), for manifest.json."""
        return {}

    # -- derived ------------------------------------------------------------
    def config_dict(self) -> dict:
        """What defines the content, never a local path: the config fields as their declarations key them (a
        file by its sha256, a folder source by its kind). Hashed into the dataset id, recorded in the manifest."""
        return identity(self.config)

    def local_config(self) -> dict:
        """The config values that name this machine's files and folders: the manifest's `local` section."""
        return local_values(self.config)

    def run_config(self) -> dict:
        """Every config field, runtime ones included: what a shard worker rebuilds the builder from."""
        return dataclasses.asdict(self.config)

    def dataset_id(self) -> str:
        blob = json.dumps(
            {"builder": self.name, "version": self.version, "config": self.config_dict()},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def plan(self) -> list[ShardSpec]:
        return plan_splits(self.split_sizes(), self.config.shard_size)
