"""Encoders over the audio-visual layout (VGG-sound+): trained from scratch on frames, log-mels and bytes.

Family ``av-embedded`` reads :class:`baselines.layouts.AudioVisualLayout` rows:
a small CNN over the RGB frame, the log-mel conv of the M3 encoders over the
spectrogram, and the M3 byte-level conv over the caption. Every encoder ends in
the Symile-M3 head, Linear -> LayerNorm (no L2 norm), so the task sets a small
initial logit scale as Symile-M3 does. With ``augment`` (the default, as they
train end to end) the image and audio heads augment their rows in training mode
as Synergy-CLIP does (baselines.augment). Pure torch and kornia, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from ..augment import AUDIO_VISUAL_ROWS, ImageAugment, SpectrogramAugment
from ..layouts import AUDIO_VISUAL, AudioVisualLayout
from .m3 import ConvTokens, TokenHead, Unflatten, _audio_conv


class Head(nn.Module):
    """body(features) -> Linear -> LayerNorm: the M3 head without a missing flag (VGG-sound+ has none).
    An ``augment`` module, if given, changes the features first, in training mode only."""

    def __init__(self, body: nn.Module, d_body: int, d_model: int, augment: nn.Module | None = None):
        super().__init__()
        self.body, self.linear, self.norm = body, nn.Linear(d_body, d_model), nn.LayerNorm(d_model)
        self.augment = augment

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.augment is not None:
            x = self.augment(x)
        return self.norm(self.linear(self.body(x)))


def _rgb_cnn(layout: AudioVisualLayout, width: int) -> tuple[nn.Module, int]:
    # Two conv-pool stages take 32 px to 8 px, a third conv mixes there; average pooling keeps it cheap whatever the side.
    body = nn.Sequential(
        Unflatten(layout.channels, layout.image_side, layout.image_side),
        nn.Conv2d(layout.channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.GELU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.GELU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GELU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return body, 2 * width


def av_embedded_encoders(inputs: dict[str, int], d_model: int, width: int = 32,
                         layout: AudioVisualLayout = AUDIO_VISUAL, augment: bool = True) -> nn.ModuleDict:
    if inputs != layout.inputs():
        raise ValueError(f"av-embedded encoders read {layout.inputs()}, got {inputs}")
    image = ImageAugment(layout.channels, layout.image_side, AUDIO_VISUAL_ROWS) if augment else None
    audio = SpectrogramAugment(layout.n_mels, layout.frames, AUDIO_VISUAL_ROWS) if augment else None
    return nn.ModuleDict({
        "image": Head(*_rgb_cnn(layout, width), d_model, image),
        "audio": Head(*_audio_conv(layout, width), d_model, audio),  # reads only n_mels and frames of the layout
        "text": TokenHead(layout.vocab, 2 * width, ConvTokens(2 * width), d_model, pad=layout.pad),
    })


#: Audio-visual encoder families by name; each builds as ``family(inputs, d_model, **options)``.
AV_ENCODERS: dict[str, Callable[..., nn.ModuleDict]] = {"av-embedded": av_embedded_encoders}
