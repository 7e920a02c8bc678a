"""Frozen features of a Symile-M3 dataset, computed once per (dataset, encoder, split) and cached.

    CACHE/<dataset_id>/<encoder>/<split>.safetensors
        image (N, ...) float32, audio (N, ...) float32, text (N, L) int64,
        cls (N,) int64, missing (N, 3) uint8 by (image, audio, text)
        metadata: encoder, dataset_id, and the featurizer's "info" as JSON

CACHE is --out, else $POLYMODAL_FEATURES, else ~/.cache/polymodal/features.
A file is written under a temporary name and renamed, so a killed run never
leaves a half file that a later one trusts; an existing file is reused.

Encoders (FEATURIZERS):
    embedded  deterministic preprocessing for the digits variant: grayscale pixels,
              log-mel frames, UTF-8 byte ids; models learn their encoders from these
    paper     the paper's frozen encoders: CLIP ViT-L/14 pooler output, Whisper-large-v3
              encoder mean-pooled, XLM-RoBERTa-large token ids (needs `transformers`)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from baselines.m3_encoders import EMBEDDED, EmbeddedLayout
from benchmarks.data import load_manifest, split_urls

MODALITIES = ("image", "audio", "text")
SAMPLE_RATE = 16_000
BATCH = 64
PAPER_TEXT_LEN = 64  # XLM-R tokens per text


def cache_root(out: str | Path | None = None) -> Path:
    return Path(out or os.environ.get("POLYMODAL_FEATURES") or Path.home() / ".cache" / "polymodal" / "features")


def cache_path(data_dir, encoder: str, split: str, out=None) -> Path:
    return cache_root(out) / load_manifest(data_dir)["dataset_id"] / encoder / f"{split}.safetensors"


def log_mel(flac: bytes, n_mels: int, frames: int, n_fft: int, hop: int, floor: float = 1e-6) -> np.ndarray:
    """(n_mels, frames) log mel power of a clip at 16 kHz mono; a short clip is padded with silence."""
    import librosa
    import soundfile as sf

    wave, rate = sf.read(io.BytesIO(flac), dtype="float32", always_2d=True)
    wave = wave.mean(1)
    if rate != SAMPLE_RATE:
        wave = librosa.resample(wave, orig_sr=rate, target_sr=SAMPLE_RATE)
    mel = librosa.feature.melspectrogram(y=wave, sr=SAMPLE_RATE, n_fft=n_fft, hop_length=hop, n_mels=n_mels)
    out = np.full((n_mels, frames), np.log(floor), np.float32)
    logs = np.log(mel + floor)[:, :frames]
    out[:, : logs.shape[1]] = logs
    return out


def byte_ids(text: str, length: int, pad: int) -> np.ndarray:
    """UTF-8 bytes as token ids (byte b is b + 1), cropped or right-padded to ``length``."""
    ids = np.frombuffer(text.encode()[:length], np.uint8).astype(np.int64) + 1
    return np.pad(ids, (0, length - len(ids)), constant_values=pad)


def _memo(fn: Callable):
    """Cache a pure function of a sample's bytes: the embedded sources reuse few clips and images many times."""
    seen: dict[bytes, np.ndarray] = {}

    def call(data: bytes):
        key = hashlib.sha1(data).digest()
        if key not in seen:
            seen[key] = fn(data)
        return seen[key]

    return call


class EmbeddedFeaturizer:
    """Deterministic preprocessing only; no learned weights."""

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

    def __call__(self, jpegs: list[bytes], flacs: list[bytes], texts: list[str]) -> dict[str, np.ndarray]:
        return {
            "image": np.stack([self.image(j) for j in jpegs]),
            "audio": np.stack([self.audio(f) for f in flacs]),
            "text": np.stack([self.text(t) for t in texts]),
        }


class PaperFeaturizer:
    """The paper's frozen encoders through `transformers`; model names may be local paths."""

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
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.image_processor = CLIPImageProcessor.from_pretrained(image)
        self.image_model = CLIPVisionModel.from_pretrained(image).to(self.device).eval()
        self.audio_extractor = WhisperFeatureExtractor.from_pretrained(audio)
        self.audio_model = WhisperModel.from_pretrained(audio).get_encoder().to(self.device).eval()
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(text)
        vocab = len(self.tokenizer)
        self.info = {"text_vocab": vocab + 1, "text_pad": self.tokenizer.pad_token_id, "missing_token": vocab}

    def __call__(self, jpegs: list[bytes], flacs: list[bytes], texts: list[str]) -> dict[str, np.ndarray]:
        import soundfile as sf
        from PIL import Image

        torch = self.torch
        with torch.inference_mode():
            images = [Image.open(io.BytesIO(j)).convert("RGB") for j in jpegs]
            pixels = self.image_processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
            image = self.image_model(pixel_values=pixels).pooler_output
            waves = [sf.read(io.BytesIO(f), dtype="float32", always_2d=True)[0].mean(1) for f in flacs]
            mels = self.audio_extractor(waves, sampling_rate=SAMPLE_RATE, return_tensors="pt")["input_features"]
            audio = self.audio_model(mels.to(self.device)).last_hidden_state.mean(1)
        ids = self.tokenizer(texts, padding="max_length", truncation=True, max_length=self.text_len)["input_ids"]
        return {"image": image.float().cpu().numpy(), "audio": audio.float().cpu().numpy(),
                "text": np.asarray(ids, np.int64)}


