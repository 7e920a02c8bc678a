"""Run a builder: build the shards that are not done yet on an engine, then write the manifest and the card."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path

from polymodal.builders.core import storage
from polymodal.builders.core.base import Builder
from polymodal.builders.core.cards import render_card
from polymodal.builders.core.engines import ENGINES
from polymodal.builders.core.manifest import make_manifest, read_stats, write_manifest
from polymodal.builders.core.options import option_words
from polymodal.builders.core.shard import has_failures, is_done
from polymodal.builders.core.storage import Location
from polymodal.configfile import CONFIG_FILE, dump, from_flags
from polymodal.progress import progress_bar

BUILD_LOCK = ".polymodal-build.json"  # which dataset a folder is being built into
LOCK = ".polymodal.lock"  # held while a process writes the folder


def _claim(out_dir: Location, builder: Builder) -> None:
    """Refuse to mix two datasets in one folder; record which one this folder holds."""
    lock = storage.join(out_dir, BUILD_LOCK)
    ident = {"dataset_id": builder.dataset_id(), "builder": builder.name, "config": builder.config_dict()}
    if storage.is_file(lock):
        held = json.loads(storage.read_bytes(lock))
        if held["dataset_id"] != ident["dataset_id"]:
            raise SystemExit(
                f"{out_dir} already holds {held['builder']} dataset {held['dataset_id']}; this config gives "
                f"{ident['dataset_id']}. Use another --out, or delete the folder."
            )
        return
    storage.put_bytes(lock, (json.dumps(ident, indent=2, sort_keys=True) + "\n").encode())


class FolderBusy(SystemExit):
    """Another process holds the folder's lock."""


@contextlib.contextmanager
def folder_lock(folder: Path, what: str):
    """Hold `folder`'s exclusive lock (fcntl.flock) for the block; a second holder gets a one-line error
    naming the first one's PID. The kernel drops the lock when the holder dies, even by kill -9."""
    path = folder / LOCK
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise FolderBusy(f"{folder} is in use by {what} (pid {holder}); wait for it to finish") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:  # emptied, not removed (a waiting process may hold the inode): finished folders stay identical
            handle.truncate(0)


def build(builder: Builder, out_dir: Location, workers: int = 1, engine: str = "local", progress: bool = True,
          retry_failed: bool = False) -> dict:
    """Build (or finish building) `builder`'s dataset into `out_dir`, a folder or an fsspec URL; return the manifest.

    `retry_failed` also rebuilds finished shards that have failed rows. A build
    that fails in a folder it created removes the folder.
    """
    out = storage.local_path(out_dir)
    if out is None:
        return _build_remote(builder, str(out_dir).rstrip("/"), workers, engine, progress, retry_failed)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with folder_lock(out, "a build"):
            return _build(builder, out, workers, engine, progress, retry_failed)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _build_remote(builder: Builder, out: str, workers: int, engine: str, progress: bool, retry_failed: bool) -> dict:
    """The build into an object store, whose prefix has no lock to take: nothing keeps a second build out but the
    claim file, which refuses another dataset. Running one build per remote --out at a time is the user's part."""
    created = not storage.holds_anything(out)
    try:
        return _build(builder, out, workers, engine, progress, retry_failed)
    except BaseException:
        if created:
            storage.remove_tree(out)
        raise


def _build(builder: Builder, out: Location, workers: int, engine: str, progress: bool, retry_failed: bool) -> dict:
    builder.check_environment()
    _claim(out, builder)
    # Left by a killed run: no other build writes here (the lock says so locally; remotely, see _build_remote).
    for stale in storage.find(out, storage.TMP):
        storage.remove(storage.join(out, stale))
    specs = builder.plan()
    pending = [s for s in specs if not is_done(out, builder, s) or (retry_failed and has_failures(out, builder, s))]
    if pending:
        builder.prepare()
    total = sum(s.count for s in pending)
    with progress_bar(total=total, unit="row", desc=f"{builder.name} -> {out}", shown=progress and total > 0) as bar:
        for stats in ENGINES[engine](type(builder), builder.run_config(), pending, str(out), workers):
            bar.update(stats["rows"])
    manifest = make_manifest(builder, read_stats(out, builder))
    info = builder.manifest_info()
    if info:
        manifest["info"] = info
    write_manifest(out, manifest)
    storage.put_bytes(storage.join(out, "README.md"), render_card(builder, manifest).encode())
    # The options that define the data, for `polymodal build NAME --config OUT/config.yaml --out ELSEWHERE`;
    # not how it ran (a proxy or a cookies file stays private), nor OUT itself (identical builds, identical folders).
    config = dump(from_flags(option_words(builder.config, portable=False)))
    storage.put_bytes(storage.join(out, CONFIG_FILE), config.encode())
    return manifest


def summary(manifest: dict) -> str:
    """One line: rows that became samples, and the failed ones by kind."""
    rows = sum(s["rows"] for s in manifest["splits"].values())
    ok = sum(s["samples"] for s in manifest["splits"].values())
    failed = ", ".join(f"{kind} {n:,}" for kind, n in sorted(manifest["errors"].items(), key=lambda kv: -kv[1]))
    return f"{ok:,} of {rows:,} rows ok" + (f"; failed: {failed}" if failed else "")
