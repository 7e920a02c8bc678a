"""Where a VGGSound clip's media comes from: YouTube or a mirror through the yt-dlp Python API, or a folder.

Every source gives a local media file and where the 10 s window starts in
it. Downloads ask for one format holding both video and audio, in one call
per clip, and cut the window while downloading (yt-dlp's download_ranges)
where the format allows; else they fetch the whole video and the window is
cut when the frame and audio are extracted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from polymodal.builders.core.media import SourceError
from polymodal.builders.schema import CLIP_SECONDS
from polymodal.builders.vggsound_plus.failures import (
    NO_PARTIAL_DOWNLOAD,
    TRANSIENT,
    ClipFailure,
    download_failure,
)
from polymodal.builders.vggsound_plus.index import IndexRow
from polymodal.registry import Registry

log = logging.getLogger(__name__)


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
    """Download into `folder` and return the file's path; repeat transient failures with backoff."""
    for attempt in range(options.retries):
        try:
            return _download_once(url, folder, options, section)
        except ClipFailure as failure:
            if failure.kind not in TRANSIENT:
                raise
            wait = options.backoff * 2**attempt
            log.info("%s: %s; again in %.0f s", url, failure, wait)
            time.sleep(wait)
    return _download_once(url, folder, options, section)  # the last attempt's failure is the row's


def _download_once(url: str, folder: Path, options: FetchOptions, section: tuple[float, float] | None) -> str:
    from yt_dlp import YoutubeDL
    from yt_dlp.utils import DownloadError

    try:
        with YoutubeDL(ytdlp_params(folder, options, section)) as ydl:
            info = ydl.extract_info(url, download=True)
    except DownloadError as err:
        if section and NO_PARTIAL_DOWNLOAD.search(str(err)):
            raise _CannotCutWhileDownloading from None
        raise download_failure(str(err)) from None
    return info["requested_downloads"][0]["filepath"]


def ytdlp_params(folder: Path, options: FetchOptions, section: tuple[float, float] | None) -> dict:
    from yt_dlp.utils import download_range_func, parse_bytes

    params = {
        "format": options.format,
        "outtmpl": str(folder / "source.%(ext)s"),
        "logger": _YtDlpLog(),
        "quiet": True,  # also keeps the ffmpeg that cuts the range quiet
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
        "download_ranges": download_range_func(None, [section]) if section else None,
    }
    return {key: value for key, value in params.items() if value is not None}  # yt-dlp reads None as a value


class _YtDlpLog:
    """yt-dlp's messages go to logging, not the terminal; its errors come back as DownloadError anyway."""

    def debug(self, message: str) -> None:
        log.debug(message)

    def info(self, message: str) -> None:
        log.debug(message)

    def warning(self, message: str) -> None:
        log.info(message)

    def error(self, message: str) -> None:
        log.debug(message)