#: Featurizers by name; the name is part of the cache key.
FEATURIZERS: dict[str, Callable[..., object]] = {"embedded": EmbeddedFeaturizer, "paper": PaperFeaturizer}


def samples(data_dir, split: str):
    """(jpeg, flac, text, meta) per sample of a split, in key order."""
    import webdataset as wds

    urls = split_urls(data_dir, split)
    pipeline = wds.WebDataset(urls, shardshuffle=False, empty_check=False, nodesplitter=lambda u: u)
    for s in pipeline.to_tuple("image.jpg", "audio.flac", "text.txt", "json"):
        yield s[0], s[1], s[2].decode(), json.loads(s[3])


def compute(data_dir, split: str, featurizer) -> dict[str, np.ndarray]:
    columns: dict[str, list[np.ndarray]] = {}
    cls, missing = [], []
    batch: list[tuple] = []

    def flush():
        jpegs, flacs, texts, _ = zip(*batch)
        for k, v in featurizer(list(jpegs), list(flacs), list(texts)).items():
            columns.setdefault(k, []).append(v)
        batch.clear()

    for sample in samples(data_dir, split):
        batch.append(sample)
        meta = sample[3]
        cls.append(meta["class_id"])
        missing.append([meta["missing"][m] for m in MODALITIES])
        if len(batch) == BATCH:
            flush()
    if batch:
        flush()
    arrays = {k: np.concatenate(v) for k, v in columns.items()}
    arrays["cls"] = np.asarray(cls, np.int64)
    arrays["missing"] = np.asarray(missing, np.uint8).reshape(-1, len(MODALITIES))
    # A missing text is one [MISSING] token, whatever the (empty) text tokenised to.
    gone = arrays["missing"][:, 2].astype(bool)
    arrays["text"][gone] = featurizer.info["text_pad"]
    arrays["text"][gone, 0] = featurizer.info["missing_token"]
    return arrays


def featurize(data_dir, encoder: str, split: str, out=None, featurizer=None) -> Path:
    """The cache file of (data_dir, encoder, split), computing it only if absent."""
    path = cache_path(data_dir, encoder, split, out)
    if path.is_file():
        return path
    if featurizer is None:
        if encoder not in FEATURIZERS:
            raise SystemExit(f"unknown encoder {encoder!r}; known: {', '.join(sorted(FEATURIZERS))}")
        featurizer = FEATURIZERS[encoder]()
    return write_cache(path, compute(data_dir, split, featurizer), data_dir, encoder, featurizer.info)


def write_cache(path: Path, arrays: dict[str, np.ndarray], data_dir, encoder: str, info: dict) -> Path:
    """Write under a temporary name, then rename: a killed run never leaves a half file that a later one trusts."""
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    meta = {"encoder": encoder, "dataset_id": load_manifest(data_dir)["dataset_id"], "info": json.dumps(info)}
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def read_cache(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """A cache file's arrays and the info its featurizer recorded."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    with safe_open(str(path), "np") as f:
        info = json.loads(f.metadata()["info"])
    return load_file(str(path)), info


def load_features(data_dir, encoder: str, split: str, out=None) -> tuple[dict[str, np.ndarray], dict]:
    """The cached arrays of a split (featurizing it first if needed) and the featurizer's info."""
    return read_cache(featurize(data_dir, encoder, split, out))


def featurize_all(data_dir, encoder: str, out=None, featurizer=None) -> list[Path]:
    """Every split of the dataset; one featurizer (one model load) serves them all."""
    splits = sorted(load_manifest(data_dir)["splits"])
    pending = [s for s in splits if not cache_path(data_dir, encoder, s, out).is_file()]
    if pending and featurizer is None:
        featurizer = FEATURIZERS[encoder]() if encoder in FEATURIZERS else None
    return [featurize(data_dir, encoder, s, out, featurizer) for s in splits]
