"""Symile-M3: multilingual image-text-audio triples (Symile, arXiv 2411.01053, Section 5.1).

Per sample, in the paper's "disjoint" mode, with w languages: draw a language
L and a class y uniformly; the audio is a clip in L and the image one of class
y. The text holds y's name in L and w-1 distractor words, each of another
class and another language, so that every language appears exactly once; the
words are shuffled and joined with "_". Only text and audio together name the
class: the audio says which word counts.

Offline by default: scikit-learn's digits, number words, and espeak-ng speech.
With --images imagenet:PATH the class names come from a bundled Babel-ImageNet
table; --audio commonvoice:PATH reads a Common Voice release.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from polymodal.builders.core import media
from polymodal.builders.core.base import Builder, Row, ShardSpec, sample_key, shard_rng
from polymodal.builders.core.options import Preset, SpecKind, check_values, option
from polymodal.builders.schema import AUDIO, IMAGE, LABEL, MEDIA_FIELDS, META, TEXT, media_features
from polymodal.builders.symile_m3.card import card_fields, card_metadata
from polymodal.builders.symile_m3.names import SEPARATOR
from polymodal.builders.symile_m3.sources import (
    AUDIO_SOURCES,
    Catalog,
    check_sources,
    default_names,
    open_catalog,
)

LANGUAGE_SETS = {
    "M3-2": ("en", "el"),
    "M3-5": ("el", "en", "hi", "ja", "uk"),
    "M3-10": ("ar", "el", "en", "hi", "ja", "ko", "te", "th", "uk", "zh-CN"),
}
# (train, val, test) of the paper (l) and of its Hugging Face variants.
SIZES = {
    "xs": (500_000, 25_000, 25_000),
    "s": (1_000_000, 50_000, 50_000),
    "m": (5_000_000, 250_000, 250_000),
    "l": (10_000_000, 500_000, 500_000),
}
MODALITIES = ("image", "audio", "text")
MISSING_SPLITS = ("train", "val")  # the test set stays complete
BYTE_SHAPING_PACKAGES = ("numpy", "pillow", "soundfile", "scipy", "scikit-learn", "num2words", "pykakasi", "pypinyin")


@dataclass(frozen=True)
class M3Config:
    languages: tuple[str, ...] = option(
        LANGUAGE_SETS["M3-5"], "a language set (" + "; ".join(f"{k}: {','.join(v)}" for k, v in LANGUAGE_SETS.items())
        + ") or a comma-separated list", parse=lambda text: language_list(text), show=",".join, metavar="SET|LIST")
    images: str = option(
        "digits", "digits (scikit-learn, bundled), imagenet:PATH (ILSVRC train layout, one folder per synset) or "
        "imagefolder:PATH (one folder per class, names in PATH/classes.json)", identity=SpecKind())
    audio: str = option(
        "espeak", "espeak (offline speech, needs espeak-ng) or commonvoice:PATH (a Common Voice release, needs ffmpeg)",
        identity=SpecKind())
    names: str = option(
        "", "class-name table: digits (number words), babel (bundled Babel-ImageNet) or translations:FILE (the "
        "paper's translations.json form {class: {synset_id, cls_id, <lang>: name}}); default: the image source's own",
        shorthands=(("--translations", "FILE", "translations:{}"),), identity=SpecKind(files=("translations",)))
    train: int = option(10_000, "training samples (overrides --size)", preset="size")
    val: int = option(1_000, "validation samples (overrides --size)", preset="size")
    test: int = option(2_000, "test samples (overrides --size)", preset="size")
    missing_p: float = option(
        0.0, "probability that each modality of a train or val sample is missing, independently; the test set stays "
        "complete", high=1)
    seed: int = option(0, "master seed")
    shard_size: int = option(1_000, "samples per shard", low=1)

    def __post_init__(self):
        object.__setattr__(self, "languages", tuple(self.languages))  # a manifest round trip gives a list
        if not self.names:
            object.__setattr__(self, "names", default_names(self.images))
        if len(self.languages) < 2 or len(set(self.languages)) != len(self.languages):
            raise ValueError(f"languages must be two or more distinct codes, got {self.languages}")
        check_values(self)


@dataclass
class Draws:
    """A shard's random choices; indices point into the catalog's languages, classes and pools."""

    language: np.ndarray  # (n,) the audio's language L
    cls: np.ndarray  # (n,) the class y
    clip: np.ndarray  # (n,) audio clip in L's pool
    image: np.ndarray  # (n,) image of class y
    word_language: np.ndarray  # (n, w) language of each word, in text order
    word_cls: np.ndarray  # (n, w) class of each word, in text order
    missing: np.ndarray  # (n, 3) bool, by MODALITIES


def draw(rng: np.random.Generator, n: int, w: int, pool_sizes: np.ndarray, image_counts: np.ndarray,
         missing_p: float) -> Draws:
    """The paper's disjoint sampling for n samples, vectorised; the order of the draws is part of the format."""
    k = len(image_counts)
    language = rng.integers(w, size=n)
    cls = rng.integers(k, size=n)
    clip = rng.integers(pool_sizes[language])
    image = rng.integers(image_counts[cls])
    # w-1 distinct distractor classes other than y, in uniformly random order: the w-1 smallest of k random keys.
    keys = rng.random((n, k))
    keys[np.arange(n), cls] = 2.0
    distractors = np.argsort(keys, axis=1, kind="stable")[:, : w - 1]
    # Distractor j takes the j-th language other than L, so every language appears once.
    others = np.array([[lang for lang in range(w) if lang != target] for target in range(w)])
    unshuffled_language = np.concatenate([language[:, None], others[language]], axis=1)
    unshuffled_cls = np.concatenate([cls[:, None], distractors], axis=1)
    order = np.argsort(rng.random((n, w)), axis=1, kind="stable")
    missing = rng.random((n, len(MODALITIES))) < missing_p
    return Draws(
        language, cls, clip, image,
        np.take_along_axis(unshuffled_language, order, axis=1),
        np.take_along_axis(unshuffled_cls, order, axis=1),
        missing,
    )


