"""Where datasets live: a local folder, or a prefix on an object store named by an fsspec URL (`s3://…`, `gs://…`).

Plain paths and `file://` URLs stay local and keep the local guarantees (fsync, `os.replace`, the folder lock).
Remote URLs go through fsspec, which takes its options from the environment as usual: the backend's credentials
(AWS_ACCESS_KEY_ID, …), and `FSSPEC_S3_ENDPOINT_URL` or AWS_ENDPOINT_URL for an S3 API other than AWS's.
An object store has no rename: a remote write goes to a temporary key and is then moved (copied and deleted)
onto its name, so a reader never sees a half object under the real name.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import posixpath
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterator

from polymodal.builders.core.tarshards import sha256_file, write_atomic

Location = str | Path
STAGING_ENV = "POLYMODAL_STAGING"  # where shards bound for an object store are built first (default: the temp dir)
TMP = ".tmp"  # what every temporary name ends with, local or remote: a resumed build removes what a killed one left
# What names an object's version, by backend (S3's ETag, GCS's generation, else a modification time).
_VERSION_KEYS = ("ETag", "etag", "generation", "LastModified", "mtime", "updated", "created")


class StorageError(SystemExit):
    """An object store that cannot be reached, refuses us, or lacks the bucket: one line, no traceback."""


def local_path(location: Location) -> Path | None:
    """The local path of a plain path or `file://` URL; None for a remote URL."""
    if isinstance(location, Path):
        return location
    import fsspec.core

    protocol, path = fsspec.core.split_protocol(location)
    return Path(path) if protocol in (None, "file", "local") else None


def is_remote(location: Location) -> bool:
    return local_path(location) is None


def join(location: Location, *parts: str) -> Location:
    """`location / parts`: a Path for a local location, a URL for a remote one."""
    local = local_path(location)
    if local is not None:
        return local.joinpath(*parts)
    return posixpath.join(str(location).rstrip("/"), *parts)


def canonical(location: Location) -> str:
    """One name per dataset, for caches: the resolved local path, or the URL without a trailing slash."""
    local = local_path(location)
    return str(local.resolve()) if local is not None else str(location).rstrip("/")


@contextlib.contextmanager
def _reported(url: str, doing: str):
    """Turn what the backend raises into one line naming the URL; a missing key stays a FileNotFoundError."""
    try:
        yield
    except StorageError:
        raise
    except ImportError as err:
        raise StorageError(f"{url}: {doing} needs the fsspec backend {err.name or 'for this URL'}; install it "
                           "(e.g. pip install 'polymodal[s3]' for s3://)") from None
    except FileNotFoundError as err:
        if "bucket" in str(err).lower():
            raise StorageError(f"{url}: {doing}: {err} (create the bucket first)") from None
        raise
    except Exception as err:  # botocore, aiohttp, google-auth: each backend has its own exceptions
        detail = (str(err).strip().splitlines() or [""])[0]
        raise StorageError(f"{url}: {doing} failed: {type(err).__name__}: {detail}") from None


def _fs(url: str):
    import fsspec.core

    with _reported(url, "opening"):
        return fsspec.core.url_to_fs(url)


def is_file(location: Location) -> bool:
    local = local_path(location)
    if local is not None:
        return local.is_file()
    fs, path = _fs(str(location))
    with _reported(str(location), "reading"):
        try:
            return fs.info(path)["type"] == "file"  # not fs.isfile, which says False for a store it cannot reach
        except FileNotFoundError:
            return False


def holds_anything(location: Location) -> bool:
    """Whether the folder (or prefix) exists and holds something."""
    local = local_path(location)
    if local is not None:
        return local.exists()
    return bool(find(location))


def read_bytes(location: Location) -> bytes:
    local = local_path(location)
    if local is not None:
        return local.read_bytes()
    fs, path = _fs(str(location))
    with _reported(str(location), "reading"):
        return fs.cat_file(path)


def stat(location: Location) -> tuple[int, str | int]:
    """(size, version): the version changes whenever the content may have (local mtime_ns; remote ETag or the
    like)."""
    local = local_path(location)
    if local is not None:
        st = local.stat()
        return st.st_size, st.st_mtime_ns
    fs, path = _fs(str(location))
    with _reported(str(location), "reading"):
        info = fs.info(path)
    return int(info["size"]), _version(info)


def sha256(location: Location) -> str:
    local = local_path(location)
    if local is not None:
        return sha256_file(local)
    h = hashlib.sha256()
    with open_read(location) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def open_read(location: Location) -> Iterator:
    """A binary file to read, streamed from the store for a remote location."""
    local = local_path(location)
    if local is not None:
        with open(local, "rb") as f:
            yield f
        return
    fs, path = _fs(str(location))
    with _reported(str(location), "reading"), fs.open(path, "rb", block_size=1 << 22) as f:
        yield f


def find(location: Location, suffix: str = "") -> list[str]:
    """The files below `location` whose names end with `suffix`, as sorted posix paths relative to it."""
    local = local_path(location)
    if local is not None:
        return sorted(p.relative_to(local).as_posix() for p in local.rglob(f"*{suffix}") if p.is_file())
    return [name for name, _, _ in listing(location, suffix)]


def listing(location: Location, suffix: str = "") -> list[tuple[str, int, str | int]]:
    """(relative path, size, version) of each file below `location` ending with `suffix`, sorted by path: one
    listing request on an object store."""
    local = local_path(location)
    if local is not None:
        return [(name, *stat(local / name)) for name in find(local, suffix)]
    fs, path = _fs(str(location))
    path = path.rstrip("/")
    with _reported(str(location), "listing"):
        try:
            found = fs.find(path, detail=True)
        except FileNotFoundError:
            return []
        finally:  # not kept: other processes (the workers, the next command) write here too
            fs.invalidate_cache()  # (all of it: a find lists every folder below)
    return sorted((posixpath.relpath(key, path), int(info["size"]), _version(info))
                  for key, info in found.items() if key.endswith(suffix))


def _version(info: dict) -> str:
    return next((str(info[k]) for k in _VERSION_KEYS if info.get(k)), "")


def remove(location: Location) -> None:
    local = local_path(location)
    if local is not None:
        local.unlink(missing_ok=True)
        return
    fs, path = _fs(str(location))
    with _reported(str(location), "deleting"), contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)


def remove_tree(location: Location) -> None:
    """Delete the objects below a remote prefix (the local case is shutil.rmtree's); never the bucket itself."""
    fs, path = _fs(str(location))
    keys = [posixpath.join(path.rstrip("/"), name) for name in find(location)]
    if keys:
        with _reported(str(location), "deleting"), contextlib.suppress(FileNotFoundError):
            fs.rm(keys)


def _temporary(path: str) -> str:
    # A uuid, not a pid: the workers of one remote build may run on many machines.
    return f"{path}.{uuid.uuid4().hex}{TMP}"


def put_bytes(location: Location, data: bytes) -> None:
    """Write `data` to `location` whole or not at all; a local folder is made as an object store needs none."""
    local = local_path(location)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(local, data)
        return
    fs, path = _fs(str(location))
    tmp = _temporary(path)
    with _reported(str(location), "writing"):
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)


