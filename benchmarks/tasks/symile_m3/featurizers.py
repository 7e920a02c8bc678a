"""Frozen features of a Symile-M3 dataset, cached by benchmarks.feature_cache.

    CACHE/<dataset_id>/<encoder>/<split>.safetensors
        image (N, ...) float32, audio (N, ...) float32, text (N, L) int64,
        cls (N,) int64, missing (N, 3) uint8 by (image, audio, text)

Encoders (FEATURIZERS):
    embedded  deterministic preprocessing for the digits variant: grayscale pixels,
              log-mel frames, UTF-8 byte ids; models learn their encoders from these
    paper     the paper's frozen encoders: CLIP ViT-L/14 pooler output, Whisper-large-v3
              encoder mean-pooled, XLM-RoBERTa-large token ids (needs `transformers`);
              the processors run in the loader's workers, the models on the rank's device
    av-embedded  VGG-sound+ datasets: the audio-visual layout of polymodal.benchmarks.tasks.vggsound_plus.featurizer
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from polymodal.baselines.layouts import EMBEDDED, EmbeddedLayout
from polymodal.benchmarks.data import load_manifest
from polymodal.benchmarks.tasks.vggsound_plus.featurizer import ENCODER as AV_ENCODER
from polymodal.benchmarks.tasks.vggsound_plus.featurizer import AudioVisualFeaturizer
from polymodal.benchmarks.feature_cache import Row, cached_split, read_cache
from polymodal.benchmarks.preprocess import SAMPLE_RATE, byte_ids, log_mel

MODALITIES = ("image", "audio", "text")
PAPER_TEXT_LEN = 64  # XLM-R tokens per text


def _memo(fn: Callable):
    """Cache a pure function of a sample's bytes: the embedded sources reuse few clips and images many times."""
    seen: dict[bytes, np.ndarray] = {}

    def call(data: bytes):
        key = hashlib.sha1(data).digest()
        if key not in seen:
            seen[key] = fn(data)
        return seen[key]

    return call


def _with_labels(arrays: dict[str, np.ndarray], rows: list[Row], info: dict) -> dict[str, np.ndarray]:
    """Add cls and missing (image, audio, text); a missing text becomes one [MISSING] token."""
    arrays["cls"] = np.asarray([meta["class_id"] for *_, meta in rows], np.int64)
    arrays["missing"] = np.asarray([[meta["missing"][m] for m in MODALITIES] for *_, meta in rows], np.uint8)
    gone = arrays["missing"][:, 2].astype(bool)
    arrays["text"][gone] = info["text_pad"]
    arrays["text"][gone, 0] = info["missing_token"]
    return arrays


class EmbeddedFeaturizer:
    """Deterministic preprocessing only; no learned weights."""

    builder = "symile-m3"  # the datasets it reads

    def __init__(self, layout: EmbeddedLayout = EMBEDDED):
        self.layout = layout
        self.image, self.audio = _memo(self._image), _memo(self._audio)
        self.info = {"text_vocab": layout.vocab, "text_pad": layout.pad, "missing_token": layout.missing_token}

    def _image(self, jpeg: bytes) -> np.ndarray:
        from PIL import Image

        side = self.layout.image_side
        pixels = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L").resize((side, side), Image.BILINEAR), np.float32)
        return (pixels.reshape(-1) / 255.0 - 0.5) / 0.5

    def _audio(self, flac: bytes) -> np.ndarray:
        mel = log_mel(flac, self.layout.n_mels, self.layout.frames, n_fft=512, hop=256)
        return (mel.reshape(-1) + 6.0) / 6.0  # roughly zero-mean, unit-scale log power

    def text(self, text: str) -> np.ndarray:
        return byte_ids(text, self.layout.text_len, self.layout.pad)

    def prepare(self, rows: list[Row]) -> dict[str, np.ndarray]:
        return _with_labels({
            "image": np.stack([self.image(jpeg) for jpeg, *_ in rows]),
            "audio": np.stack([self.audio(flac) for _, flac, *_ in rows]),
            "text": np.stack([self.text(text) for *_, text, _ in rows]),
        }, rows, self.info)