class SymileM3Builder(Builder):
    presets = (Preset("--size", ("train", "val", "test"), SIZES, "the published split sizes, train/val/test"),)
    name = "symile-m3"
    version = "2.0.0"  # 2.0: members named by extension alone (jpg, flac, txt), as stock WebDataset readers expect
    prefix = "m3"
    fields = MEDIA_FIELDS
    card = "symile_m3.md"
    Config = M3Config

    def catalog(self) -> Catalog:
        c = self.config
        return open_catalog(c.languages, c.images, c.audio, c.names)

    def split_sizes(self) -> dict[str, int]:
        return {"train": self.config.train, "val": self.config.val, "test": self.config.test}

    def check_environment(self) -> None:
        check_sources(self.config.images, self.config.audio)  # on every build: the catalog is cached per process
        self.catalog()  # reads every source's listing, so a missing one fails here and not in a shard

    def prepare(self) -> None:
        self.catalog().audio.prepare()

    def make_shard(self, spec: ShardSpec) -> Iterator[Row]:
        c, cat = self.config, self.catalog()
        langs = c.languages
        pool_sizes = np.array([cat.audio.pool_size(lang) for lang in langs])
        image_counts = np.array([cat.images.count(cls.key) for cls in cat.classes])
        missing_p = c.missing_p if spec.split in MISSING_SPLITS else 0.0
        d = draw(shard_rng(c.seed, spec), spec.count, len(langs), pool_sizes, image_counts, missing_p)
        for n in range(spec.count):
            target = cat.classes[d.cls[n]]
            language = langs[d.language[n]]
            words = [(cat.classes[k].names[langs[lang]], langs[lang], cat.classes[k].cls_id)
                     for lang, k in zip(d.word_language[n], d.word_cls[n])]
            missing = dict(zip(MODALITIES, map(bool, d.missing[n])))
            image_ref, jpeg = cat.images.image(target.key, int(d.image[n]))
            audio_ref, flac = cat.audio.clip(language, int(d.clip[n]))
            meta = {
                "language": language,
                "class_id": target.cls_id,
                "class_key": target.key,
                "target": target.names[language],
                "words": [{"word": word, "language": lang, "class_id": k} for word, lang, k in words],
                "image": image_ref,
                "audio": audio_ref,
                "missing": missing,
            }
            sample = {
                IMAGE: media.blank_jpeg() if missing["image"] else jpeg,
                AUDIO: media.silent_flac() if missing["audio"] else flac,
                TEXT: b"" if missing["text"] else SEPARATOR.join(word for word, _, _ in words).encode(),
                LABEL: str(target.cls_id).encode(),
                META: json.dumps(meta, ensure_ascii=False, sort_keys=True).encode(),
            }
            yield Row(sample_key(spec.start + n), sample)

    def tool_versions(self) -> dict[str, str]:
        """Everything whose version can change the bytes: the audio source's programs and the packages."""
        import soundfile

        tools = {dist: metadata.version(dist) for dist in BYTE_SHAPING_PACKAGES}
        tools["libsndfile"] = soundfile.__libsndfile_version__
        for tool in AUDIO_SOURCES.spec(self.config.audio)[0].tools:
            tools[tool] = media.tool_version(tool)
        return tools

    def manifest_info(self) -> dict:
        cat = self.catalog()
        return {
            "language_set": language_set_name(self.config.languages),
            "classes_named_in_every_language": cat.named,
            "classes_used": len(cat.classes),
            "audio_pool": {lang: cat.audio.pool_size(lang) for lang in self.config.languages},
            **name_clashes(cat, self.config.languages),
        }

    def card_fields(self, manifest: dict) -> dict[str, str]:
        return card_fields(self.config, manifest)

    def card_metadata(self, manifest: dict) -> dict:
        return card_metadata(self.config, manifest)

    def features(self) -> list[dict]:
        return media_features({
            "audio": "string", "class_id": "int64", "class_key": "string", "image": "string", "language": "string",
            "missing": {m: "bool" for m in MODALITIES}, "target": "string",
            "words": [{"class_id": "int64", "language": "string", "word": "string"}],
        })


def language_list(text: str) -> tuple[str, ...]:
    if text in LANGUAGE_SETS:
        return LANGUAGE_SETS[text]
    return tuple(part.strip() for part in text.split(",") if part.strip())


def language_set_name(languages: tuple[str, ...]) -> str:
    return next((name for name, langs in LANGUAGE_SETS.items() if langs == languages), "custom")


def name_clashes(cat: Catalog, languages: tuple[str, ...]) -> dict[str, int]:
    """Names that do not identify one (class, language): the paper fixed these by hand, we report them."""
    shared_by_classes = sum(
        len(names) - len(set(names)) for names in ([c.names[lang] for c in cat.classes] for lang in languages)
    )
    languages_of: dict[str, set[str]] = {}
    for c in cat.classes:
        for lang in languages:
            languages_of.setdefault(c.names[lang], set()).add(lang)
    return {
        "names_shared_by_classes": shared_by_classes,
        "words_shared_by_languages": sum(len(langs) > 1 for langs in languages_of.values()),
    }
