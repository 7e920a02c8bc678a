"""Run a builder: build the shards that are not done yet on an engine, then write the manifest and the card."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from polymodal.builders.core.base import Builder
from polymodal.builders.core.cards import render_card
from polymodal.builders.core.engines import ENGINES
from polymodal.builders.core.manifest import make_manifest, read_stats, write_manifest
from polymodal.builders.core.shard import has_failures, is_done
from polymodal.builders.core.tarshards import write_atomic

BUILD_LOCK = ".polymodal-build.json"  # which dataset a folder is being built into


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
        for stats in ENGINES[engine](type(builder), builder.run_config(), pending, str(out), workers):
            bar.update(stats["rows"])
    manifest = make_manifest(builder, read_stats(out, builder))
    info = builder.manifest_info()
    if info:
        manifest["info"] = info
    write_manifest(out, manifest)
    write_atomic(out / "README.md", render_card(builder, manifest).encode())
    return manifest
