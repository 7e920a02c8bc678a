"""The featurizers of Symile-M3 datasets (benchmarks.featurize), whose features benchmarks.feature_cache keeps.

    CACHE/<content digest>/<encoder>/<split>/<shard>.safetensors
        image (N, ...) float32, audio (N, ...) float32, text (N, L) int64,
        cls (N,) int64, missing (N, 3) uint8 by (image, audio, text)

Encoders (SymileM3Task.featurizers):
    embedded  deterministic preprocessing for the digits variant: grayscale pixels,
              log-mel frames, UTF-8 byte ids; models learn their encoders from these
    paper     the paper's frozen encoders: CLIP ViT-L/14 pooler output, Whisper-large-v3
              encoder mean-pooled, XLM-RoBERTa-large token ids (needs `transformers`);
              the processors run in the loader's workers, the models on the rank's device.
              The ids are as wide as the dataset's longest text, so no word is cut: one pass
              over the texts of every split decides it before any split is featurized, and
              every split's info records it (text_len), so the splits' widths agree
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from polymodal.baselines.layouts import EMBEDDED, EmbeddedLayout
from polymodal.benchmarks.data import load_manifest, shard_samples
from polymodal.benchmarks.feature_cache import RawSample
from polymodal.benchmarks.featurize import Featurizer
from polymodal.benchmarks.preprocess import byte_ids, log_mel
from polymodal.builders.core import storage
from polymodal.builders.schema import SAMPLE_RATE, TEXT

MODALITIES = ("image", "audio", "text")
#: The most XLM-R tokens a text may have: its 514 positions less the two its padding offset takes. Models are
#: built for this width; the featurizer's ids are as wide as the dataset's longest text, which must fit in it.
PAPER_TEXT_MAX = 512


def dataset_texts(data_dir) -> Iterator[str]:
    """Every text of every split of the dataset at ``data_dir``, in manifest order (missing texts are empty)."""
    for shard in load_manifest(data_dir)["shards"]:
        for sample in shard_samples(storage.join(data_dir, shard["path"])):
            yield sample[TEXT].decode()


def longest_text(texts: Iterable[str], tokenizer, batch: int = 1024) -> int:
    """The most tokens, special tokens included, that ``tokenizer`` gives any of ``texts`` (at least 1): the
    width that cuts none of them. A maximum, so it does not depend on the texts' order."""
    longest, texts = 1, iter(texts)
    while chunk := list(itertools.islice(texts, batch)):  # streamed: a large dataset's texts need not fit at once
        longest = max(longest, *map(len, tokenizer(chunk)["input_ids"]))
    return longest


def _memo(fn: Callable):
    """Cache a pure function of a sample's bytes: the embedded sources reuse few clips and images many times."""
    seen: dict[bytes, np.ndarray] = {}

    def call(data: bytes):
        key = hashlib.sha1(data).digest()
        if key not in seen:
            seen[key] = fn(data)
        return seen[key]

    return call


def _with_labels(arrays: dict[str, np.ndarray], rows: list[RawSample], info: dict) -> dict[str, np.ndarray]:
    """Add cls and missing (image, audio, text); a missing text becomes one [MISSING] token."""
    arrays["cls"] = np.asarray([meta["class_id"] for *_, meta in rows], np.int64)
    arrays["missing"] = np.asarray([[meta["missing"][m] for m in MODALITIES] for *_, meta in rows], np.uint8)
    gone = arrays["missing"][:, 2].astype(bool)
    arrays["text"][gone] = info["text_pad"]
    arrays["text"][gone, 0] = info["missing_token"]
    return arrays


class EmbeddedFeaturizer(Featurizer):
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

    def prepare(self, rows: list[RawSample]) -> dict[str, np.ndarray]:
        return _with_labels({
            "image": np.stack([self.image(jpeg) for jpeg, *_ in rows]),
            "audio": np.stack([self.audio(flac) for _, flac, *_ in rows]),
            "text": np.stack([self.text(text) for *_, text, _ in rows]),
        }, rows, self.info)


class PaperFeaturizer(Featurizer):
    """The paper's frozen encoders through `transformers`; model names may be local paths.

    The text width is ``text_len`` where given, else the longest text of the dataset at ``data_dir``
    (:func:`longest_text` over :func:`dataset_texts`).
    """

    def __init__(self, image: str = "openai/clip-vit-large-patch14", audio: str = "openai/whisper-large-v3",
                 text: str = "FacebookAI/xlm-roberta-large", text_len: int | None = None, tokenizer=None,
                 device: str | None = None, data_dir=None):
        import torch
        from transformers import (
            AutoTokenizer,
            CLIPImageProcessor,
            CLIPVisionModel,
            WhisperFeatureExtractor,
            WhisperModel,
        )

        if text_len is None and data_dir is None:
            raise ValueError("PaperFeaturizer needs text_len, or data_dir to take the longest text's length from")
        self.torch = torch
        # Under torchrun each rank takes its own GPU (LOCAL_RANK); one process takes the first.
        local = int(os.environ.get("LOCAL_RANK", 0))
        self.device = device or (f"cuda:{local}" if torch.cuda.is_available() else "cpu")
        self.image_processor = CLIPImageProcessor.from_pretrained(image)
        self.image_model = CLIPVisionModel.from_pretrained(image).to(self.device).eval()
        self.audio_extractor = WhisperFeatureExtractor.from_pretrained(audio)
        self.audio_model = WhisperModel.from_pretrained(audio).get_encoder().to(self.device).eval()
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(text)
        self.text_len = text_len or longest_text(dataset_texts(data_dir), self.tokenizer)
        if self.text_len > PAPER_TEXT_MAX:
            raise ValueError(f"{data_dir or 'text_len'}: texts of {self.text_len} tokens, more than the "
                             f"{PAPER_TEXT_MAX} positions of the text model")
        vocab = len(self.tokenizer)
        self.info = {"text_vocab": vocab + 1, "text_pad": self.tokenizer.pad_token_id, "missing_token": vocab,
                     "text_len": self.text_len}

    @classmethod
    def for_dataset(cls, data_dir) -> PaperFeaturizer:
        return cls(data_dir=data_dir)

    def text_ids(self, texts: list[str]) -> np.ndarray:
        """(N, text_len) token ids, pad-filled; a longer text is refused, not cut."""
        ids = self.tokenizer(texts, padding="max_length", max_length=self.text_len)["input_ids"]
        longest = max(map(len, ids), default=0)
        if longest > self.text_len:
            raise ValueError(f"a text of {longest} tokens, more than the {self.text_len} this featurizer's texts have")
        return np.asarray(ids, np.int64)

    def prepare(self, rows: list[RawSample]) -> dict[str, np.ndarray]:
        """The processors' inputs for the models, and the token ids (CPU; in the loader's workers)."""
        import soundfile as sf
        from PIL import Image

        images = [Image.open(io.BytesIO(jpeg)).convert("RGB") for jpeg, *_ in rows]
        waves = [sf.read(io.BytesIO(flac), dtype="float32", always_2d=True)[0].mean(1) for _, flac, *_ in rows]
        return _with_labels({
            "pixel_values": self.image_processor(images=images, return_tensors="np")["pixel_values"],
            # Zero mean, unit variance per clip before the log-mel, as the official save_representations.py asks.
            "input_features": self.audio_extractor(waves, sampling_rate=SAMPLE_RATE, do_normalize=True,
                                                   return_tensors="np")["input_features"],
            "text": self.text_ids([text for *_, text, _ in rows]),
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

