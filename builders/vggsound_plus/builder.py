"""VGG-sound+: a frame, 10 s of audio and a caption per VGGSound clip (Synergy-CLIP, arXiv 2504.21375).

Every row of the VGGSound index (YouTube id, start second, label, split) is
fetched - from YouTube or a mirror through the yt-dlp Python API, or from a
folder of cut clips - and one ffmpeg process makes the centre frame of its
10 s window (JPEG) and the window's audio (16 kHz mono FLAC). A captioner
writes the text: label templates (offline), or an image-captioning model
through transformers (hf:MODEL).

A row that cannot be made fails with a named kind (unavailable, private,
bot-check, too-short, ...) in its shard's row table and never enters a tar.
Shards hold fixed rows of the index, so --retry-failed rebuilds the shards
with failures, fetching only the failed rows again, and gives the bytes a
first build without failures would have given.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from functools import cached_property
from importlib import metadata
from pathlib import Path

from polymodal.builders.core import media
from polymodal.builders.core.base import Builder, Row, ShardSpec, sample_key
from polymodal.builders.core.disk import fatal_when_full
from polymodal.builders.core.media import SourceError
from polymodal.builders.core.options import FileContent, SpecKind, option
from polymodal.builders.schema import (
    AUDIO,
    CLIP_SECONDS,
    IMAGE,
    LABEL,
    MEDIA_FIELDS,
    META,
    TEXT,
    media_features,
)
from polymodal.builders.vggsound_plus.captioners import Clip, open_captioner
from polymodal.builders.vggsound_plus.card import card_fields, card_metadata
from polymodal.builders.vggsound_plus.clips import Extracted, extract
from polymodal.builders.vggsound_plus.failures import ClipFailure
from polymodal.builders.vggsound_plus.fetch import ClipFolder, FetchOptions, open_source
from polymodal.builders.vggsound_plus.index import SPLITS, IndexRow, class_index, select
from polymodal.registry import parse_spec


@dataclass(frozen=True)
class VggConfig:
    index: str = option(
        "", "the VGGSound index: rows `ytid,start,label,split`, or `<ytid>_<start:06d>.mp4,<label>` (no header)",
        required=True, metavar="CSV", identity=FileContent())
    index_split: str = option(
        "test", "split of the `<ytid>_<start>.mp4,<label>` rows, which name none", choices=SPLITS)
    splits: tuple[str, ...] = option(SPLITS, "splits to build", many=True, choices=SPLITS)
    classes: tuple[str, ...] = option(
        (), 'only these classes, by display name, e.g. "dog barking" (none: all 309)', many=True, metavar="NAME")
    limit: int = option(0, "at most this many rows per split from the top of the index, 0 for all")
    source: str = option(
        "youtube", "where the clips come from: youtube; url:TEMPLATE, a mirror of whole videos fetched with yt-dlp "
        "({ytid}, {start} and {end} are filled in, e.g. 'https://mirror/{ytid}.mp4'); clip-url:TEMPLATE, a mirror "
        "that serves the 10 s clips themselves; dir:PATH, a folder of cut clips <ytid>_<start:06d>.mp4",
        shorthands=(("--media-dir", "DIR", "dir:{}"),), identity=SpecKind())
    format: str = option("b", "yt-dlp format: one file with video and audio (b: the best such)")
    frame_size: int = option(256, "shorter side of the frame in pixels, 0 for the source's")
    captioner: str = option(
        "template", "template (label templates, offline) or hf:MODEL (an image-captioning model through "
        "transformers, e.g. hf:Salesforce/blip-image-captioning-base)")
    seed: int = option(0, "seed of the template captions")
    shard_size: int = option(500, "index rows per shard")
    cookies: str = option("", "a Netscape cookies file for yt-dlp", runtime=True, metavar="FILE")
    proxy: str = option("", "proxy for yt-dlp, e.g. socks5://127.0.0.1:1080", runtime=True, metavar="URL")
    rate_limit: str = option(
        "", "download rate limit in bytes/s, e.g. 2M; yt-dlp keeps it on whole downloads, not on the windows that "
        "ffmpeg cuts while downloading", runtime=True, metavar="RATE")
    sleep: float = option(0.0, "seconds to wait before each download", runtime=True)
    retries: int = option(3, "more attempts on transient failures (HTTP 429 and 5xx, network errors, partial "
                          "replies, --clip-timeout), with backoff", runtime=True)
    backoff: float = option(5.0, "seconds before the first repeat of a clip, doubled each time; longer where the "
                            "server's Retry-After asks for more", runtime=True)
    socket_timeout: float = option(30.0, "seconds", runtime=True)
    clip_timeout: float = option(600.0, "seconds one download of a clip may take before it is stopped, 0 for no "
                                 "limit", runtime=True)
    threads: int = option(4, "clips in flight per shard", runtime=True)
    caption_batch: int = option(16, "images per batch of an hf captioner", runtime=True)

    def __post_init__(self):
        # A manifest round trip gives lists.
        object.__setattr__(self, "splits", tuple(self.splits))
        object.__setattr__(self, "classes", tuple(self.classes))
        if self.index_split not in SPLITS or not set(self.splits) <= set(SPLITS) or not self.splits:
            raise ValueError(f"splits must come from {SPLITS}; got index_split={self.index_split!r}, "
                             f"splits={self.splits}")
        unknown = sorted(set(self.classes) - set(class_index()))
        if unknown:
            raise ValueError(f"unknown VGGSound classes: {unknown}")
        if (min(self.limit, self.frame_size, self.retries) < 0
                or min(self.shard_size, self.threads, self.caption_batch) < 1):
            raise ValueError("limit, frame_size and retries must be >= 0; shard_size, threads and caption_batch >= 1")

    def fetch_options(self) -> FetchOptions:
        """Each FetchOptions field comes from the option of the same name."""
        return FetchOptions(**{f.name: getattr(self, f.name) for f in fields(FetchOptions)})


@dataclass(frozen=True)
class Made:
    """A row's media, waiting for its caption."""

    url: str
    extracted: Extracted


