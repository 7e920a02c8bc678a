"""Results folders on an object store: `--results s3://bucket/results` (any fsspec URL).

The prefix's JSON objects are copied into a temporary folder, under their names relative to it, and the board is
built from that copy, so every check of a local scan holds (scan.py, schema.load_result). An object over the
size limit is not downloaded: its copy is a sparse file of its size, which the validator rejects unread.
Credentials and endpoints come from the backend's environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...).
"""

from __future__ import annotations

import contextlib
import posixpath
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from polymodal.leaderboard.schema import MAX_FILE_BYTES
from polymodal.leaderboard.text import safe

Location = Path | str  # a local folder, or the URL of a prefix


def location(text: str) -> Location:
    """An argparse type: a URL with a scheme other than file:// as given, else a local path."""
    scheme, sep, rest = text.partition("://")
    if not sep or scheme in ("file", "local"):
        return Path(rest if sep else text)
    return text.rstrip("/")


def shown(results: Location, relative: str) -> str:
    """How a message names a file of the results folder."""
    return str(results / relative) if isinstance(results, Path) else f"{results}/{relative}"


@contextlib.contextmanager
def local_results(results: Location) -> Iterator[Path]:
    """`results` itself when local; else a temporary copy of the prefix's JSON objects, removed afterwards."""
    if isinstance(results, Path):
        yield results
        return
    with _one_line(results, "listing"):
        import fsspec.core

        fs, root = fsspec.core.url_to_fs(results)
        try:
            found = fs.find(root, detail=True)
        except FileNotFoundError:
            found = {}
    if not found:
        raise SystemExit(f"error: {safe(results)} holds no files")
    with tempfile.TemporaryDirectory(prefix="polymodal-results-") as folder:
        for key, info in sorted(found.items()):
            parts = PurePosixPath(posixpath.relpath(key, root)).parts
            if not key.endswith(".json") or any(p in ("..", ".") for p in parts):
                continue  # not a result, or a key that would name a file outside the copy
            target = Path(folder, *parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            if int(info["size"]) > MAX_FILE_BYTES:
                with open(target, "wb") as f:
                    f.truncate(int(info["size"]))
                continue
            with _one_line(shown(results, "/".join(parts)), "reading"):
                fs.get_file(key, str(target))
        yield Path(folder)


@contextlib.contextmanager
def _one_line(url: str, doing: str):
    """What the backend raises (botocore, aiohttp, a missing backend) as one line naming the URL."""
    try:
        yield
    except ImportError as err:
        raise SystemExit(f"error: {safe(url)}: {doing} needs the fsspec backend {err.name or 'for this URL'} "
                         "(e.g. pip install s3fs for s3://)") from None
    except Exception as err:  # each backend has its own exceptions
        detail = (str(err).strip().splitlines() or [""])[0]
        raise SystemExit(f"error: {safe(url)}: {doing} failed: {type(err).__name__}: {safe(detail)}") from None
