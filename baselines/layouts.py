"""Input layouts: how a featurizer lays a sample's modalities out as flat rows, and how encoders read them.

A layout is the contract between a featurizer in ``benchmarks`` (which writes the
rows) and an encoder family here (which reshapes them), so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioVisualLayout:
    """RGB frames, log-mel spectrograms and UTF-8 byte ids, for clips such as VGG-sound+'s.

    image  (channels * side * side,) float32, channel-major (C, H, W), scaled to [-1, 1]
    audio  (n_mels * frames,) float32, mel-major (n_mels, frames), log power shifted to about [-1, 1]
    text   (text_len,) int64: byte b is token b + 1, 0 pads on the right
    """

    image_side: int = 32
    channels: int = 3
    n_mels: int = 64
    frames: int = 100  # hop 1600 at 16 kHz: 10 s
    text_len: int = 64
    pad: int = 0
    vocab: int = 257  # pad + 256 byte values

    def inputs(self) -> dict[str, int]:
        """The ``inputs`` a model over this layout is built with."""
        return {"image": self.channels * self.image_side**2, "audio": self.n_mels * self.frames, "text": self.text_len}


AUDIO_VISUAL = AudioVisualLayout()


@dataclass(frozen=True)
class EmbeddedLayout:
    """The shapes the `embedded` featurizer writes and the `m3-embedded` encoders read."""

    image_side: int = 16  # grayscale pixels per side
    n_mels: int = 32
    frames: int = 48  # log-mel frames, padded or cropped (about 0.77 s at 16 kHz, hop 256)
    text_len: int = 128  # UTF-8 bytes, padded or cropped
    pad: int = 0  # byte b is token b + 1
    missing_token: int = 257

    @property
    def vocab(self) -> int:
        return self.missing_token + 1

    def inputs(self) -> dict[str, int]:
        """The ``inputs`` a model over this layout is built with: image and audio carry a missing flag last."""
        return {"image": self.image_side**2 + 1, "audio": self.n_mels * self.frames + 1, "text": self.text_len}


EMBEDDED = EmbeddedLayout()
