"""Faults made here: in ffmpeg's outputs, in the disk, and in the server that clips are fetched from.

A wrapper named `ffmpeg` ahead on PATH runs the real one, then does what a full
TMPDIR does to it: cuts what it wrote and says "No space left on device", yet
exits 0, as ffmpeg did in the report that this test reproduces; or it only says
that something went wrong.

A loopback server (127.0.0.1, a port of its own, at most FAULT_REQUESTS requests
and FAULT_LIFETIME seconds, then it shuts itself down) answers each clip with
one fault: 403, 429 with Retry-After, 500, a bot-check page, a partial body,
zero bytes, or a trickle; the `url:` source fetches from it through yt-dlp.
"""

import errno
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from polymodal.builders.core.disk import DiskFull
from polymodal.builders.core.tarshards import write_atomic, write_tar
from polymodal.builders.vggsound_plus.builder import VggConfig, VggSoundPlusBuilder
from polymodal.builders.vggsound_plus.clips import extract
from polymodal.builders.vggsound_plus.failures import ClipFailure
from polymodal.builders.vggsound_plus.fetch import FetchOptions, open_source
from polymodal.builders.vggsound_plus.index import parse_row
from tests.builders.test_vggsound_plus import make_clip
from tests.helpers import LoopbackServer

WRAPPER = """#!{python}
import os, subprocess, sys
code = subprocess.run([{ffmpeg!r}, *sys.argv[1:]]).returncode
fault = os.environ["FFMPEG_FAULT"]
kind, _, suffix = fault.partition(":")
for out in sys.argv[1:]:
    if kind != "report" and out.endswith(suffix) and os.path.exists(out):
        with open(out, "r+b") as f:
            f.truncate(os.path.getsize(out) // 2)
if kind == "enospc":
    print("[flac @ 0x55] Error writing trailer: No space left on device", file=sys.stderr)
if kind == "report":
    print("[aac @ 0x55] Error decoding frame: invalid data", file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture
def faulty_ffmpeg(tmp_path, monkeypatch):
    """Set the fault with monkeypatch.setenv("FFMPEG_FAULT", "enospc:SUFFIX" | "cut:SUFFIX" | "report:"): the
    outputs ending with SUFFIX are cut in half; "enospc" then says there is no space, "report" only an error."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ffmpeg"
    wrapper.write_text(WRAPPER.format(python=sys.executable, ffmpeg=shutil.which("ffmpeg")))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return monkeypatch


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_clip(path)
    return str(path)


def test_the_clip_extracts_cleanly_without_a_fault(clip):
    extracted = extract(clip, 0.0, 0, "clip")
    assert extracted.audio_seconds == pytest.approx(10.0, abs=0.05) and extracted.frame_size == (64, 48)


def test_no_space_in_tmpdir_stops_the_build_naming_tmpdir(clip, faulty_ffmpeg, tmp_path):
    faulty_ffmpeg.setenv("FFMPEG_FAULT", "enospc:.flac")
    faulty_ffmpeg.setenv("TMPDIR", str(tmp_path))
    import tempfile

    faulty_ffmpeg.setattr(tempfile, "tempdir", None)  # so gettempdir() reads TMPDIR again
    with pytest.raises(DiskFull, match=f"no space left in {tmp_path} \\(TMPDIR"):
        extract(clip, 0.0, 0, "clip")


@pytest.mark.parametrize("member", [".flac", ".jpg"])
def test_a_cut_output_is_a_decode_error_not_a_sample(clip, faulty_ffmpeg, member):
    faulty_ffmpeg.setenv("FFMPEG_FAULT", f"cut:{member}")
    with pytest.raises(ClipFailure) as failure:
        extract(clip, 0.0, 0, "clip")
    assert failure.value.kind in {"decode-error", "too-short"}, failure.value


def test_an_error_that_ffmpeg_reports_is_a_failure_whatever_its_exit_code(clip, faulty_ffmpeg):
    faulty_ffmpeg.setenv("FFMPEG_FAULT", "report:")  # outputs whole, exit code 0, an error on stderr
    with pytest.raises(ClipFailure, match="Error decoding frame") as failure:
        extract(clip, 0.0, 0, "clip")
    assert failure.value.kind == "decode-error"


def test_a_full_tmpdir_while_fetching_stops_the_build_naming_tmpdir(tmp_path, monkeypatch, clip):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(clip, folder / "abcdefghijk_000000.mp4")
    builder = VggSoundPlusBuilder(VggConfig(index="unused.csv", source=f"dir:{folder}"))
    monkeypatch.setattr(tempfile, "mkdtemp", full)
    with pytest.raises(DiskFull, match=f"no space left in {tempfile.gettempdir()} \\(TMPDIR"):
        builder._make(parse_row(["abcdefghijk", "0", "dog barking", "test"], 1, "test"))


def test_a_full_output_folder_is_one_clear_error_and_leaves_no_half_file(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    shard = tmp_path / "train" / "shard-000000.tar"
    samples = iter([{"__key__": "000000000", "json": b"{}"}])
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFull, match=f"no space left in {shard.parent} \\(the output folder\\)"):
        write_tar(shard, samples)
    with pytest.raises(DiskFull, match="the output folder"):
        write_atomic(tmp_path / "manifest.json", b"{}")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert sorted(p.name for p in Path(tmp_path).rglob("*") if p.is_file()) == []


# -- fetching from a faulty server ---------------------------------------------------
FAULT_REQUESTS = 300
FAULT_LIFETIME = 120  # seconds
BOT_PAGE = b"<html><body><p>Sign in to confirm you\xe2\x80\x99re not a bot</p></body></html>"
TRICKLE_BYTES, TRICKLE_GAP = 60, 0.25  # one byte every 0.25 s for 15 s, then the server gives up


