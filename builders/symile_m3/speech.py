"""Offline speech with espeak-ng, kept in a content-addressed cache of 16 kHz mono FLAC files.

An entry's key hashes everything its bytes depend on: the voice, the text
espeak reads, the espeak-ng version, the sample rate and the resampler. A
build synthesises its pool once, before any shard (`synthesize_missing`);
shard workers only `read` it, so every shard sees the same bytes.

The cache lives in $POLYMODAL_CACHE/tts (default ~/.cache/polymodal/tts).
Workers on other machines must see the same folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from polymodal.builders.core.media import (
    SourceError,
    flac_bytes,
    require_tool,
    resampler_version,
    to_16k,
    tool_version,
)
from polymodal.builders.core.tarshards import write_atomic
from polymodal.builders.schema import SAMPLE_RATE

CACHE_ENV = "POLYMODAL_CACHE"
ESPEAK = "espeak-ng"


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "polymodal"


@lru_cache(maxsize=1)
def _kakasi():
    import pykakasi

    return pykakasi.kakasi()


def kana(text: str) -> str:
    """espeak-ng's Japanese voice reads kana only: turn kanji into hiragana."""
    return "".join(part["hira"] for part in _kakasi().convert(text))


def pinyin(text: str) -> str:
    """espeak-ng reads Mandarin as tone-numbered pinyin (voice cmn-latn-pinyin)."""
    from pypinyin import Style, lazy_pinyin

    return " ".join(lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True))


@dataclass(frozen=True)
class Voice:
    name: str  # espeak-ng voice
    spoken: Callable[[str], str]  # the text as this voice must receive it


def _as_written(text: str) -> str:
    return text


# Languages whose espeak voice or script differs from the plain language code.
VOICES: dict[str, Voice] = {
    "ja": Voice("ja", kana),
    "zh-CN": Voice("cmn-latn-pinyin", pinyin),
}


def voice_for(language: str) -> Voice:
    return VOICES.get(language, Voice(language, _as_written))


@lru_cache(maxsize=1)
def available_voices() -> frozenset[str]:
    """Every name `-v` accepts: each voice's language and its other languages, e.g. "(en 2)"."""
    cmd = [require_tool(ESPEAK, "offline speech"), "--voices"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        if line.strip():
            names.add(line.split()[1])
            names.update(re.findall(r"\((\S+) \d+\)", line))
    return frozenset(names)


@dataclass(frozen=True)
class Utterance:
    language: str
    text: str  # as written in the class table
    voice: str
    spoken: str  # what espeak-ng reads
    key: str

    @property
    def path(self) -> Path:
        return cache_root() / "tts" / self.key[:2] / f"{self.key}.flac"


def utterance(language: str, text: str) -> Utterance:
    voice = voice_for(language)
    spoken = voice.spoken(text)
    identity = {"voice": voice.name, "text": spoken, "espeak": tool_version(ESPEAK),
                "rate": SAMPLE_RATE, "resampler": resampler_version()}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return Utterance(language, text, voice.name, spoken, key)


def synthesize(u: Utterance) -> bytes:
    """Speak `u` with espeak-ng (22.05 kHz WAV on stdout) and encode it as 16 kHz FLAC."""
    import soundfile as sf

    cmd = [require_tool(ESPEAK, "offline speech"), "-b", "1", "-v", u.voice, "--stdout"]  # -b 1: UTF-8 text on stdin
    proc = subprocess.run(cmd, input=u.spoken.encode(), capture_output=True)
    if proc.returncode != 0:
        why = proc.stderr.decode(errors="replace").strip()
        raise SourceError(f"espeak-ng failed for voice {u.voice} and text {u.spoken!r}: {why}")
    pcm, rate = sf.read(io.BytesIO(proc.stdout), dtype="int16")
    if pcm.size == 0:
        raise SourceError(f"espeak-ng produced no speech for voice {u.voice} and text {u.spoken!r}")
    return flac_bytes(to_16k(np.asarray(pcm), rate))


def synthesize_missing(utterances: Iterable[Utterance]) -> int:
    """Synthesise every entry not yet cached; returns how many were made. Safe to re-run."""
    todo = {u.key: u for u in utterances if not u.path.is_file()}

    def make(u: Utterance) -> None:
        u.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(u.path, synthesize(u))

    # Threads suffice: the work is in espeak-ng subprocesses and numpy.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(make, todo.values()))
    return len(todo)


def read(u: Utterance) -> bytes:
    try:
        return u.path.read_bytes()
    except FileNotFoundError:
        raise SourceError(
            f"speech for {u.text!r} ({u.language}) is not in the TTS cache {u.path.parent.parent}; the pool is built "
            f"before the shards, so a worker that misses it sees another cache: point ${CACHE_ENV} at a shared folder"
        ) from None
