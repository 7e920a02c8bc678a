"""Run a builder: build the shards that are not done yet, then write the manifest and the card.

The unit of work is one shard. `run_shard` is a pure function of (builder
name, config, spec, folder), so an engine only has to call it for every
pending spec; it may do so in any order, on any machine sharing the folder.
A shard's stats JSON is written last and is the only thing resume trusts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

from tqdm import tqdm

from builders.base import Builder, ShardSpec
from builders.cards import render_card
from builders.manifest import make_manifest, read_stats, write_manifest
from builders.tarshards import TarSamples, write_atomic, write_tar

BUILD_LOCK = ".polymodal-build.json"  # which dataset a folder is being built into


def _make_builder(name: str, config: dict) -> Builder:
    from builders import BUILDERS

    cls = BUILDERS[name]
    return cls(cls.Config(**config))


def run_shard(builder_name: str, config: dict, spec: ShardSpec, out_dir: str) -> dict:
    """Build one shard: the tar of good rows, the row table if any, then the stats file.

    A shard whose tar exists already (a retry, or a run killed before its
    stats file) is rebuilt from that tar's samples; the folder's lock says
    they come from the same dataset.
    """
    builder = _make_builder(builder_name, config)
    out = Path(out_dir)
    stem = spec.stem(builder.prefix)
    rows = []
    expected = set(builder.fields)

    def good_samples(made):
        for row in made:
            rows.append(row)
            if not row.ok:
                continue
            if set(row.sample) != expected:
                raise ValueError(f"{builder.name}: sample {row.key} has fields {sorted(row.sample)}, expected {sorted(expected)}")
            yield {"__key__": row.key, **row.sample}

    with TarSamples(out / f"{stem}.tar") as previous:
        made = builder.rebuild_shard(spec, previous) if previous else builder.make_shard(spec)
        tar = write_tar(out / f"{stem}.tar", good_samples(made))
    errors: dict[str, int] = {}
    for row in rows:
        if not row.ok:
            errors[row.error_kind] = errors.get(row.error_kind, 0) + 1
    if builder.row_table:
        _write_row_table(out / f"{stem}.rows.parquet", rows)
    stats = {
        "path": f"{stem}.tar",
        "split": spec.split,
        "index": spec.index,
        "rows": len(rows),
        "failed": len(rows) - tar["samples"],
        "errors": dict(sorted(errors.items())),
        **tar,
    }
    write_atomic(out / f"{stem}.stats.json", (json.dumps(stats, indent=2, sort_keys=True) + "\n").encode())
    return stats


def _write_row_table(path: Path, rows: list) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "key": [r.key for r in rows],
            "status": ["ok" if r.ok else "failed" for r in rows],
            "error_kind": [r.error_kind for r in rows],
            "message": [r.message for r in rows],
            "info": [json.dumps(r.info, sort_keys=True) for r in rows],
        }
    )
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def is_done(out_dir: Path, builder: Builder, spec: ShardSpec) -> bool:
    stem = spec.stem(builder.prefix)
    return (out_dir / f"{stem}.stats.json").is_file() and (out_dir / f"{stem}.tar").is_file()


def has_failures(out_dir: Path, builder: Builder, spec: ShardSpec) -> bool:
    return json.loads((out_dir / f"{spec.stem(builder.prefix)}.stats.json").read_text())["failed"] > 0


def _claim(out_dir: Path, builder: Builder) -> None:
    """Refuse to mix two datasets in one folder; record which one this folder holds."""
    lock = out_dir / BUILD_LOCK
    ident = {"dataset_id": builder.dataset_id(), "builder": builder.name, "config": builder.config_dict()}
    if lock.is_file():
        held = json.loads(lock.read_text())
        if held["dataset_id"] != ident["dataset_id"]:
            raise SystemExit(
                f"{out_dir} already holds dataset {held['dataset_id']} ({held['builder']}, config {held['config']}); "
                f"this config gives {ident['dataset_id']}. Use another --out, or delete the folder."
            )
        return
    write_atomic(lock, (json.dumps(ident, indent=2, sort_keys=True) + "\n").encode())


Engine = Callable[[str, dict, list[ShardSpec], str, int], Iterable[dict]]


def local_engine(name: str, config: dict, specs: list[ShardSpec], out_dir: str, workers: int) -> Iterable[dict]:
    """The default engine: in-process for one worker, else a process pool over shard ids."""
    if workers <= 1:
        for spec in specs:
            yield run_shard(name, config, spec, out_dir)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_shard, name, config, spec, out_dir) for spec in specs]
        for future in as_completed(futures):
            yield future.result()


def dask_engine(name: str, config: dict, specs: list[ShardSpec], out_dir: str, workers: int) -> Iterable[dict]:
    from builders.engines import dask_engine as run  # imported on use: a plain install has no dask

    return run(name, config, specs, out_dir, workers)


ENGINES: dict[str, Engine] = {"local": local_engine, "dask": dask_engine}


def build(builder: Builder, out_dir: str | Path, workers: int = 1, engine: str = "local", progress: bool = True,
          retry_failed: bool = False) -> dict:
    """Build (or finish building) `builder`'s dataset into `out_dir`; return the manifest.

    `retry_failed` also rebuilds finished shards that have failed rows.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    builder.check_environment()
    _claim(out, builder)
    for stale in out.rglob("*.tmp"):  # left by a killed run; never trusted
        stale.unlink()
    specs = builder.plan()
    pending = [s for s in specs if not is_done(out, builder, s) or (retry_failed and has_failures(out, builder, s))]
    if pending:
        builder.prepare()
    total = sum(s.count for s in pending)
    with tqdm(total=total, unit="row", desc=f"{builder.name} -> {out}", disable=not progress or total == 0) as bar:
        for stats in ENGINES[engine](builder.name, builder.run_config(), pending, str(out), workers):
            bar.update(stats["rows"])
    manifest = make_manifest(builder, read_stats(out, builder))
    info = builder.manifest_info()
    if info:
        manifest["info"] = info
    write_manifest(out, manifest)
    write_atomic(out / "README.md", render_card(builder, manifest).encode())
    return manifest
