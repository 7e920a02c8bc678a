"""Reading built datasets: manifests, and whole splits as tensors through webdataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from builders.manifest import load_manifest

__all__ = ["load_manifest", "load_split_arrays", "split_urls"]


def split_urls(data_dir: str | Path, split: str) -> list[str]:
    """The shard paths of one split, in manifest order."""
    manifest = load_manifest(data_dir)
    urls = [str(Path(data_dir) / s["path"]) for s in manifest["shards"] if s["split"] == split]
    if not urls and split not in manifest["splits"]:
        raise KeyError(f"{data_dir} has no split {split!r}; it has {sorted(manifest['splits'])}")
    return urls


def load_split_arrays(data_dir: str | Path, split: str, fields: list[str]) -> dict[str, np.ndarray]:
    """Stack the `.npy` members named by `fields` over a whole split, in key order.

    For small tabular datasets that fit in memory (XOR). Shards are read in
    manifest order without shuffling, so the rows come out in key order.
    """
    import webdataset as wds

    urls = split_urls(data_dir, split)
    columns: dict[str, list] = {f: [] for f in fields}
    if urls:
        dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode()
        for sample in dataset:
            for f in fields:
                columns[f].append(sample[f"{f}.npy"])
    return {f: np.stack(v) if v else np.zeros((0,)) for f, v in columns.items()}
