"""Why a VGGSound clip could not be made: named failure kinds, and the message patterns that map onto them.

A failed row keeps its kind and the downloader's or ffmpeg's own message in
the shard's row table; it never enters a tar.
"""

from __future__ import annotations

import re

# kind -> what it means; the card prints this table.
KINDS: dict[str, str] = {
    "bad-index-row": "the index line cannot be read: malformed YouTube id, non-numeric start, unknown label or split, "
                     "not UTF-8, too long, or not CSV",
    "duplicate-row": "the same clip (split, YouTube id, start) as an earlier line of the index, built once from that line",
    "unavailable": "the video is gone: removed, never existed, HTTP 404/410, or no such local file",
    "private": "the video is private",
    "forbidden": "the server refused the file (HTTP 403): private or restricted, or this client is blocked",
    "geo-blocked": "the video is not available from the country the request came from",
    "bot-check": "the site asked to prove this is not a bot (known by the page's words, whatever its HTTP status)",
    "rate-limited": "the server refused too many requests (HTTP 429); repeated after the wait it asks (Retry-After)",
    "login-required": "the video needs a signed-in account: age-restricted or members-only",
    "empty": "the server sent a zero-byte reply",
    "partial": "the reply ended before the length it announced: a cut connection",
    "network": "the connection failed: timeout, refused or reset connection, DNS, HTTP 5xx",
    "clip-timeout": "the download did not finish within --clip-timeout seconds (a stalled or trickling server)",
    "download-error": "any other downloader error; the message says which",
    "no-video": "the media has no video stream",
    "no-audio": "the media has no audio stream",
    "too-short": "the media ends before the 10 s window does (less than 9.5 s of audio, or no frame at its centre)",
    "decode-error": "ffmpeg cannot read the media, or reports an error while cutting it: truncated or corrupt file",
}

# Kinds that may pass if the same request is made again later.
TRANSIENT = frozenset({"network", "rate-limited", "partial", "clip-timeout"})


class ClipFailure(Exception):
    """A row that cannot become a sample, for a reason named by one of KINDS."""

    def __init__(self, kind: str, message: str, retry_after: float = 0.0):
        if kind not in KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.retry_after = retry_after  # seconds the server asked to wait before the next request


# A download's messages -> kind, first match wins: "Private video. Sign in ..." is private, not login-required.
# The messages are yt-dlp's error, the notes of what the replies said (ytdlp.py), and the errors of the ffmpeg
# that cut the window while downloading.
DOWNLOAD_ERRORS: tuple[tuple[re.Pattern, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), kind)
    for pattern, kind in (
        (r"private video|video is private", "private"),
        (r"available in your country|geo.?restrict|blocked it in your country|from your location", "geo-blocked"),
        (r"not a bot", "bot-check"),
        (r"confirm your age|age.?restricted|inappropriate for some users|members.?only|join this channel", "login-required"),
        ((r"video unavailable|has been removed|no longer available|account .*terminated|does not exist|"
         r"HTTP Error 404|HTTP Error 410|404 Not Found"), "unavailable"),
        (r"HTTP Error 403|403 Forbidden", "forbidden"),
        (r"too many requests|HTTP Error 429", "rate-limited"),
        (r"zero-byte reply|did not get any data blocks|downloaded file is empty", "empty"),
        (r"bytes read, \d+ more expected|stream ends prematurely|IncompleteRead", "partial"),
        ((r"timed? ?out|connection (refused|reset|aborted)|name resolution|name or service not known|"
         r"network is unreachable|HTTP Error 5\d\d|5XX Server Error|remote end closed|unable to connect"), "network"),
        # yt-dlp's ffmpeg cutting the range from the source: the source is not readable media.
        (r"ffmpeg exited with code", "decode-error"),
    )
)

# Raised by yt-dlp where the format cannot be cut while downloading: fetch the whole video and cut it after.
NO_PARTIAL_DOWNLOAD = re.compile(r"cannot be partially downloaded", re.IGNORECASE)


def download_failure(message: str, retry_after: float = 0.0) -> ClipFailure:
    message = message.removeprefix("ERROR: ").strip()
    kind = next((kind for pattern, kind in DOWNLOAD_ERRORS if pattern.search(message)), "download-error")
    return ClipFailure(kind, message, retry_after)


def tidy_ffmpeg_message(stderr: str, path: str, name: str) -> str:
    """ffmpeg's error text without what changes from run to run (temp paths, object addresses)."""
    return re.sub(r" @ 0x[0-9a-f]+", "", stderr.replace(path, name)).strip()
