"""The feature cache: frozen features of a dataset split, computed once, shard by shard, on every rank.

    CACHE/<dataset_id>/<encoder>/<split>.safetensors     the split's arrays, rows in key order
        metadata "polymodal": JSON of encoder, dataset_id and the featurizer's info; one
        key, because safetensors writes several in a random order and the file
        should be the same bytes every time
    CACHE/<dataset_id>/<encoder>/<split>.parts/          pieces of a split being computed

CACHE is --out, else $POLYMODAL_FEATURES (CACHE_ENV), else ~/.cache/polymodal/features.
Every file is written under a temporary name and renamed, so a killed run
never leaves a half file that a later one trusts; an existing file is reused.

Every rank lists the split's shards in manifest order, shuffles them with the
same seed (webdataset's detshuffle, so every rank draws the same order), and
keeps its own share (split_by_node); its DataLoader workers split that share
again (split_by_worker) and run ``prepare`` (decoding, CPU preprocessing). The
rank's main process runs ``encode`` (frozen models, on the rank's device) and
writes one piece per shard:

    <split>.parts/<shard stem>.safetensors     so a killed run resumes at the shard it lost

When every rank is done, rank 0 checks each piece against the manifest's count
and joins them in manifest order into the split's file, so the file is the
same whatever the number of ranks and workers. Pieces are read from the cache
folder, which must therefore be shared by every node.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from polymodal.benchmarks.data import load_manifest, plain_key
from polymodal.builders import schema

if TYPE_CHECKING:
    from polymodal.benchmarks.featurize import Featurizer

BATCH = 64
META = "polymodal"  # the cache file's one metadata key
CACHE_ENV = "POLYMODAL_FEATURES"  # the cache folder where --out names none
DEFAULT_CACHE = "~/.cache/polymodal/features"
RawSample = tuple[bytes, bytes, str, dict]  # (jpeg, flac, text, meta) of one sample, as its shard holds it


def cache_root(out: str | Path | None = None) -> Path:
    return Path(out or os.environ.get(CACHE_ENV) or Path(DEFAULT_CACHE).expanduser())


def cache_path(data_dir, encoder: str, split: str, out=None) -> Path:
    # Keyed by what was built, not only by what defines it: a rebuild with other tool versions gets its own.
    return cache_root(out) / load_manifest(data_dir)["content_digest"] / encoder / f"{split}.safetensors"


def _raw_samples(samples: Iterable[dict]) -> Iterable[RawSample]:
    for s in map(plain_key, samples):
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
    import webdataset as wds

    for shard in shards:
        rows: list[RawSample] = []
        for row in _raw_samples(wds.tarfile_to_samples()(iter([{"url": shard["url"]}]))):
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


def _piece(parts: Path, shard: dict) -> Path:
    return parts / f"{Path(shard['url']).stem}.safetensors"


def _save(arrays: dict[str, np.ndarray], path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.numpy import save_file

    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata=metadata)
    tmp.replace(path)


def read_cache(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """A cache file's arrays and the info its featurizer recorded."""
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        written = json.loads((f.metadata() or {}).get(META, "null"))
        if written is None:
            raise SystemExit(f"{path} was written by an older polymodal; delete it to recompute")
        return {k: f.get_tensor(k) for k in f.keys()}, written["info"]


def cached_split(data_dir, encoder: str, split: str, make_featurizer: Callable[[], Featurizer], out=None, *,
                 workers: int = 0, seed: int = 0, progress: bool = False) -> Path:
    """The cache file of (data_dir, encoder, split); if absent, computed, resuming from its pieces.

    ``make_featurizer()`` is called only then (see benchmarks.featurize.Featurizer
    for what it returns). Collective under torch.distributed: every rank must
    call it, and every rank returns once the file exists.
    """
    import torch.distributed as dist

    path = cache_path(data_dir, encoder, split, out)
    if path.is_file():
        return path
    featurizer = make_featurizer()
    manifest = load_manifest(data_dir)
    parts = path.with_suffix(".parts")
    shards = [{**s, "url": str(Path(data_dir) / s["path"])} for s in manifest["shards"] if s["split"] == split]
    _featurize_shards(shards, split, parts, featurizer, workers=workers, seed=seed, progress=progress)
    distributed = dist.is_available() and dist.is_initialized()
    if distributed:
        dist.barrier()  # every rank's pieces are written
    if not distributed or dist.get_rank() == 0:
        meta = {"encoder": encoder, "dataset_id": manifest["dataset_id"], "content_digest": manifest["content_digest"],
                "info": featurizer.info}
        _save(_join(shards, parts, data_dir, split), path, {META: json.dumps(meta, sort_keys=True)})
        shutil.rmtree(parts)
    if distributed:
        dist.barrier()  # the file exists before any rank reads it
    return path


def _featurize_shards(shards: list[dict], split: str, parts: Path, featurizer, *, workers: int, seed: int,
                      progress: bool) -> None:
    """Write the pieces of this rank's shards that are not written yet."""
    import torch
    import webdataset as wds

    from polymodal.progress import progress_bar

    parts.mkdir(parents=True, exist_ok=True)
    todo = {s["url"]: s for s in node_shards(shards, seed) if not _piece(parts, s).is_file()}
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
            _save(joined, _piece(parts, todo[item["url"]]))
            del pending[item["url"]]
            bar.update()


def _join(shards: list[dict], parts: Path, data_dir, split: str) -> dict[str, np.ndarray]:
    """The pieces in manifest order, into arrays sized once from the manifest (a split's features may not fit twice)."""
    from safetensors.numpy import load_file

    missing = [s["path"] for s in shards if not _piece(parts, s).is_file()]
    if missing:
        raise SystemExit(f"{parts}: no features for shards {missing}; under torchrun on several nodes the feature "
                         "cache must be a folder every node shares")
    arrays: dict[str, np.ndarray] = {}
    total, done = sum(s["samples"] for s in shards), 0
    for shard in shards:
        piece = load_file(str(_piece(parts, shard)))
        n = len(next(iter(piece.values()))) if piece else 0
        if n != shard["samples"]:
            raise SystemExit(f"{data_dir}: shard {shard['path']} holds {n} samples, the manifest "
                             f"{shard['samples']}; run `polymodal verify {data_dir}`")
        for k, v in piece.items():
            if k not in arrays:
                arrays[k] = np.empty((total, *v.shape[1:]), v.dtype)
            arrays[k][done : done + n] = v
        done += n
    if not arrays:
        raise SystemExit(f"{data_dir}: split {split} has no samples")
    return arrays
