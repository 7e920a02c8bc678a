"""Build one shard: the unit of work every engine runs.

`run_shard` is a pure function of (builder class, config, spec, folder), so an
engine only has to call it for every pending spec, in any order, on any
machine sharing the folder. A shard's stats JSON is written last and is the
only thing resume trusts. A shard bound for an object store is built in a local
staging folder and uploaded file by file, the stats file last.
"""

from __future__ import annotations

import json
from pathlib import Path

from polymodal.builders.core import storage
from polymodal.builders.core.base import Builder, ShardSpec
from polymodal.builders.core.storage import Location
from polymodal.builders.core.tarshards import TarSamples, write_atomic, write_tar


def run_shard(builder_cls: type[Builder], config: dict, spec: ShardSpec, out_dir: str) -> dict:
    """Build one shard: the tar of good rows, the row table if any, then the stats file.

    `builder_cls` travels by reference (module and name), so a worker process
    or a Dask task rebuilds the builder from its config alone. A shard whose tar
    exists already (a retry, or a run killed before its stats file) is rebuilt
    from that tar's samples; the folder's claim says they come from the same dataset.
    """
    builder = builder_cls(builder_cls.Config(**config))
    stem = spec.stem(builder.prefix)
    with storage.staging(out_dir) as out:  # a remote shard is built locally, then uploaded
        if storage.is_remote(out_dir) and storage.is_file(storage.join(out_dir, f"{stem}.tar")):
            storage.get_file(storage.join(out_dir, f"{stem}.tar"), out / f"{stem}.tar")
        stats = _build_shard(builder, spec, out, stem)
        names = [f"{stem}.tar", *([f"{stem}.rows.parquet"] if builder.row_table else []), f"{stem}.stats.json"]
        storage.publish(out, out_dir, names)
    return stats


def _build_shard(builder: Builder, spec: ShardSpec, out: Path, stem: str) -> dict:
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


def is_done(out_dir: Location, builder: Builder, spec: ShardSpec) -> bool:
    """Whether the shard's stats file exists and its tar still is what the stats say (size and sha256):
    a shard truncated or altered since is built again."""
    stem = spec.stem(builder.prefix)
    stats_path, tar = storage.join(out_dir, f"{stem}.stats.json"), storage.join(out_dir, f"{stem}.tar")
    if not (storage.is_file(stats_path) and storage.is_file(tar)):
        return False
    try:
        stats = json.loads(storage.read_bytes(stats_path))
        done = storage.stat(tar)[0] == stats["bytes"] and storage.sha256(tar) == stats["sha256"]
    except (ValueError, KeyError):
        done = False
    if not done:  # neither is trusted any more: the shard is made from scratch
        storage.remove(stats_path)
        storage.remove(tar)
    return done


def has_failures(out_dir: Location, builder: Builder, spec: ShardSpec) -> bool:
    return json.loads(storage.read_bytes(storage.join(out_dir, f"{spec.stem(builder.prefix)}.stats.json")))["failed"] > 0
