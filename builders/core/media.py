"""Media encoding shared by builders: 16 kHz mono FLAC, JPEG, and the external tools behind them.

Every encoder here is a pure function of its input bytes and the library
versions, so shards that hold its output are byte-reproducible.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from functools import lru_cache
from math import gcd
from typing import Callable

import numpy as np

from polymodal.builders.schema import SAMPLE_RATE

JPEG_QUALITY = 95


class SourceError(SystemExit):
    """An input the build needs is missing or unreadable; the message names it.

    A SystemExit so that `polymodal build` prints the message without a
    traceback, also when a worker process raises it.
    """


def require_tool(name: str, needed_for: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SourceError(
            f"{name} is not on PATH; it is needed for {needed_for}. Install it (Debian/Ubuntu: apt-get install {name})."
        )
    return path


# How to ask each tool its version, and where the version sits in the first line of the answer:
# "ffmpeg version 5.1.9-0+deb12u1 Copyright ..." and "eSpeak NG text-to-speech: 1.51  Data at: ...".
VERSION_QUERIES: dict[str, tuple[str, Callable[[str], str]]] = {
    "ffmpeg": ("-version", lambda line: line.split()[2]),
    "espeak-ng": ("--version", lambda line: line.partition(":")[2].split()[0]),
}


@lru_cache(maxsize=None)
def tool_version(name: str) -> str:
    flag, parse = VERSION_QUERIES[name]
    out = subprocess.run([require_tool(name, "its version"), flag], capture_output=True, text=True, check=True).stdout
    return parse(out.splitlines()[0])


# -- audio ---------------------------------------------------------------------
def resampler_version() -> str:
    import scipy

    return f"scipy {scipy.__version__} resample_poly"


def to_16k(pcm: np.ndarray, rate: int) -> np.ndarray:
    """Resample int16 mono PCM to 16 kHz with scipy's polyphase filter."""
    if rate == SAMPLE_RATE:
        return pcm
    from scipy.signal import resample_poly

    g = gcd(rate, SAMPLE_RATE)
    out = resample_poly(pcm.astype(np.float64), SAMPLE_RATE // g, rate // g)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def flac_bytes(pcm: np.ndarray) -> bytes:
    """16 kHz mono int16 PCM as FLAC bytes."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_with_ffmpeg(path: str) -> np.ndarray:
    """Any audio file ffmpeg reads, as 16 kHz mono int16 PCM.

    Empty for a file without audio frames: ffmpeg fails on a header-only mp3
    without writing a sample, and that is what a zero-length clip is.
    """
    if not os.path.isfile(path):
        raise SourceError(f"audio file {path} does not exist")
    cmd = [require_tool("ffmpeg", "decoding audio"), "-nostdin", "-v", "error", "-i", path,
           "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"]
    proc = subprocess.run(cmd, capture_output=True)
    pcm = np.frombuffer(proc.stdout, dtype="<i2").astype(np.int16)
    if proc.returncode != 0 and pcm.size:
        raise SourceError(f"ffmpeg cannot decode all of {path}: {proc.stderr.decode(errors='replace').strip()}")
    return pcm


@lru_cache(maxsize=1)
def silent_flac() -> bytes:
    """A placeholder for missing audio: 0.1 s of silence, valid for any reader."""
    return flac_bytes(np.zeros(SAMPLE_RATE // 10, dtype=np.int16))


# -- images --------------------------------------------------------------------
def encode_jpeg(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def as_jpeg(data: bytes, name: str) -> bytes:
    """Check that `data` decodes as an image; pass RGB or grey JPEGs through, re-encode anything else."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        if image.format == "JPEG" and image.mode in ("RGB", "L"):
            image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))  # decode every block, cheaply
            image.load()
            return data
        return encode_jpeg(image.convert("RGB"))
    except UnidentifiedImageError:
        raise SourceError(f"unreadable image {name}: not in any format Pillow reads") from None
    except (OSError, SyntaxError, ValueError) as err:  # Pillow's ways of saying "truncated" or "corrupt"
        raise SourceError(f"unreadable image {name}: {err}") from None


@lru_cache(maxsize=1)
def blank_jpeg() -> bytes:
    """A placeholder for a missing image: one black pixel, valid for any reader."""
    from PIL import Image

    return encode_jpeg(Image.new("RGB", (1, 1)))
