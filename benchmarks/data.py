"""Reading built datasets: manifests checked against their shards, and splits as streams of shards.

Every reader of the harness gets its manifest from :func:`load_manifest`, which
checks the dataset first (counts, member names, field sets and each shard's
sha256, remembered per shard while it does not change), so a truncated, extended
or altered dataset is refused by name before anything is trained or scored.
`--no-verify` turns the check off for one command, and its result says so.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from polymodal.builders.core import manifest as manifests
from polymodal.builders.core import storage
from polymodal.builders.schema import split_member

if TYPE_CHECKING:  # the streaming reader imports torch, which building the CLI's parser must not
    from polymodal.benchmarks.streaming import Arrays, Source

__all__ = ["load_manifest", "shard_samples", "shard_source", "skip_verification", "split_urls", "verified"]

_checks = {"on": True}


def skip_verification() -> None:
    """Read datasets without checking them against their manifests (`--no-verify`), for this process."""
    _checks["on"] = False


def verified() -> bool:
    """Whether the datasets this process read were checked: result files record it."""
    return _checks["on"]


def load_manifest(data_dir: str | Path) -> dict:
    """The manifest of a built dataset (a folder or an fsspec URL), once the dataset matches it (unless
    verification is off)."""
    if not _checks["on"]:
        return manifests.load_manifest(data_dir)
    return _checked(storage.canonical(data_dir), _fingerprint(data_dir))


def _fingerprint(data_dir: str | Path) -> tuple:
    """What a check depends on: the manifest and each shard's size and version (a local file's mtime, an object's
    ETag or the like). Unchanged, one check a process."""
    return tuple(storage.listing(data_dir, manifests.MANIFEST) + storage.listing(data_dir, ".tar"))


@functools.lru_cache(maxsize=16)
def _checked(data_dir: str, fingerprint: tuple) -> dict:
    return manifests.check_dataset(data_dir)


def plain_key(sample: dict) -> dict:
    """A sample whose members are named `key.field` in the shard's own folder, else a clear error."""
    if split_member(f"{sample['__key__']}.x")[0] is None:
        raise manifests.DatasetError(f"{sample.get('__url__', 'a shard')}: member key {sample['__key__']!r} is not "
                                     "a plain sample key; refusing to read it")
    return sample


def shard_samples(url: str | Path) -> Iterator[dict]:
    """The samples of one shard, a local file or an object opened through fsspec, each checked by plain_key."""
    from webdataset.tariterators import group_by_keys, tar_file_expander

    with storage.open_read(url) as stream:
        yield from map(plain_key, group_by_keys(tar_file_expander([{"url": str(url), "stream": stream}])))


def split_urls(data_dir: str | Path, split: str) -> list[str]:
    """The shard paths of one split, in manifest order: full URLs for a remote dataset."""
    manifest = load_manifest(data_dir)
    if split not in manifest["splits"]:
        raise KeyError(f"{data_dir} has no split {split!r}; it has {sorted(manifest['splits'])}")
    return [str(storage.join(data_dir, s["path"])) for s in manifest["shards"] if s["split"] == split]


def _npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)  # never unpickle what a shard holds


def _stack_npy(blobs: list[bytes]) -> np.ndarray:
    """Rows' `.npy` members stacked: where all share the first one's header (as a builder writes them), their
    data read at once past it, about 30 times faster than np.load on each; else np.load on each."""
    head = io.BytesIO(blobs[0])
    version = np.lib.format.read_magic(head)
    shape, fortran, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                             else np.lib.format.read_array_header_2_0)(head)
    size = head.tell()
    if dtype.hasobject or fortran or any(b[:size] != blobs[0][:size] for b in blobs):
        return np.stack([_npy(b) for b in blobs])
    return np.frombuffer(bytearray(b"".join(b[size:] for b in blobs)), dtype).reshape(len(blobs), *shape)


def _read_shard(url: str, fields: tuple[str, ...], transform: Callable[[Arrays], Arrays]) -> Arrays:
    rows = [tuple(sample[f"{f}.npy"] for f in fields) for sample in shard_samples(url)]
    if not rows:
        return transform({f: np.zeros((0,)) for f in fields})
    return transform({f: _stack_npy(list(column)) for f, column in zip(fields, zip(*rows))})


def shard_source(data_dir: str | Path, split: str, fields: list[str],
                 transform: Callable[[Arrays], Arrays] = lambda arrays: arrays) -> Source:
    """A split of `.npy` members (XOR) as a stream of its shards, each read whole when its turn comes.

    Rows come out of a shard in key order; `transform` turns a shard's stacked arrays into the model's
    inputs, and each shard must hold as many rows as the manifest says.
    """
    from polymodal.benchmarks.streaming import Piece, Source

    manifest = load_manifest(data_dir)
    urls = split_urls(data_dir, split)
    shards = [s for s in manifest["shards"] if s["split"] == split]
    return Source(tuple(Piece(url, s["samples"], functools.partial(_read_shard, url, tuple(fields), transform))
                        for url, s in zip(urls, shards)), tuple(fields))
