"""Where Symile-M3 gets its images and its speech, each kind behind a registry of sources.

Image sources (`--images`): `digits` (scikit-learn's handwritten digits),
`imagenet:PATH` (ILSVRC layout, one folder per synset) and `imagefolder:PATH`
(one folder per class, named as the class-name table's keys).

Audio sources (`--audio`): `espeak` (a pool of espeak-ng utterances, built
once per build into a cache) and `commonvoice:PATH` (a Common Voice release:
PATH/<language>/clips/*.mp3 listed by PATH/<language>/train.tsv).

`open_catalog` ties a config's sources together: the classes that have a
name in every language and images, and the audio pool of every language.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from polymodal.builders.core import media
from polymodal.builders.symile_m3 import speech
from polymodal.builders.symile_m3.names import ImageClass, load_table
from polymodal.registry import Registry, parse_spec

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


# -- images --------------------------------------------------------------------
class ImageSource(Protocol):
    def has(self, key: str) -> bool: ...
    def count(self, key: str) -> int: ...
    def image(self, key: str, index: int) -> tuple[str, bytes]: ...  # (where it came from, JPEG bytes)


class DigitsImages:
    """scikit-learn's 1797 handwritten 8x8 digits, dark ink on white, scaled x4 (nearest) to 32x32."""

    SCALE = 4

    def __init__(self, _arg: str = ""):
        from sklearn.datasets import load_digits

        digits = load_digits()
        self.images = digits.images
        self.by_class = {str(d): np.flatnonzero(digits.target == d) for d in range(10)}
        self._jpegs: dict[int, bytes] = {}

    def has(self, key: str) -> bool:
        return key in self.by_class

    def count(self, key: str) -> int:
        return len(self.by_class[key])

    def image(self, key: str, index: int) -> tuple[str, bytes]:
        row = int(self.by_class[key][index])
        if row not in self._jpegs:
            from PIL import Image

            grey = np.round(255 - self.images[row] * (255 / 16)).astype(np.uint8)  # 0..16 ink -> white paper, dark ink
            image = Image.fromarray(grey).resize((8 * self.SCALE, 8 * self.SCALE), Image.Resampling.NEAREST)
            self._jpegs[row] = media.encode_jpeg(image)
        return f"digits:{row}", self._jpegs[row]


