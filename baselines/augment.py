"""Training augmentation of raw image and audio rows: Synergy-CLIP's official recipe
(``JoSangYeon/Synergy-CLIP`` at 6d4642b349581a749d140ee6b3584677e4d8253c).

    image  main_pretraining.py's transform: RandomResizedCrop (scale 0.08..1, ratio 3/4..4/3), then one of
           a horizontal flip (p 0.5) or a vertical flip (p 0.15), chosen with equal odds, then
           ColorJitter(0.075, 0.075, 0.075, 0.075) with p 0.5
    audio  utils.audio_augment(wav, apply_rate=0.20), which dataset.py applies to the waveform: in a random
           order, each with probability 0.2, white noise 0.005·N(0, 1), a circular shift by 10 % of the
           length, a time stretch at rate 0.85 (librosa's phase vocoder), and a polarity flip

The encoders that train end to end apply these in training mode only. Their rows are cached log-mels, not
waveforms, so each audio step acts as it does on the spectrogram of the changed waveform: the noise adds
its mel power, the shift rolls the frames, the stretch resamples time by 1/0.85 at the same pitch, and the
polarity flip changes no power spectrogram, so it has no step here. A stretched clip is longer than the
window; it is cut to its first frames at the end, as the featurizer cuts a long clip. (The official loader
also augments its validation and test sets; here evaluation never augments.)

Every random draw comes from torch's global CPU generator (kornia's too), which the training run seeds
and its checkpoints save and restore, so a seed gives the same augmented batches, resumed or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NOISE, SHIFT, STRETCH, APPLY_RATE = 0.005, 0.1, 0.85, 0.2  # utils.audio_augment's rates, apply_rate from dataset.py


@dataclass(frozen=True)
class RowScale:
    """How a featurizer scales raw rows, which augmentation undoes and redoes.

    pixels in [0, 1] = row · pixel_std + pixel_mean, per channel
    ln mel power     = row · log_power_scale + log_power_offset
    noise_log_power  the ln mel power the official white noise adds (one value, or one per mel bin)
    """

    pixel_mean: tuple[float, ...]
    pixel_std: tuple[float, ...]
    log_power_scale: float
    log_power_offset: float
    noise_log_power: float | tuple[float, ...]


def _white_noise_log_power(n_fft: int, rate: int) -> float:
    # White noise of std σ puts σ²·Σw² in every STFT bin (a periodic Hann window: Σw² = 3/8·n_fft), and a
    # Slaney-normalised mel band has unit area in Hz, so it sums n_fft / rate bins.
    return math.log(NOISE**2 * (3 / 8 * n_fft) * n_fft / rate)


#: The rows of benchmarks/tasks/vggsound_plus/featurizer.py: pixels (p - 0.5) / 0.5, log-mels (ln P + 3) / 6 of a
#: librosa mel spectrogram with n_fft 2048 at 16 kHz. tests/baselines/test_augment.py checks them against it.
AUDIO_VISUAL_ROWS = RowScale((0.5,) * 3, (0.5,) * 3, 6.0, -3.0, _white_noise_log_power(2048, 16_000))


class ImageAugment(nn.Module):
    """(N, C·S·S) channel-major rows -> the same rows, cropped, flipped and colour-jittered as the official code."""

    def __init__(self, channels: int, side: int, scale: RowScale):
        super().__init__()
        import kornia.augmentation as K

        self.channels, self.side = channels, side
        self.mean, self.std = scale.pixel_mean, scale.pixel_std
        self.crop = K.RandomResizedCrop((side, side), scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
        self.jitter = K.ColorJitter(0.075, 0.075, 0.075, 0.075, p=0.5)

    def forward(self, rows: Tensor) -> Tensor:
        n = len(rows)
        mean = torch.tensor(self.mean, dtype=rows.dtype, device=rows.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=rows.dtype, device=rows.device).view(1, -1, 1, 1)
        pixels = self.crop(rows.reshape(n, self.channels, self.side, self.side) * std + mean)
        # RandomChoice([hflip(p=0.5), vflip(p=0.15)]) draws per image; kornia's containers choose per batch.
        horizontal, draw = torch.rand(n) < 0.5, torch.rand(n)
        flip_w = (horizontal & (draw < 0.5)).to(rows.device).view(-1, 1, 1, 1)
        flip_h = (~horizontal & (draw < 0.15)).to(rows.device).view(-1, 1, 1, 1)
        pixels = torch.where(flip_w, pixels.flip(-1), torch.where(flip_h, pixels.flip(-2), pixels))
        return ((self.jitter(pixels) - mean) / std).reshape(n, -1)


class SpectrogramAugment(nn.Module):
    """(N, n_mels·frames) mel-major log-mel rows -> the same rows after the official audio augmentation."""

    def __init__(self, n_mels: int, frames: int, scale: RowScale):
        super().__init__()
        self.n_mels, self.frames = n_mels, frames
        self.log_power = scale.log_power_scale, scale.log_power_offset
        noise = torch.tensor(scale.noise_log_power, dtype=torch.float32).reshape(-1, 1)  # (1 or n_mels, 1)
        self.register_buffer("noise_log_power", noise, persistent=False)  # a constant, not in checkpoints
        # audio_augment's list order; the polarity flip changes no power spectrogram.
        self.steps = (self._noise, self._shift, self._stretch, None)

    def _noise(self, spec: Tensor) -> Tensor:
        a, b = self.log_power
        return (torch.logaddexp(spec * a + b, self.noise_log_power.to(spec.dtype)) - b) / a

    def _shift(self, spec: Tensor) -> Tensor:
        return spec.roll(int(spec.shape[-1] * SHIFT), dims=-1)  # np.roll(data, int(len(data) * rate))

    def _stretch(self, spec: Tensor) -> Tensor:
        frames = round(spec.shape[-1] / STRETCH)  # librosa's length: round(len / rate)
        return F.interpolate(spec[None], size=frames, mode="linear", align_corners=False)[0]

    def forward(self, rows: Tensor) -> Tensor:
        n = len(rows)
        order, applied = torch.rand(n, len(self.steps)).argsort(1), torch.rand(n, len(self.steps)) < APPLY_RATE
        out = []
        for spec, steps, chosen in zip(rows.reshape(n, self.n_mels, self.frames), order.tolist(), applied.tolist()):
            for k in steps:
                if chosen[k] and self.steps[k] is not None:
                    spec = self.steps[k](spec)
            out.append(spec[:, : self.frames])
        return torch.stack(out).reshape(n, -1)
