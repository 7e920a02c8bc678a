"""The featurizer of VGG-sound+ datasets (benchmarks.featurize): the audio-visual layout, computed once per
(dataset, split) and cached.

    CACHE/<content digest>/av-embedded/<split>/<shard>.safetensors   (benchmarks.feature_cache: a file per shard)
        image (N, 3*32*32) float32   the frame, centre-cropped square, resized, channel-major, in [-1, 1]
        audio (N, 64*100) float32    log-mel power of the 10 s window, mel-major, shifted to about [-1, 1]
        text  (N, 64) int64          the caption's UTF-8 bytes + 1, 0 pads
        cls   (N,) int64             the VGGSound class index
        clip_hash (N,) int64         from sha256("<ytid>_<start:06d>"): a split of the clips that does not
                                     depend on their order (the task draws its validation clips by it)
        metadata info: the layout, checked on every read by the task

The preprocessing is deterministic and has no weights: models learn their
encoders from these rows (polymodal.baselines.encoders.av).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io

import numpy as np

from polymodal.baselines.layouts import AUDIO_VISUAL, AudioVisualLayout
from polymodal.benchmarks.feature_cache import RawSample
from polymodal.benchmarks.featurize import Featurizer
from polymodal.benchmarks.preprocess import byte_ids, log_mel
from polymodal.builders.schema import CLIP_SECONDS, SAMPLE_RATE

ENCODER = "av-embedded"  # the cache's folder name; a change of layout must change it, or the read check fails
SILENCE = 1e-6  # floor of the mel power before the log


class AudioVisualFeaturizer(Featurizer):
    def __init__(self, layout: AudioVisualLayout = AUDIO_VISUAL):
        self.layout = layout
        self.info = dataclasses.asdict(layout)

    def image(self, jpeg: bytes) -> np.ndarray:
        from PIL import Image, ImageOps

        side = self.layout.image_side
        frame = ImageOps.fit(Image.open(io.BytesIO(jpeg)).convert("RGB"), (side, side), Image.BILINEAR)
        pixels = np.asarray(frame, np.float32).transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
        return (pixels.reshape(-1) / 255.0 - 0.5) / 0.5

    def audio(self, flac: bytes) -> np.ndarray:
        layout = self.layout
        hop = SAMPLE_RATE * CLIP_SECONDS // layout.frames  # the frames span the whole window
        mel = log_mel(flac, layout.n_mels, layout.frames, n_fft=2048, hop=int(hop), floor=SILENCE)
        # Real VGGSound clips span log power -14..8, half of it within -6..2; this centres that half.
        return (mel.reshape(-1) + 3.0) / 6.0

    def text(self, text: str) -> np.ndarray:
        return byte_ids(text, self.layout.text_len, self.layout.pad)

    def prepare(self, rows: list[RawSample]) -> dict[str, np.ndarray]:
        return {
            "image": np.stack([self.image(jpeg) for jpeg, *_ in rows]),
            "audio": np.stack([self.audio(flac) for _, flac, *_ in rows]),
            "text": np.stack([self.text(text) for *_, text, _ in rows]),
            "cls": np.asarray([meta["class_id"] for *_, meta in rows], np.int64),
            "clip_hash": np.asarray([clip_hash(meta) for *_, meta in rows], np.int64),
        }


def clip_hash(meta: dict) -> int:
    name = f"{meta['ytid']}_{meta['start']:06d}"
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:7], "little")  # 56 bits: fits int64

