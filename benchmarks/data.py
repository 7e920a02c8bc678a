"""Reading built datasets: manifests checked against their shards, and whole splits as arrays through webdataset.

Every reader of the harness gets its manifest from :func:`load_manifest`, which
checks the dataset first (counts, member names, field sets and each shard's
sha256, remembered per shard while it does not change), so a truncated, extended
or altered dataset is refused by name before anything is trained or scored.
`--no-verify` turns the check off for one command, and its result says so.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np

from polymodal.builders.core import manifest as manifests
from polymodal.builders.schema import split_member

__all__ = ["load_manifest", "load_split_arrays", "skip_verification", "split_urls", "verified"]

_checks = {"on": True}


def skip_verification() -> None:
    """Read datasets without checking them against their manifests (`--no-verify`), for this process."""
    _checks["on"] = False


def verified() -> bool:
    """Whether the datasets this process read were checked: result files record it."""
    return _checks["on"]


def load_manifest(data_dir: str | Path) -> dict:
    """The manifest of a built dataset, once the dataset matches it (unless verification is off)."""
    if not _checks["on"]:
        return manifests.load_manifest(data_dir)
    return _checked(str(Path(data_dir).resolve()), _fingerprint(data_dir))


def _fingerprint(data_dir: str | Path) -> tuple:
    """What a check depends on: the manifest and each shard's size and mtime. Unchanged, one check a process."""
    folder = Path(data_dir)
    paths = [folder / manifests.MANIFEST, *sorted(folder.rglob("*.tar"))]
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths if p.exists())


@functools.lru_cache(maxsize=16)
def _checked(data_dir: str, fingerprint: tuple) -> dict:
    return manifests.check_dataset(data_dir)


def plain_key(sample: dict) -> dict:
    """A sample whose members are named `key.field` in the shard's own folder, else a clear error."""
    if split_member(f"{sample['__key__']}.x")[0] is None:
        raise manifests.DatasetError(f"{sample.get('__url__', 'a shard')}: member key {sample['__key__']!r} is not "
                                     "a plain sample key; refusing to read it")
    return sample


def split_urls(data_dir: str | Path, split: str) -> list[str]:
    """The shard paths of one split, in manifest order."""
    manifest = load_manifest(data_dir)
    if split not in manifest["splits"]:
        raise KeyError(f"{data_dir} has no split {split!r}; it has {sorted(manifest['splits'])}")
    return [str(Path(data_dir) / s["path"]) for s in manifest["shards"] if s["split"] == split]


def _npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)  # never unpickle what a shard holds


def _every_shard(urls):
    return urls


@functools.lru_cache(maxsize=64)
def _stack(content_digest: str, urls: tuple[str, ...], fields: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    import webdataset as wds

    columns: list[list[np.ndarray]] = [[] for _ in fields]
    # Every rank loads the whole split; the trainer gives each rank its part of every batch.
    pipeline = (wds.WebDataset(list(urls), shardshuffle=False, empty_check=False, nodesplitter=_every_shard)
                .map(plain_key).to_tuple(*(f"{f}.npy" for f in fields)))
    for sample in pipeline.map_tuple(*[_npy] * len(fields)):
        for column, value in zip(columns, sample):
            column.append(value)
    stacked = tuple(np.stack(c) for c in columns)
    for array in stacked:
        array.flags.writeable = False  # shared by every caller of the cache
    return stacked


def load_split_arrays(data_dir: str | Path, split: str, fields: list[str]) -> dict[str, np.ndarray]:
    """Stack the `.npy` members named by `fields` over a whole split, in key order.

    For small tabular datasets that fit in memory (XOR). Shards are read in
    manifest order without shuffling, so rows come out in key order. Results
    are cached per (content digest, split), so a bench that trains several
    models on one dataset decodes it once. The rows must be as many as the
    manifest says.
    """
    manifest = load_manifest(data_dir)
    arrays = _stack(manifest["content_digest"], tuple(split_urls(data_dir, split)), tuple(fields))
    expected = manifest["splits"][split]["samples"]
    if arrays and len(arrays[0]) != expected:
        raise manifests.DatasetError(f"{data_dir}: split {split} reads as {len(arrays[0])} rows, the manifest "
                                     f"says {expected}")
    return dict(zip(fields, arrays))