class FolderImages:
    """One folder per class under `root`, named by the class key; files sorted by name."""

    def __init__(self, root: str):
        if not root:
            raise media.SourceError("an image folder source needs its folder: imagenet:PATH or imagefolder:PATH")
        self.root = Path(root)
        if not self.root.is_dir():
            raise media.SourceError(f"image folder {self.root} does not exist")
        self._files: dict[str, list[str]] = {}

    def files(self, key: str) -> list[str]:
        if key not in self._files:
            folder = self.root / key
            files = sorted(
                p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
            if not files:
                raise media.SourceError(f"class folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            self._files[key] = files
        return self._files[key]

    def has(self, key: str) -> bool:
        return (self.root / key).is_dir()

    def count(self, key: str) -> int:
        return len(self.files(key))

    def image(self, key: str, index: int) -> tuple[str, bytes]:
        name = f"{key}/{self.files(key)[index]}"
        path = self.root / name
        try:
            data = path.read_bytes()
        except OSError as err:
            raise media.SourceError(f"unreadable image {path}: {err}") from None
        return name, media.as_jpeg(data, str(path))


def imagenet_images(root: str) -> FolderImages:
    """Accept the Kaggle download's root as well as its train folder of synsets."""
    train = Path(root) / "ILSVRC" / "Data" / "CLS-LOC" / "train"
    return FolderImages(str(train if train.is_dir() else root))


IMAGE_SOURCES: Registry[Callable[[str], ImageSource]] = Registry("image source", {
    "digits": DigitsImages,
    "imagenet": imagenet_images,
    "imagefolder": FolderImages,
}, takes_arg={"imagenet", "imagefolder"}, forms="digits, imagenet:PATH or imagefolder:PATH", error=media.SourceError)

# The class-name table each image source reads unless --translations names one.
DEFAULT_NAMES: dict[str, Callable[[str], str]] = {
    "digits": lambda _arg: "digits",
    "imagenet": lambda _arg: "babel",
    "imagefolder": lambda arg: f"translations:{Path(arg) / 'classes.json'}",
}


def default_names(images: str) -> str:
    IMAGE_SOURCES.spec(images)  # an unknown source fails with the registry's message
    kind, arg = parse_spec(images)
    return DEFAULT_NAMES[kind](arg)


# -- audio ---------------------------------------------------------------------
class AudioSource(Protocol):
    tools: tuple[str, ...]

    def pool_size(self, language: str) -> int: ...
    def clip(self, language: str, index: int) -> tuple[str, bytes]: ...  # (where it came from, 16 kHz mono FLAC)
    def prepare(self) -> int: ...  # one-off work before the shards; returns how many items it made


class EspeakAudio:
    """Per language, the class names of that language read aloud by espeak-ng (each distinct name once)."""

    tools = (speech.ESPEAK,)

    def __init__(self, _arg: str, languages: tuple[str, ...], classes: list[ImageClass]):
        missing = [speech.voice_for(lang).name for lang in languages if speech.voice_for(lang).name not in speech.available_voices()]
        if missing:
            raise media.SourceError(f"espeak-ng has no voice {', '.join(missing)}; `espeak-ng --voices` lists those it has")
        self.texts = {lang: list(dict.fromkeys(c.names[lang] for c in classes)) for lang in languages}
        self._flacs: dict[tuple[str, int], bytes] = {}

    @cached_property
    def pool(self) -> dict[str, list[speech.Utterance]]:
        return {lang: [speech.utterance(lang, text) for text in texts] for lang, texts in self.texts.items()}

    def prepare(self) -> int:
        return speech.synthesize_missing(u for pool in self.pool.values() for u in pool)

    def pool_size(self, language: str) -> int:
        return len(self.texts[language])

    def clip(self, language: str, index: int) -> tuple[str, bytes]:
        if (language, index) not in self._flacs:
            self._flacs[language, index] = speech.read(self.pool[language][index])
        return f"espeak:{language}:{self.texts[language][index]}", self._flacs[language, index]


class CommonVoiceAudio:
    """Clips of a Common Voice release, decoded by ffmpeg to 16 kHz mono. Zero-length clips are never used.

    The pool of a language is its train.tsv (the paper samples the train
    split) less the clips clip_durations.tsv gives 0 ms. A clip that still
    decodes to nothing is replaced by the next one in the pool.
    """

    tools = ("ffmpeg",)
    TSV = "train.tsv"
    DURATIONS = "clip_durations.tsv"

    def __init__(self, root: str, languages: tuple[str, ...], _classes: list[ImageClass]):
        if not root:
            raise media.SourceError("the commonvoice audio source needs its folder: commonvoice:PATH")
        self.root = Path(root)
        self.clips = {lang: self._pool(lang) for lang in languages}

    def _pool(self, language: str) -> list[str]:
        tsv = self.root / language / self.TSV
        if not tsv.is_file():
            raise media.SourceError(f"Common Voice has no {tsv}; expected the release layout PATH/<language>/{self.TSV}")
        empty: set[str] = set()
        durations = self.root / language / self.DURATIONS
        if durations.is_file():
            empty = {row["clip"] for row in _tsv_rows(durations) if float(row["duration[ms]"]) == 0}
        clips = [row["path"] for row in _tsv_rows(tsv) if row["path"] not in empty]
        if not clips:
            raise media.SourceError(f"{tsv} lists no usable clips")
        return clips

    def prepare(self) -> int:
        return 0

    def pool_size(self, language: str) -> int:
        return len(self.clips[language])

    def clip(self, language: str, index: int) -> tuple[str, bytes]:
        """Clip `index`, or the next one in the pool if it decodes to nothing."""
        pool = self.clips[language]
        for step in range(len(pool)):
            name = f"{language}/clips/{pool[(index + step) % len(pool)]}"
            flac = _clip_flac(str(self.root / name))
            if flac is not None:
                return name, flac
        raise media.SourceError(f"every Common Voice clip of {language} in {self.root} decodes to nothing")


@lru_cache(maxsize=1024)  # the paper reuses clips; about 100 MB of FLAC at most
def _clip_flac(path: str) -> bytes | None:
    """A clip as 16 kHz mono FLAC, or None when it decodes to nothing."""
    pcm = media.decode_with_ffmpeg(path)
    return media.flac_bytes(pcm) if pcm.size else None


def _tsv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


# Each is called with (its PATH or "", the languages, the classes drawn).
AUDIO_SOURCES: Registry[type[AudioSource]] = Registry("audio source", {
    "espeak": EspeakAudio,
    "commonvoice": CommonVoiceAudio,
}, takes_arg={"commonvoice"}, forms="espeak or commonvoice:PATH", error=media.SourceError)


# -- the catalog ---------------------------------------------------------------
@dataclass
class Catalog:
    named: int  # classes with a name in every language
    classes: list[ImageClass]  # of those, the classes that have images: the ones a build draws
    images: ImageSource
    audio: AudioSource


def check_sources(images: str, audio: str) -> None:
    """Fail early, naming what is unknown or missing, before any source is read."""
    IMAGE_SOURCES.spec(images)
    source, _ = AUDIO_SOURCES.spec(audio)
    audio_kind = parse_spec(audio).kind
    for tool in source.tools:
        media.require_tool(tool, f"the {audio_kind} audio source")


@lru_cache(maxsize=4)
def open_catalog(languages: tuple[str, ...], images: str, audio: str, names: str) -> Catalog:
    """Resolve a config's sources once per process; shards built in the same process share it."""
    check_sources(images, audio)
    named = load_table(names, languages)
    make_images, image_arg = IMAGE_SOURCES.spec(images)
    image_source = make_images(image_arg)
    classes = [c for c in named if image_source.has(c.key)]
    if len(classes) < len(languages):
        raise media.SourceError(
            f"{len(classes)} classes have a name in every language of {','.join(languages)} ({names}) and images "
            f"in {images}; a text of {len(languages)} words needs at least {len(languages)}"
        )
    make_audio, audio_arg = AUDIO_SOURCES.spec(audio)
    audio_source = make_audio(audio_arg, languages, classes)
    return Catalog(len(named), classes, image_source, audio_source)
