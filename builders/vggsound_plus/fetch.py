"""Where a VGGSound clip's media comes from: YouTube or a mirror through the yt-dlp Python API, or a folder.

Every source gives a local media file and where the 10 s window starts in
it. Downloads ask for one format holding both video and audio, in one call
per clip, and cut the window while downloading (yt-dlp's download_ranges)
where the format allows; else they fetch the whole video and the window is
cut when the frame and audio are extracted.

Each download attempt runs in a child process (ytdlp.py) that is killed, with
the ffmpeg it started, at the clip's deadline (--clip-timeout): a server that
trickles bytes keeps every socket read within --socket-timeout, yet would hold
the clip for good. Transient failures (HTTP 429 and 5xx, network errors,
partial replies, the deadline) are repeated with backoff, or after the wait a
Retry-After asks for where that is longer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from polymodal.builders.core.disk import NO_SPACE, DiskFull
from polymodal.builders.core.media import SourceError
from polymodal.builders.schema import CLIP_SECONDS
from polymodal.builders.vggsound_plus.failures import (
    NO_PARTIAL_DOWNLOAD,
    TRANSIENT,
    ClipFailure,
    download_failure,
    tidy_ffmpeg_message,
)
from polymodal.builders.vggsound_plus.index import IndexRow
from polymodal.registry import Registry

log = logging.getLogger(__name__)
YTDLP_CHILD = Path(__file__).with_name("ytdlp.py")  # run by path: it needs yt-dlp alone, not this package
MAX_RETRY_AFTER = 300.0  # seconds; a server asking for longer is blocking, not pausing
MESSAGE_CHARS = 2000  # of the child's stderr, kept in a failure's message


@dataclass(frozen=True)
class FetchOptions:
    """How to download. Only `format` decides what a download holds; the rest may change on a resume."""

    format: str = "b"  # yt-dlp format selector; "b" is the best single file with both video and audio
    cookies: str = ""  # a Netscape cookies file
    proxy: str = ""
    rate_limit: str = ""  # bytes per second as yt-dlp reads them, e.g. "2M"
    sleep: float = 0.0  # seconds to wait before each download
    retries: int = 3  # more attempts, inside yt-dlp and for whole clips failing with a transient kind
    backoff: float = 5.0  # seconds before the first repeat of a clip; doubled each time
    socket_timeout: float = 30.0
    clip_timeout: float = 600.0  # seconds one download attempt may take before it is stopped; 0: no limit


@dataclass(frozen=True)
class Media:
    path: str
    window_start: float  # second of the file where the 10 s window starts
    url: str  # where it came from, for the sample's metadata


class Source(Protocol):
    downloads: bool  # whether it needs yt-dlp

    def url(self, row: IndexRow) -> str: ...
    def fetch(self, row: IndexRow, folder: Path, options: FetchOptions) -> Media: ...


class YouTube:
    """The clip's YouTube video; the window is [start, start + 10 s) of it."""

    downloads = True

    def __init__(self, arg: str):
        if arg:
            raise SourceError(f"the youtube source takes no argument, got {arg!r}")

    def url(self, row: IndexRow) -> str:
        return f"https://www.youtube.com/watch?v={row.ytid}"

    def fetch(self, row: IndexRow, folder: Path, options: FetchOptions) -> Media:
        return download_window(self.url(row), row.start, folder, options)


class VideoUrls(YouTube):
    """A mirror of whole videos: a URL template with {ytid}, {start} and {end} (seconds), e.g. {ytid}.mp4."""

    def __init__(self, template: str):
        try:
            template.format(ytid="x", start=0, end=CLIP_SECONDS)
        except (KeyError, IndexError, ValueError) as err:
            raise SourceError(f"URL template {template!r} may use only {{ytid}}, {{start}} and {{end}}: {err!r}") from None
        self.template = template

    def url(self, row: IndexRow) -> str:
        return self.template.format(ytid=row.ytid, start=row.start, end=row.start + CLIP_SECONDS)


class ClipUrls(VideoUrls):
    """A mirror of cut clips: each URL serves the 10 s clip itself, e.g. {ytid}_{start:06d}.mp4."""

    def fetch(self, row: IndexRow, folder: Path, options: FetchOptions) -> Media:
        url = self.url(row)
        return Media(download(url, folder, options, section=None), 0.0, url)


class ClipFolder:
    """A local folder of clips already cut, named <ytid>_<start:06d>.mp4."""

    downloads = False

    def __init__(self, folder: str):
        if not Path(folder).is_dir():
            raise SourceError(f"media folder {folder!r} does not exist")
        self.folder = Path(folder)

    def url(self, row: IndexRow) -> str:
        return f"{row.clip_name}.mp4"

    def fetch(self, row: IndexRow, folder: Path, options: FetchOptions) -> Media:
        path = self.folder / self.url(row)
        if not path.is_file():
            raise ClipFailure("unavailable", f"no file {path.name} in {self.folder}")
        return Media(str(path), 0.0, path.name)


