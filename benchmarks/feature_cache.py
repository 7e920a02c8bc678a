"""The feature cache: frozen features of a dataset split, computed once, a file per shard, on every rank.

    CACHE/<content digest>/<encoder>/<split>/<shard stem>.safetensors   one shard's arrays, rows in key order
    CACHE/<content digest>/<encoder>/<split>.json    the index, written last: encoder, dataset_id, content
        digest, the featurizer's info, and each shard's file and row count (checked against the manifest)

CACHE is a folder or an fsspec URL (`s3://bucket/features`: builders.core.storage), a prefix that every node of
a cluster shares.

The pieces are the cache: a split is never joined into one file, so training streams it a shard at a time
(benchmarks.streaming). CACHE is --out, else $POLYMODAL_FEATURES (CACHE_ENV), else
~/.cache/polymodal/features. Every file is written under a temporary name (key) and renamed (moved), so a
killed run never leaves a half file that a later one trusts; a split without its index resumes at the shards it
lacks.

Every rank lists the split's shards in manifest order, shuffles them with the same seed (webdataset's
detshuffle, so every rank draws the same order), and keeps its own share (split_by_node); its DataLoader
workers split that share again (split_by_worker) and run ``prepare`` (decoding, CPU preprocessing). The
rank's main process runs ``encode`` (frozen models, on the rank's device) and writes the shard's file. When
every rank is done, rank 0 checks each file's rows against the manifest and writes the index, so the cache is
the same whatever the number of ranks and workers. Under torchrun on several nodes CACHE must be a folder
every node shares, or an object store.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from polymodal.benchmarks.data import load_manifest, shard_samples
from polymodal.builders import schema
from polymodal.builders.core import storage
from polymodal.builders.core.storage import Location

if TYPE_CHECKING:
    from polymodal.benchmarks.featurize import Featurizer

BATCH = 64
CACHE_ENV = "POLYMODAL_FEATURES"  # the cache folder where --out names none
DEFAULT_CACHE = "~/.cache/polymodal/features"
RawSample = tuple[bytes, bytes, str, dict]  # (jpeg, flac, text, meta) of one sample, as its shard holds it


def cache_root(out: Location | None = None) -> Location:
    """--out, else $POLYMODAL_FEATURES, else the default: a local Path, or a URL as given."""
    root = out or os.environ.get(CACHE_ENV) or Path(DEFAULT_CACHE).expanduser()
    return storage.local_path(root) or str(root).rstrip("/")


def cache_path(data_dir, encoder: str, split: str, out=None) -> Location:
    """The split's index; its shards' files are in the folder of the same name."""
    # Keyed by what was built, not only by what defines it: a rebuild with other tool versions gets its own.
    return storage.join(cache_root(out), load_manifest(data_dir)["content_digest"], encoder, f"{split}.json")


def _pieces_folder(index: Location) -> Location:
    return index.with_suffix("") if isinstance(index, Path) else index.removesuffix(".json")


def _raw_samples(samples: Iterable[dict]) -> Iterable[RawSample]:
    for s in samples:
        yield s[schema.IMAGE], s[schema.AUDIO], s[schema.TEXT].decode(), json.loads(s[schema.META])


def node_shards(shards: list[dict], seed: int) -> list[dict]:
    """This rank's shards: all of them, shuffled alike on every rank, then every world_size-th."""
    import webdataset as wds

    stages = wds.DataPipeline(wds.SimpleShardList([s["url"] for s in shards]),
                              wds.detshuffle(bufsize=max(1, len(shards)), initial=len(shards), seed=seed), wds.split_by_node)
    by_url = {s["url"]: s for s in shards}
    return [by_url[s["url"]] for s in stages]


def _prepared(shards: Iterable[dict], prepare: Callable[[list[RawSample]], dict], batch: int):
    """Per shard, its prepared batches, then an end mark (a shard may have no rows)."""
    for shard in shards:
        rows: list[RawSample] = []
        for row in _raw_samples(shard_samples(shard["url"])):
            rows.append(row)
            if len(rows) == batch:
                yield {"url": shard["url"], "arrays": _one_thread(prepare, rows)}
                rows = []
        if rows:
            yield {"url": shard["url"], "arrays": _one_thread(prepare, rows)}
        yield {"url": shard["url"], "end": True}


def _one_thread(prepare: Callable[[list[RawSample]], dict], rows: list[RawSample]) -> dict:
    # A multi-threaded BLAS sums a mel projection in an order that depends on its thread count,
    # which would change the features' last bits from machine to machine; workers parallelise instead.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return prepare(rows)


def _as_is(item):
    return item  # the loader must not turn the numpy arrays into tensors


def _piece_name(shard: dict) -> str:
    return f"{posixpath.splitext(posixpath.basename(shard['url']))[0]}.safetensors"


def _save(arrays: dict[str, np.ndarray], location: Location) -> None:
    from safetensors.numpy import save

    storage.put_bytes(location, save({k: np.ascontiguousarray(v) for k, v in arrays.items()}))


