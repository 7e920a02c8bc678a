"""What a featurizer is, and the featurizers of every task by encoder name (`polymodal featurize`).

A task declares its featurizers (`Task.featurizers`: encoder name -> class); the
encoder name is part of the cache key (see benchmarks.feature_cache), and a
featurizer reads the datasets of its task's builder.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from polymodal.benchmarks.data import load_manifest
from polymodal.benchmarks.feature_cache import RawSample, cached_split, piece_files, read_cache, read_index, read_piece
from polymodal.benchmarks.streaming import Piece, Source
from polymodal.benchmarks.tasks import TASKS, load_task


class Featurizer(ABC):
    """Turns a dataset's raw samples into the arrays a task's models read, in two steps."""

    info: dict  # stored with the cache file: what a reader needs to know of how the arrays were made

    @abstractmethod
    def prepare(self, rows: list[RawSample]) -> dict[str, np.ndarray]:
        """A batch's arrays (decoding, CPU preprocessing), in the loader's workers."""

    def encode(self, prepared: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The prepared arrays through frozen models, in the rank's main process; none by default."""
        return prepared

    @classmethod
    def for_dataset(cls, data_dir) -> Featurizer:
        """The featurizer of the dataset at ``data_dir``; one that sizes its arrays from the data reads it here."""
        return cls()


def featurizer_class(data_dir, encoder: str) -> type[Featurizer]:
    """The featurizer a task declares as `encoder`, once the dataset is known to be of the kind it reads."""
    by_builder: dict[str, dict[str, type[Featurizer]]] = {}
    for name in TASKS:
        task = load_task(name)
        by_builder.setdefault(task.builder, {}).update(task.featurizers)
    reads = {enc: builder for builder, featurizers in by_builder.items() for enc in featurizers}
    if encoder not in reads:
        raise SystemExit(f"unknown encoder {encoder!r}; known: {', '.join(sorted(reads))}")
    built = load_manifest(data_dir)["builder"]
    if built != reads[encoder]:
        raise SystemExit(f"encoder {encoder!r} reads {reads[encoder]} datasets, and {data_dir} is a {built} dataset; "
                         f"its encoders: {', '.join(sorted(by_builder.get(built, {}))) or 'none'}")
    return by_builder[built][encoder]


def featurize(data_dir, encoder: str, split: str, out=None, featurizer: Featurizer | None = None, **loader) -> Path:
    """The cache file of (data_dir, encoder, split), computing it only if absent; ``loader``: workers, seed, progress."""
    make = lambda: featurizer or featurizer_class(data_dir, encoder).for_dataset(data_dir)  # noqa: E731
    return cached_split(data_dir, encoder, split, make, out, **loader)


def load_features(data_dir, encoder: str, split: str, out=None,
                  featurizer: Featurizer | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The cached arrays of a split (featurizing it first if needed) and the featurizer's info,
    which must be `featurizer`'s where one is given."""
    path = featurize(data_dir, encoder, split, out, featurizer)
    arrays, info = read_cache(path)
    if featurizer is not None and info != featurizer.info:
        raise SystemExit(f"{path} holds features made with {info}, not {featurizer.info}; delete it to recompute")
    return arrays, info


def feature_source(data_dir, encoder: str, split: str, out=None, featurizer: Featurizer | None = None) -> Source:
    """A split's cached features as a stream of its shards' files (featurizing it first if needed), every
    column of them; `Source.mapped` makes them a model's inputs."""
    path = featurize(data_dir, encoder, split, out, featurizer)
    index = read_index(path)
    if featurizer is not None and index["info"] != featurizer.info:
        raise SystemExit(f"{path} holds features made with {index['info']}, not {featurizer.info}; delete it to recompute")
    files = piece_files(path)
    return Source(tuple(Piece(str(file), rows, functools.partial(read_piece, file)) for file, rows in files), ())


def featurize_all(data_dir, encoder: str, out=None, featurizer: Featurizer | None = None, **loader) -> list[Path]:
    """Every split of the dataset; one featurizer (one model load), made only if a split is missing, serves them all."""
    make = functools.cache(lambda: featurizer or featurizer_class(data_dir, encoder).for_dataset(data_dir))
    return [cached_split(data_dir, encoder, s, make, out, **loader) for s in sorted(load_manifest(data_dir)["splits"])]