def put_file(source: Path, location: Location) -> None:
    """Upload the local file `source` to the remote `location`, whole or not at all."""
    fs, path = _fs(str(location))
    tmp = _temporary(path)
    with _reported(str(location), "writing"):
        fs.put_file(str(source), tmp)
        fs.mv(tmp, path)


def get_file(location: Location, target: Path) -> None:
    fs, path = _fs(str(location))
    target.parent.mkdir(parents=True, exist_ok=True)
    with _reported(str(location), "reading"):
        fs.get_file(path, str(target))


@contextlib.contextmanager
def staging(location: Location) -> Iterator[Path]:
    """The local folder to build into: `location` itself when local, else a fresh folder under $POLYMODAL_STAGING
    (or the temp dir) that is removed afterwards, once its files are published."""
    local = local_path(location)
    if local is not None:
        yield local
        return
    root = os.environ.get(STAGING_ENV) or None
    if root:
        Path(root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="polymodal-staging-", dir=root) as folder:
        yield Path(folder)


def publish(staged: Path, location: Location, names: list[str]) -> None:
    """Upload `names` (relative to `staged`) to the remote `location` in the order given, each atomically: the
    done-marker goes last. Nothing to do when `staged` is `location` itself."""
    if local_path(location) is not None:
        return
    for name in names:
        put_file(staged / name, join(location, name))


def location_type(local: Callable[[str], Path]) -> Callable[[str], Location]:
    """An argparse type: a remote URL as given, else what `local` makes of the path (a `file://` URL's too)."""

    def parse(text: str) -> Location:
        path = local_path(text)
        return local(str(path)) if path is not None else text.rstrip("/")

    return parse


def dataset_type(holding: str, local: Callable[[str], Path]) -> Callable[[str], Location]:
    """An argparse type for a built dataset: a local folder as `local` checks it, or a remote URL whose prefix holds
    `holding` (asked of the store now, so that a bad URL is one line before anything runs)."""
    as_location = location_type(local)

    def parse(text: str) -> Location:
        location = as_location(text)
        if is_remote(location):
            try:
                found = is_file(join(location, holding))
            except StorageError as err:
                raise argparse.ArgumentTypeError(str(err)) from None
            if not found:
                raise argparse.ArgumentTypeError(f"{location} holds no {holding}: is it a dataset built by "
                                                 "`polymodal build`?")
        return location

    return parse