class VggSoundPlusBuilder(Builder):
    name = "vggsound-plus"
    version = "2.0.0"  # 2.0: members named by extension alone (jpg, flac, txt), as stock WebDataset readers expect
    prefix = "vggsound"
    fields = MEDIA_FIELDS
    card = "vggsound_plus.md"
    row_table = True
    Config = VggConfig

    def rows(self) -> dict[str, tuple[IndexRow, ...]]:
        c = self.config
        return select(c.index, c.index_split, c.splits, c.classes, c.limit)

    @cached_property
    def source(self):
        return open_source(self.config.source)

    @cached_property
    def captioner(self):
        return open_captioner(self.config.captioner, self.config.seed, self.config.caption_batch)

    def split_sizes(self) -> dict[str, int]:
        return {split: len(rows) for split, rows in self.rows().items()}

    def check_environment(self) -> None:
        media.require_tool("ffmpeg", "cutting frames and audio")
        needed = {"ffmpeg": "ffmpeg-python", "PIL": "pillow", "soundfile": "soundfile"}
        if self.source.downloads:
            needed["yt_dlp"] = "yt-dlp"
        missing = [package for module, package in needed.items() if importlib.util.find_spec(module) is None]
        if missing:
            raise SourceError(f"vggsound-plus needs {', '.join(missing)}; pip install 'polymodal[video]'")
        if self.config.cookies and not Path(self.config.cookies).is_file():
            raise SourceError(f"cookies file {self.config.cookies!r} does not exist")
        if self.config.rate_limit:
            from yt_dlp.utils import parse_bytes

            if parse_bytes(self.config.rate_limit) is None:
                raise SourceError(f"rate limit {self.config.rate_limit!r} is not a byte rate such as 500K or 2M")
        self.captioner.check()
        self.rows()  # reads the index, so that a missing file fails before any shard

    def make_shard(self, spec: ShardSpec) -> Iterator[Row]:
        return self.rebuild_shard(spec, {})

    def rebuild_shard(self, spec: ShardSpec, previous: Mapping[str, dict[str, bytes]]) -> Iterator[Row]:
        rows = self.rows()[spec.split][spec.start:spec.start + spec.count]
        keys = [sample_key(spec.start + n) for n in range(len(rows))]
        # Read what can be reused first, here: the previous tar is not safe to read from several threads.
        reused = {n: sample for n, (key, row) in enumerate(zip(keys, rows))
                  if (sample := _reusable(previous, key, row))}
        todo = [n for n, row in enumerate(rows) if row.ok and n not in reused]
        with ThreadPoolExecutor(self.config.threads) as pool:
            made = dict(zip(todo, pool.map(self._make, [rows[n] for n in todo])))
        fresh = [n for n in todo if isinstance(made[n], Made)]
        captions = dict(zip(fresh, self.captioner.caption(
            [Clip(rows[n].clip_name, rows[n].label, made[n].extracted.jpeg) for n in fresh]
        )))
        for n, (key, row) in enumerate(zip(keys, rows)):
            info = self._row_info(row)
            if not row.ok:
                yield Row(key, None, row.failure, f"line {row.line}: {row.problem}", info)
            elif n in reused:
                yield Row(key, reused[n], info=info)
            elif isinstance(made[n], ClipFailure):
                yield Row(key, None, made[n].kind, made[n].message, info)
            else:
                yield Row(key, self._sample(row, made[n], captions[n]), info=info)

    def _make(self, row: IndexRow) -> Made | ClipFailure:
        """Fetch and cut one row; a failure is returned, so that the other rows go on. A full TMPDIR stops the build."""
        try:
            with (fatal_when_full(tempfile.gettempdir(), "TMPDIR, where clips are fetched and cut"),
                  tempfile.TemporaryDirectory(prefix="vggsound-fetch-") as folder):
                got = self.source.fetch(row, Path(folder), self.config.fetch_options())
                return Made(got.url, extract(got.path, got.window_start, self.config.frame_size, got.url))
        except ClipFailure as failure:
            return failure

    def _sample(self, row: IndexRow, made: Made, caption: str) -> dict[str, bytes]:
        x = made.extracted
        meta = {
            "ytid": row.ytid,
            "start": row.start,
            "label": row.label,
            "class_id": row.cls,
            "split": row.split,
            "index_line": row.line,
            "captioner": self.captioner.name,
            "source": parse_spec(self.config.source).kind,
            "url": made.url,
            "frame_time": row.start + CLIP_SECONDS / 2,  # second of the YouTube video the frame shows
            "frame_size": list(x.frame_size),
            "audio_seconds": x.audio_seconds,
        }
        return {
            IMAGE: x.jpeg,
            AUDIO: x.flac,
            TEXT: caption.encode(),
            LABEL: str(row.cls).encode(),
            META: json.dumps(meta, ensure_ascii=False, sort_keys=True).encode(),
        }

    def _row_info(self, row: IndexRow) -> dict:
        if not row.ok:
            return {"line": row.line, "split": row.split, "text": row.text}
        return {"line": row.line, "split": row.split, "ytid": row.ytid, "start": row.start, "label": row.label,
                "url": self.source.url(row)}

    def tool_versions(self) -> dict[str, str]:
        """What can change the bytes: ffmpeg cuts and encodes, yt-dlp picks the format, the captioner writes."""
        tools = {"ffmpeg": media.tool_version("ffmpeg"), "ffmpeg-python": metadata.version("ffmpeg-python")}
        if self.source.downloads:
            tools["yt-dlp"] = metadata.version("yt-dlp")
        return {**tools, **self.captioner.tool_versions()}

    def manifest_info(self) -> dict:
        """For a folder of clips, a digest of the clips the index names (name, size, sha256): what this build
        read. Information, not identity: the same rows fetched from YouTube differ anyway."""
        if not isinstance(self.source, ClipFolder):
            return {}
        lines = []
        for row in sorted({row.clip_name for rows in self.rows().values() for row in rows if row.ok}):
            path = self.source.folder / f"{row}.mp4"
            if path.is_file():
                with open(path, "rb") as f:
                    lines.append(f"{path.name} {path.stat().st_size} {hashlib.file_digest(f, 'sha256').hexdigest()}\n")
        return {"clips": {"count": len(lines), "sha256": hashlib.sha256("".join(lines).encode()).hexdigest()}}

    def card_fields(self, manifest: dict) -> dict[str, str]:
        return card_fields(self.config, manifest)

    def card_metadata(self, manifest: dict) -> dict:
        return card_metadata(self.config, manifest)

    def features(self) -> list[dict]:
        return media_features({
            "ytid": "string", "start": "int64", "label": "string", "class_id": "int64", "split": "string",
            "index_line": "int64", "captioner": "string", "source": "string", "url": "string",
            "frame_time": "float64", "frame_size": ["int64"], "audio_seconds": "float64",
        })


def _reusable(previous: Mapping[str, dict[str, bytes]], key: str, row: IndexRow) -> dict[str, bytes] | None:
    """The previous build's sample for this key, if it is this row's: a retry reuses it instead of fetching."""
    sample = previous.get(key) if row.ok else None
    if sample is None:
        return None
    meta = json.loads(sample["json"])
    return sample if (meta["ytid"], meta["start"]) == (row.ytid, row.start) else None

