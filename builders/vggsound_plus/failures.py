"""Why a VGGSound clip could not be made: named failure kinds, and the message patterns that map onto them.

A failed row keeps its kind and the downloader's or ffmpeg's own message in
the shard's row table; it never enters a tar.
"""

from __future__ import annotations

import re

# kind -> what it means; the card prints this table.
KINDS: dict[str, str] = {
    "bad-index-row": "the index line cannot be read: malformed YouTube id, non-numeric start, unknown label or split",
    "unavailable": "the video is gone: removed, never existed, HTTP 404/410, or no such local file",
    "private": "the video is private",
    "geo-blocked": "the video is not available from the country the request came from",
    "bot-check": "the site asked to prove this is not a bot, or refused too many requests (HTTP 429)",
    "login-required": "the video needs a signed-in account: age-restricted or members-only",
    "network": "the connection failed: timeout, refused or reset connection, DNS, HTTP 5xx",
    "download-error": "any other downloader error; the message says which",
    "no-video": "the media has no video stream",
    "no-audio": "the media has no audio stream",
    "too-short": "the media ends before the 10 s window does (less than 9.5 s of audio, or no frame at its centre)",
    "decode-error": "ffmpeg cannot read the media: truncated or corrupt file",
}

# Kinds that may pass if the same request is made again later.
TRANSIENT = frozenset({"network", "bot-check"})


class ClipFailure(Exception):
    """A row that cannot become a sample, for a reason named by one of KINDS."""

    def __init__(self, kind: str, message: str):
        if kind not in KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


# yt-dlp's error messages -> kind, first match wins: "Private video. Sign in ..." is private, not login-required.
DOWNLOAD_ERRORS: tuple[tuple[re.Pattern, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), kind)
    for pattern, kind in (
        (r"private video|video is private", "private"),
        (r"available in your country|geo.?restrict|blocked it in your country|from your location", "geo-blocked"),
        (r"not a bot|too many requests|HTTP Error 429", "bot-check"),
        (r"confirm your age|age.?restricted|inappropriate for some users|members.?only|join this channel", "login-required"),
        (r"video unavailable|has been removed|no longer available|account .*terminated|does not exist|"
         r"HTTP Error 404|HTTP Error 410", "unavailable"),
        (r"timed? ?out|connection (refused|reset|aborted)|name resolution|name or service not known|"
         r"network is unreachable|HTTP Error 5\d\d|IncompleteRead|remote end closed|unable to connect", "network"),
        # yt-dlp's ffmpeg cutting the range from the source: the source is not readable media.
        (r"ffmpeg exited with code", "decode-error"),
    )
)

# Raised by yt-dlp where the format cannot be cut while downloading: fetch the whole video and cut it after.
NO_PARTIAL_DOWNLOAD = re.compile(r"cannot be partially downloaded", re.IGNORECASE)


def download_failure(message: str) -> ClipFailure:
    message = message.removeprefix("ERROR: ").strip()
    kind = next((kind for pattern, kind in DOWNLOAD_ERRORS if pattern.search(message)), "download-error")
    return ClipFailure(kind, message)


def tidy_ffmpeg_message(stderr: str, path: str, name: str) -> str:
    """ffmpeg's error text without what changes from run to run (temp paths, object addresses)."""
    return re.sub(r" @ 0x[0-9a-f]+", "", stderr.replace(path, name)).strip()