class FaultServer(LoopbackServer):
    """Each path `/<fault>_....mp4` answers with its fault, `/good_....mp4` with the clip. It stops after
    FAULT_REQUESTS requests or FAULT_LIFETIME seconds, whichever comes first."""

    def __init__(self, clip: bytes):
        self.hits: dict[str, int] = {}
        server = self

        def send(handler, status, body, kind="video/mp4", length=None, headers=()):
            handler.send_response(status)
            handler.send_header("Content-Type", kind)
            handler.send_header("Content-Length", str(len(body) if length is None else length))
            for name, value in headers:
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(body)

        def trickle(handler):
            send(handler, 200, b"", length=len(clip))
            try:
                for byte in clip[:TRICKLE_BYTES]:
                    handler.wfile.write(bytes([byte]))
                    handler.wfile.flush()
                    time.sleep(TRICKLE_GAP)
            except OSError:
                pass  # the client was stopped: what the test wants

        faults = {
            "forbidden": lambda h: send(h, 403, b"Forbidden", "text/plain"),
            "ratelimit": lambda h: send(h, 429, b"Too Many Requests", "text/plain", headers=[("Retry-After", "1")]),
            "servererr": lambda h: send(h, 500, b"oops", "text/plain"),
            "botpage": lambda h: send(h, 200, BOT_PAGE, "text/html; charset=utf-8"),
            "botdenied": lambda h: send(h, 403, BOT_PAGE, "text/html; charset=utf-8"),
            "partial": lambda h: send(h, 200, clip[: len(clip) // 2], length=len(clip)),
            "empty": lambda h: send(h, 200, b""),
            "trickle": trickle,
            "good": lambda h: send(h, 200, clip),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                fault = self.path.strip("/").split("_")[0]
                server.hits[fault] = server.hits.get(fault, 0) + 1
                if sum(server.hits.values()) > FAULT_REQUESTS:
                    threading.Thread(target=server.httpd.shutdown, daemon=True).start()
                    return
                faults.get(fault, lambda h: h.send_error(404))(self)
                self.close_connection = True

            def log_message(self, *args):
                pass

        super().__init__(Handler, FAULT_LIFETIME)


@pytest.fixture(scope="module")
def fault_server(clip):
    with FaultServer(Path(clip).read_bytes()) as running:
        yield running


def fetch(port, fault, tmp_path, **options):
    """Fetch the clip named after `fault` through the url: source; the failure (or None), the attempts and the time."""
    source = open_source(f"url:http://127.0.0.1:{port}/{{ytid}}.mp4")
    row = parse_row([f"{fault}_".ljust(11, "x")[:11], "0", "dog barking", "test"], 1, "test")
    options = FetchOptions(**{"retries": 2, "backoff": 0.01, "socket_timeout": 2, "clip_timeout": 30, **options})
    logger = logging.getLogger("polymodal.builders.vggsound_plus.fetch")
    retries = []
    handler = logging.Handler(logging.INFO)
    handler.emit = retries.append
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    started = time.monotonic()
    try:
        source.fetch(row, tmp_path, options)
        failure = None
    except ClipFailure as err:
        failure = err
    finally:
        logger.removeHandler(handler)
    return failure, 1 + len(retries), time.monotonic() - started


@pytest.mark.parametrize("fault, kind, attempts", [
    ("forbidden", "forbidden", 1),
    ("ratelimit", "rate-limited", 3),
    ("servererr", "network", 3),
    ("botpage", "bot-check", 1),
    ("botdenied", "bot-check", 1),  # the page's words, whatever its status
    ("partial", "partial", 3),
    ("empty", "empty", 1),
])
def test_each_fetch_fault_has_its_kind_and_only_transient_ones_are_repeated(fault_server, tmp_path, fault, kind,
                                                                            attempts):
    failure, tried, seconds = fetch(fault_server.port, fault, tmp_path)
    assert failure is not None and (failure.kind, tried) == (kind, attempts), failure
    if fault == "ratelimit":  # the server's Retry-After (1 s), not the 0.01 s backoff, sets the wait
        assert seconds >= 2


def test_a_good_clip_still_fetches(fault_server, tmp_path):
    failure, tried, _ = fetch(fault_server.port, "good", tmp_path)
    assert failure is None and tried == 1


def _processes_naming(text: str) -> list[int]:
    """The processes whose command line holds `text` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile
    return found


def test_a_trickle_ends_at_the_clip_timeout_and_leaves_no_process(fault_server, tmp_path):
    failure, tried, seconds = fetch(fault_server.port, "trickle", tmp_path, retries=1, clip_timeout=2)
    assert failure is not None and failure.kind == "clip-timeout" and tried == 2, failure
    assert seconds < 2 * 2 + 4  # two attempts of 2 s, and the child processes' start
    assert _processes_naming(f"127.0.0.1:{fault_server.port}/trickle") == []  # ffmpeg went with its child


def test_kill_9_of_the_build_takes_its_downloads_along(fault_server, tmp_path):
    script = (f"from pathlib import Path; from tests.builders.test_vggsound_plus_faults import fetch; "
              f"fetch({fault_server.port}, 'trickle', Path({str(tmp_path)!r}), clip_timeout=60)")
    build = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    url = f"127.0.0.1:{fault_server.port}/trickle"
    try:
        for _ in range(100):  # until the ffmpeg that yt-dlp started is downloading
            if _processes_naming(url):
                break
            time.sleep(0.1)
        assert _processes_naming(url), "the download never started"
        build.send_signal(signal.SIGKILL)
        build.wait()
        for _ in range(50):
            if not _processes_naming(url):
                break
            time.sleep(0.1)
        assert _processes_naming(url) == []
    finally:
        build.kill()