def read_index(path: Location) -> dict:
    """A split's cache index: encoder, dataset_id, content digest, the featurizer's info and its pieces."""
    try:
        return json.loads(storage.read_bytes(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SystemExit(f"{path} is no feature-cache index ({err}); delete it to recompute") from None


def piece_files(path: Location) -> list[tuple[Location, int]]:
    """Each shard's feature file of the split whose index is `path`, with its row count, in manifest order."""
    return [(storage.join(_pieces_folder(path), p["file"]), p["rows"]) for p in read_index(path)["pieces"]]


def read_piece(location: Location) -> dict[str, np.ndarray]:
    from safetensors.numpy import load, load_file

    local = storage.local_path(location)
    return load_file(str(local)) if local is not None else load(storage.read_bytes(location))


def _piece_rows(location: Location) -> set[int]:
    """The row counts of a feature file's arrays, from its safetensors header alone (no arrays are read): an
    8-byte little-endian length, then a JSON object of each array's dtype, shape and offsets."""
    try:
        with storage.open_read(location) as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        return {entry["shape"][0] for name, entry in header.items() if name != "__metadata__"} or {0}
    except (ValueError, LookupError, TypeError, AttributeError) as err:  # a damaged or foreign file
        raise SystemExit(f"{location} is no safetensors file ({type(err).__name__}: {err}); delete it to recompute") from None


def read_cache(path: Location) -> tuple[dict[str, np.ndarray], dict]:
    """A cached split's arrays joined in memory, and the info its featurizer recorded: for splits that fit."""
    pieces = [read_piece(file) for file, _ in piece_files(path)]
    pieces = [p for p in pieces if p]  # a shard without rows has a file without arrays
    arrays = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]} if pieces else {}
    return arrays, read_index(path)["info"]


def cached_split(data_dir, encoder: str, split: str, make_featurizer: Callable[[], Featurizer], out=None, *,
                 workers: int = 0, seed: int = 0, progress: bool = False) -> Location:
    """The cache index of (data_dir, encoder, split); if absent, computed, resuming from the shards done.

    ``make_featurizer()`` is called only then (see benchmarks.featurize.Featurizer
    for what it returns). Collective under torch.distributed: every rank must
    call it, and every rank returns once the index exists.
    """
    import torch.distributed as dist

    path = cache_path(data_dir, encoder, split, out)
    if storage.is_file(path):
        return path
    featurizer = make_featurizer()
    manifest = load_manifest(data_dir)
    folder = _pieces_folder(path)
    # Full URLs for a dataset on an object store.
    shards = [{**s, "url": str(storage.join(data_dir, s["path"]))} for s in manifest["shards"] if s["split"] == split]
    _featurize_shards(shards, split, folder, featurizer, workers=workers, seed=seed, progress=progress)
    distributed = dist.is_available() and dist.is_initialized()
    if distributed:
        dist.barrier()  # every rank's pieces are written
    if not distributed or dist.get_rank() == 0:
        index = {"encoder": encoder, "dataset_id": manifest["dataset_id"], "content_digest": manifest["content_digest"],
                 "info": featurizer.info, "pieces": _checked_pieces(shards, folder, data_dir, split)}
        storage.put_bytes(path, (json.dumps(index, indent=1, sort_keys=True) + "\n").encode())
    if distributed:
        dist.barrier()  # the index exists before any rank reads it
    return path


def _featurize_shards(shards: list[dict], split: str, folder: Location, featurizer, *, workers: int, seed: int,
                      progress: bool) -> None:
    """Write the files of this rank's shards that are not written yet."""
    import torch
    import webdataset as wds

    from polymodal.progress import progress_bar

    written = set(storage.find(folder, ".safetensors"))  # one listing, not a request per shard
    todo = {s["url"]: s for s in node_shards(shards, seed) if _piece_name(s) not in written}
    if not todo:
        return
    pipeline = wds.DataPipeline(wds.SimpleShardList(list(todo)), wds.split_by_worker,
                                functools.partial(_prepared, prepare=featurizer.prepare, batch=BATCH))
    loader = torch.utils.data.DataLoader(pipeline, batch_size=None, num_workers=workers, collate_fn=_as_is)
    pending: dict[str, list[dict]] = {}
    shown = progress and int(os.environ.get("RANK", 0)) == 0  # one bar, rank 0's, under torchrun
    with progress_bar(total=len(todo), desc=f"featurize {split}", unit="shard", shown=shown) as bar:
        for item in loader:
            batches = pending.setdefault(item["url"], [])
            if "end" not in item:
                batches.append(featurizer.encode(item["arrays"]))
                continue
            joined = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]} if batches else {}
            _save(joined, storage.join(folder, _piece_name(todo[item["url"]])))
            del pending[item["url"]]
            bar.update()


def _checked_pieces(shards: list[dict], folder: Location, data_dir, split: str) -> list[dict]:
    """Each shard's file and rows, in manifest order, once every file holds the rows the manifest says."""
    written = set(storage.find(folder, ".safetensors"))
    missing = [s["path"] for s in shards if _piece_name(s) not in written]
    if missing:
        raise SystemExit(f"{folder}: no features for shards {missing}; under torchrun on several nodes the feature "
                         "cache must be a folder every node shares")
    pieces = []
    for shard in shards:
        rows = _piece_rows(storage.join(folder, _piece_name(shard)))
        if rows != {shard["samples"]}:
            raise SystemExit(f"{data_dir}: shard {shard['path']} holds {' or '.join(map(str, sorted(rows)))} samples, the manifest "
                             f"{shard['samples']}; run `polymodal verify {data_dir}`")
        pieces.append({"file": _piece_name(shard), "shard": shard["path"], "rows": shard["samples"]})
    if not any(p["rows"] for p in pieces):
        raise SystemExit(f"{data_dir}: split {split} has no samples")
    return pieces
