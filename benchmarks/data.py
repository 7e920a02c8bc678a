"""Reading built datasets: manifests, and whole splits as arrays through webdataset."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np

from polymodal.builders.core.manifest import load_manifest

__all__ = ["load_manifest", "load_split_arrays", "split_urls"]


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
def _stack(dataset_id: str, urls: tuple[str, ...], fields: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    import webdataset as wds

    columns: list[list[np.ndarray]] = [[] for _ in fields]
    # Every rank loads the whole split; the trainer gives each rank its part of every batch.
    pipeline = wds.WebDataset(list(urls), shardshuffle=False, empty_check=False, nodesplitter=_every_shard).to_tuple(*(f"{f}.npy" for f in fields))
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
    are cached per (dataset id, split), so a bench that trains several models
    on one dataset decodes it once.
    """
    dataset_id = load_manifest(data_dir)["dataset_id"]
    arrays = _stack(dataset_id, tuple(split_urls(data_dir, split)), tuple(fields))
    return dict(zip(fields, arrays))
