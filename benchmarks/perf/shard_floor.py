"""The anchor of the builder benchmarks: a bare `tarfile` loop writing a shard's very bytes.

`time_against_floor` runs one shard through the builder's whole path
(`run_shard`: generate, encode, deterministic TarWriter, hash, fsync, rename,
stats), checks that a bare loop over the same members with the same metadata
writes the identical tar, then times both, interleaved, best of `repeats`.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import time
from pathlib import Path

from polymodal.builders.core.base import Builder, ShardSpec
from polymodal.builders.core.shard import run_shard
from polymodal.builders.core.tarshards import MTIME, OWNER


def time_against_floor(builder: Builder, spec: ShardSpec, repeats: int) -> dict[str, float]:
    """Seconds for the builder (first, cold run and best run) and for the floor (best run)."""

    def builder_path(folder: Path) -> None:
        run_shard(type(builder), builder.config_dict(), spec, str(folder))

    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        builder_path(Path(tmp))  # first: per-process caches are still empty
        cold = time.perf_counter() - began
        rows = list(builder.make_shard(spec))

        def floor(folder: Path) -> None:
            with tarfile.open(folder / "floor.tar", "w|") as tar:
                for row in rows:
                    for field in sorted(row.sample):
                        info = tarfile.TarInfo(f"{row.key}.{field}")
                        info.size, info.mtime, info.mode = len(row.sample[field]), MTIME, 0o444
                        info.uname = info.gname = OWNER
                        tar.addfile(info, io.BytesIO(row.sample[field]))

        floor(Path(tmp))
        if (Path(tmp) / "floor.tar").read_bytes() != (Path(tmp) / f"{spec.stem(builder.prefix)}.tar").read_bytes():
            raise SystemExit("the floor does not write the same bytes as the builder; the comparison would be unfair")

    best = {"builder": float("inf"), "floor": float("inf")}
    for _ in range(repeats):
        for name, fn in (("builder", builder_path), ("floor", floor)):
            with tempfile.TemporaryDirectory() as tmp:
                began = time.perf_counter()
                fn(Path(tmp))
                best[name] = min(best[name], time.perf_counter() - began)
    return {"cold": cold, **best, "megabytes": sum(len(v) for r in rows for v in r.sample.values()) / 1e6}
