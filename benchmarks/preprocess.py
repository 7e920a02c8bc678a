"""Deterministic preprocessing shared by the embedded featurizers: log-mel audio and byte-level text."""

from __future__ import annotations

import io

import numpy as np

from polymodal.builders.schema import SAMPLE_RATE


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
