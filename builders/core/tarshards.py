"""Deterministic, atomic tar shards in WebDataset layout."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Iterable

import numpy as np

from polymodal.builders.core.disk import fatal_when_full

# Fixed tar metadata: the same samples always give the same bytes.
MTIME = 0
OWNER = "polymodal"


class _HashingFile(io.RawIOBase):
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, raw):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self):
        return True

    def write(self, data):
        self.raw.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


def write_tar(path: Path, samples: Iterable[dict[str, bytes]]) -> dict:
    """Write samples (each with `__key__`) to `path`, whole or not at all.

    Returns {"samples", "sha256", "bytes"}. Members are sorted inside each
    sample (by TarWriter) and samples are written in the order given, which
    callers keep sorted by key.
    """
    import webdataset as wds  # imported here: it loads torch, which `polymodal leaderboard` must not need

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    count = 0
    with fatal_when_full(path.parent, "the output folder"), _removed_unless_renamed(tmp):
        with open(tmp, "wb") as raw:
            sink = _HashingFile(raw)
            writer = wds.TarWriter(sink, user=OWNER, group=OWNER, mtime=MTIME, encoder=False)
            try:
                for sample in samples:
                    writer.write(sample)
                    count += 1
            finally:
                writer.close()  # also when a sample fails: else the tar stream flushes into a closed file at exit
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    return {"samples": count, "sha256": sink.sha256.hexdigest(), "bytes": sink.size}


@contextlib.contextmanager
def _removed_unless_renamed(tmp: Path):
    try:
        yield
    finally:
        tmp.unlink(missing_ok=True)


class TarSamples(Mapping):
    """The samples of a finished shard, {key: {field: bytes}}, read on demand; empty when there is no tar.

    Not thread-safe: members are read through the one open file.
    """

    def __init__(self, path: Path):
        self._tar = None
        self._members: dict[str, dict[str, tarfile.TarInfo]] = {}
        if not path.is_file():
            return
        try:
            self._tar = tarfile.open(path, "r")
            for member in self._tar:
                key, _, field = member.name.partition(".")
                self._members.setdefault(key, {})[field] = member
        except tarfile.TarError as err:
            self.close()
            raise SystemExit(
                f"cannot read {path} to reuse its samples ({err}); delete it to build the shard anew"
            ) from None

    def __getitem__(self, key: str) -> dict[str, bytes]:
        return {field: self._tar.extractfile(member).read() for field, member in self._members[key].items()}

    def __iter__(self):
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def __enter__(self) -> "TarSamples":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with fatal_when_full(path.parent, "the output folder"), _removed_unless_renamed(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def npy_rows(array: np.ndarray) -> list[bytes]:
    """`np.save` bytes of every row of `array`, sharing one header (much faster than np.save per row)."""
    buf = io.BytesIO()
    np.save(buf, array[0], allow_pickle=False)
    header = buf.getvalue()[: -array[0].nbytes]
    return [header + row.tobytes() for row in np.ascontiguousarray(array)]
