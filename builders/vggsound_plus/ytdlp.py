"""One yt-dlp download, in a child process of fetch.py: the job as JSON on stdin, the outcome as JSON on stdout.

fetch.py runs this file by its path, so that it starts with yt-dlp alone, not the whole package. It runs in a
process group of its own, which fetch.py kills whole at the clip's deadline: this process and the ffmpeg that
yt-dlp starts to cut the window. Should fetch.py's process die first, the kernel tells this one, which then
takes its group down too.

Besides yt-dlp's error, the outcome holds notes of what the replies said that the error leaves out: a page
asking to prove this is no bot (whatever its status), a zero-byte reply, and how long a Retry-After asks to wait.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import sys
import time
from email.utils import parsedate_to_datetime

# The words of the pages that stand between a client and the file: YouTube's, Google's and the usual CDNs'.
CHALLENGE = re.compile(r"not a (ro)?bot|verify you are (a )?human|unusual traffic|captcha", re.IGNORECASE)
CHALLENGE_BYTES = 64 * 1024  # a challenge page is small; a site's real pages, in which such words may appear, are not


def main() -> None:
    job = json.load(sys.stdin)
    _end_with_parent(job["parent"])
    print(json.dumps(download(job["url"], job["params"], job["section"])))


def download(url: str, params: dict, section: list[float] | None) -> dict:
    """{"path": the file} or {"error": yt-dlp's message and the notes, "retry_after": seconds}."""
    from yt_dlp.utils import DownloadError, download_range_func

    params = {**params, "logger": _YtDlpLog()}
    if section:
        params["download_ranges"] = download_range_func(None, [section])
    ydl = _watched(params)
    try:
        with ydl:
            info = ydl.extract_info(url, download=True)
    except DownloadError as err:
        return {"error": "\n".join([str(err), *ydl.notes]), "retry_after": ydl.retry_after}
    return {"path": info["requested_downloads"][0]["filepath"]}


def _watched(params: dict):
    # yt-dlp is imported here, not at the top: the package's modules must import without it.
    from yt_dlp import YoutubeDL
    from yt_dlp.networking import Response
    from yt_dlp.networking.exceptions import HTTPError

    class Watched(YoutubeDL):
        """A YoutubeDL that reads the text replies it gets, pages and errors, and notes what they say."""

        def __init__(self, params):
            self.notes: list[str] = []
            self.retry_after = 0.0
            super().__init__(params)

        def urlopen(self, req):
            try:
                return self._watch(super().urlopen(req))
            except HTTPError as err:
                self.retry_after = max(self.retry_after, retry_after(err.response.headers.get("Retry-After")))
                raise HTTPError(self._watch(err.response), err.redirect_loop) from err

        def _watch(self, response):
            headers = response.headers
            if response.status in (200, 206) and headers.get("Content-Length") == "0":
                self.notes.append(f"{response.url}: a zero-byte reply")
            if not headers.get("Content-Type", "").startswith("text/"):
                return response  # media: left to the downloader, unread
            body = response.read()
            if len(body) <= CHALLENGE_BYTES and CHALLENGE.search(body.decode(errors="replace")):
                self.notes.append(f"{response.url}: HTTP {response.status}, a page asking to confirm the client "
                                  "is not a bot")
            # The body is read: whoever reads it next gets it from memory.
            return Response(io.BytesIO(body), response.url, headers, response.status, response.reason,
                            response.extensions)

    return Watched(params)


def retry_after(value: str | None) -> float:
    """Seconds a Retry-After header asks to wait: a number of seconds or an HTTP date; 0 if none or unreadable."""
    if not value:
        return 0.0
    if value.strip().isascii() and value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return 0.0


def _end_with_parent(parent: int) -> None:
    """On the death of the parent, SIGTERM (PR_SET_PDEATHSIG, Linux), and it kills this process group."""
    import ctypes

    signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux; the deadline still holds
    if os.getppid() != parent:  # the parent died before the request: no signal will come
        os.killpg(0, signal.SIGKILL)


class _YtDlpLog:
    """Keeps stdout for the outcome. Warnings go to stderr, which fetch.py reads with ffmpeg's errors; an error
    comes back as the DownloadError anyway."""

    def debug(self, message: str) -> None:
        pass

    info = error = debug

    def warning(self, message: str) -> None:
        print(f"yt-dlp: {message}", file=sys.stderr)


if __name__ == "__main__":
    main()