SOURCES: Registry[type] = Registry("media source", {"youtube": YouTube, "url": VideoUrls, "clip-url": ClipUrls, "dir": ClipFolder},
                                   takes_arg={"url", "clip-url", "dir"},
                                   forms="youtube, url:TEMPLATE, clip-url:TEMPLATE or dir:PATH", error=SourceError)


def open_source(spec: str) -> Source:
    source, arg = SOURCES.spec(spec)
    return source(arg)


class _CannotCutWhileDownloading(Exception):
    pass


def download_window(url: str, start: int, folder: Path, options: FetchOptions) -> Media:
    """The window alone where the format can be cut while downloading, else the whole video."""
    try:
        return Media(download(url, folder, options, section=(start, start + CLIP_SECONDS)), 0.0, url)
    except _CannotCutWhileDownloading:
        return Media(download(url, folder, options, section=None), float(start), url)


def download(url: str, folder: Path, options: FetchOptions, section: tuple[float, float] | None) -> str:
    """Download into `folder` and return the file's path; repeat transient failures with backoff, or after the
    wait the server asked for where that is longer."""
    for attempt in range(options.retries):
        try:
            return _download_once(url, folder, options, section)
        except ClipFailure as failure:
            if failure.kind not in TRANSIENT:
                raise
            wait = max(options.backoff * 2**attempt, min(failure.retry_after, MAX_RETRY_AFTER))
            log.info("%s: %s (%s); attempt %d of %d in %.1f s", url, failure.kind, failure.message.splitlines()[0],
                     attempt + 2, options.retries + 1, wait)
            time.sleep(wait)
    return _download_once(url, folder, options, section)  # the last attempt's failure is the row's


def _download_once(url: str, folder: Path, options: FetchOptions, section: tuple[float, float] | None) -> str:
    """One attempt; a failure is named by what yt-dlp, the replies and its ffmpeg said."""
    job = {"url": url, "params": ytdlp_params(folder, options), "section": section, "parent": os.getpid()}
    outcome, stderr = _in_child(job, options.clip_timeout)
    stderr = tidy_ffmpeg_message(stderr, str(folder / "source"), "source")[-MESSAGE_CHARS:]
    message = "\n".join(filter(None, [outcome.get("error"), stderr]))
    if NO_SPACE in message:  # also where ffmpeg exits 0 with the window cut: the file is not all there
        raise DiskFull(tempfile.gettempdir(), "TMPDIR, where clips are downloaded")
    if "path" in outcome:
        return outcome["path"]
    if section and NO_PARTIAL_DOWNLOAD.search(message):
        raise _CannotCutWhileDownloading
    raise download_failure(message, outcome["retry_after"])


def _in_child(job: dict, timeout: float) -> tuple[dict, str]:
    """ytdlp.py's outcome of the job and its stderr. It runs in a process group of its own, killed whole (it and
    the ffmpeg it started) after `timeout` seconds (0: none) or when this process is interrupted."""
    child = subprocess.Popen([sys.executable, str(YTDLP_CHILD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = child.communicate(json.dumps(job).encode(), timeout=timeout or None)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        raise ClipFailure("clip-timeout", f"not downloaded within {timeout:g} s; stopped") from None
    except BaseException:
        _kill_group(child)
        raise
    stderr = err.decode(errors="replace")
    lines = out.decode(errors="replace").splitlines()
    if child.returncode or not lines:
        raise ClipFailure("download-error", f"the download process failed (exit code {child.returncode}): "
                                            f"{stderr[-MESSAGE_CHARS:]}")
    return json.loads(lines[-1]), stderr


def _kill_group(child: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)  # its group: the child and the ffmpeg it started
    child.wait()


def ytdlp_params(folder: Path, options: FetchOptions) -> dict:
    """yt-dlp's parameters, as JSON for the child; it adds its logger and the window to cut."""
    from yt_dlp.utils import parse_bytes

    params = {
        "format": options.format,
        "outtmpl": str(folder / "source.%(ext)s"),
        "quiet": True,
        "noprogress": True,
        "cachedir": False,
        "noplaylist": True,
        "overwrites": True,
        "retries": options.retries,
        "fragment_retries": options.retries,
        "extractor_retries": options.retries,
        "socket_timeout": options.socket_timeout,
        "cookiefile": options.cookies or None,
        "proxy": options.proxy or None,
        "ratelimit": parse_bytes(options.rate_limit) if options.rate_limit else None,
        "sleep_interval": options.sleep or None,
        # quiet gives the ffmpeg that cuts the window `-loglevel quiet`; a later one wins, so it says its errors.
        "external_downloader_args": {"ffmpeg_o": ["-loglevel", "error"]},
    }
    return {key: value for key, value in params.items() if value is not None}  # yt-dlp reads None as a value