class PaperFeaturizer:
    """The paper's frozen encoders through `transformers`; model names may be local paths."""

    builder = "symile-m3"

    def __init__(self, image: str = "openai/clip-vit-large-patch14", audio: str = "openai/whisper-large-v3",
                 text: str = "FacebookAI/xlm-roberta-large", text_len: int = PAPER_TEXT_LEN, tokenizer=None, device: str | None = None):
        import torch
        from transformers import (
            AutoTokenizer,
            CLIPImageProcessor,
            CLIPVisionModel,
            WhisperFeatureExtractor,
            WhisperModel,
        )

        self.torch, self.text_len = torch, text_len
        # Under torchrun each rank takes its own GPU (LOCAL_RANK); one process takes the first.
        local = int(os.environ.get("LOCAL_RANK", 0))
        self.device = device or (f"cuda:{local}" if torch.cuda.is_available() else "cpu")
        self.image_processor = CLIPImageProcessor.from_pretrained(image)
        self.image_model = CLIPVisionModel.from_pretrained(image).to(self.device).eval()
        self.audio_extractor = WhisperFeatureExtractor.from_pretrained(audio)
        self.audio_model = WhisperModel.from_pretrained(audio).get_encoder().to(self.device).eval()
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(text)
        vocab = len(self.tokenizer)
        self.info = {"text_vocab": vocab + 1, "text_pad": self.tokenizer.pad_token_id, "missing_token": vocab}

    def prepare(self, rows: list[Row]) -> dict[str, np.ndarray]:
        """The processors' inputs for the models, and the token ids (CPU; in the loader's workers)."""
        import soundfile as sf
        from PIL import Image

        images = [Image.open(io.BytesIO(jpeg)).convert("RGB") for jpeg, *_ in rows]
        waves = [sf.read(io.BytesIO(flac), dtype="float32", always_2d=True)[0].mean(1) for _, flac, *_ in rows]
        texts = [text for *_, text, _ in rows]
        ids = self.tokenizer(texts, padding="max_length", truncation=True, max_length=self.text_len)["input_ids"]
        return _with_labels({
            "pixel_values": self.image_processor(images=images, return_tensors="np")["pixel_values"],
            "input_features": self.audio_extractor(waves, sampling_rate=SAMPLE_RATE, return_tensors="np")["input_features"],
            "text": np.asarray(ids, np.int64),
        }, rows, self.info)

    def encode(self, prepared: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The frozen models on the rank's device."""
        torch = self.torch
        out = {k: v for k, v in prepared.items() if k not in ("pixel_values", "input_features")}
        with torch.inference_mode():
            pixels = torch.from_numpy(prepared["pixel_values"]).to(self.device)
            out["image"] = self.image_model(pixel_values=pixels).pooler_output.float().cpu().numpy()
            mels = torch.from_numpy(prepared["input_features"]).to(self.device)
            out["audio"] = self.audio_model(mels).last_hidden_state.mean(1).float().cpu().numpy()
        return out


#: Featurizers by name; the name is part of the cache key, and each reads the datasets of its ``builder``.
FEATURIZERS: dict[str, Callable[..., object]] = {
    "embedded": EmbeddedFeaturizer,
    "paper": PaperFeaturizer,
    AV_ENCODER: AudioVisualFeaturizer,
}


def featurize(data_dir, encoder: str, split: str, out=None, featurizer=None, **loader) -> Path:
    """The cache file of (data_dir, encoder, split), computing it only if absent; ``loader``: workers, seed, progress."""
    return cached_split(data_dir, encoder, split, lambda: featurizer or _featurizer(data_dir, encoder), out, **loader)


def _featurizer(data_dir, encoder: str):
    """A new featurizer by name, once the dataset is known to be of the kind it reads."""
    if encoder not in FEATURIZERS:
        raise SystemExit(f"unknown encoder {encoder!r}; known: {', '.join(sorted(FEATURIZERS))}")
    built, reads = load_manifest(data_dir)["builder"], FEATURIZERS[encoder].builder
    if built != reads:
        fitting = sorted(name for name, f in FEATURIZERS.items() if f.builder == built)
        raise SystemExit(f"encoder {encoder!r} reads {reads} datasets, and {data_dir} is a {built} dataset; "
                         f"its encoders: {', '.join(fitting) or 'none'}")
    return FEATURIZERS[encoder]()


def load_features(data_dir, encoder: str, split: str, out=None) -> tuple[dict[str, np.ndarray], dict]:
    """The cached arrays of a split (featurizing it first if needed) and the featurizer's info."""
    return read_cache(featurize(data_dir, encoder, split, out))


def featurize_all(data_dir, encoder: str, out=None, featurizer=None, **loader) -> list[Path]:
    """Every split of the dataset; one featurizer (one model load), made only if a split is missing, serves them all."""
    make = functools.cache(lambda: featurizer or _featurizer(data_dir, encoder))
    return [cached_split(data_dir, encoder, s, make, out, **loader) for s in sorted(load_manifest(data_dir)["splits"])]
