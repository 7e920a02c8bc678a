"""Synergy-CLIP's training augmentation (baselines/augment.py): on for encoders trained end to end, in training
mode only; off for frozen features. The audio steps act on cached log-mels, so they are checked against the
featurizers run on the changed waveform itself."""

import io

import numpy as np
import pytest
import torch

from polymodal.baselines.augment import AUDIO_VISUAL_ROWS, ImageAugment, SpectrogramAugment
from polymodal.baselines.config import ModelConfig
from polymodal.baselines.encoders import build_encoders
from polymodal.baselines.encoders.m3 import paper_heads
from polymodal.baselines.layouts import AUDIO_VISUAL
from polymodal.baselines.models import MODELS

L = AUDIO_VISUAL
INPUTS = L.inputs()
RATE = 16_000


def rows(n: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.rand(n, INPUTS["image"], generator=g) * 2 - 1,
        "audio": torch.randn(n, INPUTS["audio"], generator=g).clamp(-2, 2),
        "text": torch.randint(1, L.vocab, (n, L.text_len), generator=g),
    }


def image_augment() -> ImageAugment:
    return ImageAugment(L.channels, L.image_side, AUDIO_VISUAL_ROWS)


def audio_augment() -> SpectrogramAugment:
    return SpectrogramAugment(L.n_mels, L.frames, AUDIO_VISUAL_ROWS)


def test_image_augment_keeps_shape_dtype_and_range_changes_rows_and_repeats_with_the_seed():
    x = rows(16)["image"]
    torch.manual_seed(3)
    a = image_augment()(x)
    torch.manual_seed(3)
    b = image_augment()(x)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= -1 and a.max() <= 1  # the [-1, 1] of the featurizer's pixels
    assert torch.equal(a, b)
    assert (a - x).abs().amax(1).gt(1e-3).all()  # a random crop moves every image
    torch.manual_seed(4)
    assert not torch.equal(image_augment()(x), a)


def test_image_flips_are_one_of_horizontal_or_vertical_per_image_at_the_official_rates():
    # With crop and jitter made identities, only the flips remain: RandomChoice gives hflip 0.5·0.5, vflip 0.5·0.15.
    augment = image_augment()
    augment.crop = augment.jitter = torch.nn.Identity()
    n = 20_000
    x = torch.rand(n, INPUTS["image"]) * 2 - 1
    torch.manual_seed(0)
    y = augment(x).reshape(n, L.channels, L.image_side, L.image_side)
    x = x.reshape_as(y)
    horizontal = (y == x.flip(-1)).flatten(1).all(1)
    vertical = (y == x.flip(-2)).flatten(1).all(1)
    same = (y == x).flatten(1).all(1)
    assert not (horizontal & vertical).any() and (horizontal | vertical | same).all()
    assert abs(horizontal.float().mean() - 0.25) < 0.015 and abs(vertical.float().mean() - 0.075) < 0.01


def test_audio_augment_repeats_with_the_seed_and_applies_each_step_at_rate_0_2():
    x = rows(400)["audio"]
    torch.manual_seed(5)
    a = audio_augment()(x)
    torch.manual_seed(5)
    assert torch.equal(audio_augment()(x), a)
    assert a.shape == x.shape and a.dtype == x.dtype
    # Three of the four steps change a spectrogram (the polarity flip does not): 1 - 0.8³ of the rows change.
    changed = (a != x).any(1).float().mean()
    assert abs(changed - (1 - 0.8**3)) < 0.06


# --- The audio steps against the featurizer run on the changed waveform ---------------------------------------------


def _clip(seconds: float = 10.0) -> np.ndarray:
    # Tones that come and go over quiet noise: a spectrogram with loud and quiet parts, so added noise shows.
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    gate = (np.sin(2 * np.pi * 0.3 * t) > 0.2).astype(np.float32)
    wave = 0.3 * gate * np.sin(2 * np.pi * 440 * t) + 0.2 * (1 - gate) * np.sin(2 * np.pi * 1900 * t * (1 + 0.1 * t))
    return (wave + 1e-4 * rng.standard_normal(len(t))).astype(np.float32)


def _featurize(wave: np.ndarray) -> torch.Tensor:
    sf = pytest.importorskip("soundfile")
    pytest.importorskip("librosa")
    from polymodal.benchmarks.tasks.vggsound_plus.featurizer import AudioVisualFeaturizer

    buffer = io.BytesIO()
    sf.write(buffer, wave, RATE, format="FLAC", subtype="PCM_24")
    spec = AudioVisualFeaturizer().audio(buffer.getvalue())
    return torch.from_numpy(spec).reshape(L.n_mels, L.frames)


def _closer(ours: torch.Tensor, truth: torch.Tensor, clean: torch.Tensor, factor: float) -> None:
    """ours is within 1/factor of truth's distance from the clean spectrogram."""
    error, change = (ours - truth).abs().mean(), (clean - truth).abs().mean()
    assert error * factor < change, (float(error), float(change))


def test_the_noise_step_adds_the_power_of_the_official_white_noise():
    wave = _clip()
    noisy = wave + 0.005 * np.random.default_rng(1).standard_normal(len(wave)).astype(np.float32)
    clean, truth = _featurize(wave), _featurize(noisy)
    _closer(audio_augment()._noise(clean), truth, clean, factor=8)


def test_the_shift_step_rolls_as_np_roll_of_a_tenth_of_the_clip():
    wave = _clip()
    clean, truth = _featurize(wave), _featurize(np.roll(wave, int(len(wave) * 0.1)))
    _closer(audio_augment()._shift(clean), truth, clean, factor=20)


def test_the_stretch_step_resamples_time_as_librosas_time_stretch_cut_to_the_window():
    librosa = pytest.importorskip("librosa")
    wave = _clip()
    clean = _featurize(wave)
    truth = _featurize(librosa.effects.time_stretch(wave, rate=0.85))
    ours = audio_augment()._stretch(clean)[:, : L.frames]
    _closer(ours, truth, clean, factor=2.5)  # rate 0.8 or 0.9 would be 1.3 times off


def test_the_checkpoint_noise_step_matches_asts_feature_extractor_on_the_noisy_waveform():
    pytest.importorskip("transformers")
    from transformers import ASTFeatureExtractor

    from polymodal.baselines.encoders.hf import _checkpoint_rows

    extractor = ASTFeatureExtractor()
    wave = _clip(10.24)
    noisy = wave + 0.005 * np.random.default_rng(1).standard_normal(len(wave)).astype(np.float32)
    clean, truth = (torch.from_numpy(extractor(w, sampling_rate=RATE, return_tensors="np").input_values[0].T.copy())
                    for w in (wave, noisy))
    augment = SpectrogramAugment(extractor.num_mel_bins, extractor.max_length, _checkpoint_rows())
    _closer(augment._noise(clean), truth, clean, factor=8)


def test_the_pixel_scale_is_the_featurizers():
    pytest.importorskip("PIL")
    from PIL import Image

    from polymodal.benchmarks.tasks.vggsound_plus.featurizer import AudioVisualFeaturizer

    pixels = np.random.default_rng(0).integers(0, 256, (L.image_side, L.image_side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    row = AudioVisualFeaturizer().image(buffer.getvalue()).reshape(3, L.image_side, L.image_side)
    mean = np.asarray(AUDIO_VISUAL_ROWS.pixel_mean)[:, None, None]
    std = np.asarray(AUDIO_VISUAL_ROWS.pixel_std)[:, None, None]
    np.testing.assert_allclose(row * std + mean, pixels.transpose(2, 0, 1) / 255.0, atol=1e-6)


# --- The option on the encoders and in the cards ----------------------------------------------------------------------

END_TO_END = [("clip", "av-embedded", {}), ("synergy-clip", "hf-synergy", {"size": "tiny"})]


@pytest.mark.parametrize("model, family, options", END_TO_END)
def test_end_to_end_encoders_augment_in_training_only_and_say_so_in_the_card(model, family, options):
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    on = MODELS[model](INPUTS, d_model=8, encoders=family, encoder_options=options)
    off = MODELS[model](INPUTS, d_model=8, encoders=family, encoder_options={**options, "augment": False})
    assert on.card()["config"]["encoder_options"] == {**options, "augment": True}  # the default, named
    assert off.card()["config"]["encoder_options"]["augment"] is False
    assert on.state_dict().keys() == off.state_dict().keys()  # checkpoints load either way
    off.load_state_dict(on.state_dict())
    x = rows()
    on.eval(), off.eval()
    for m in ("image", "audio", "text"):
        assert torch.equal(on.encode(m, x[m]), off.encode(m, x[m]))
    on.train(), off.train()
    with torch.no_grad():
        for m in ("image", "audio"):
            torch.manual_seed(1)
            augmented = on.encode(m, x[m])
            torch.manual_seed(1)
            plain = off.encode(m, x[m])
            assert not torch.allclose(augmented, plain)
            torch.manual_seed(1)
            assert torch.equal(on.encode(m, x[m]), augmented)  # the seed fixes the augmentation
        torch.manual_seed(1)
        text = on.encode("text", x["text"])
        torch.manual_seed(1)
        assert torch.equal(text, off.encode("text", x["text"]))  # no text augmentation


def test_frozen_feature_encoders_default_augmentation_off_and_refuse_it():
    assert ModelConfig(encoders="m3-paper").encoder_options == {"augment": False}
    with pytest.raises(ValueError, match="augment must be False"):
        paper_heads({"image": 9, "audio": 7, "text": 12}, 8, augment=True)
    # Families without raw inputs declare nothing, and their cards stay as they were.
    assert ModelConfig(encoders="linear_l2").encoder_options == {}


def test_build_encoders_passes_the_option():
    off = build_encoders("av-embedded", INPUTS, 8, {"augment": False})
    on = build_encoders("av-embedded", INPUTS, 8)
    assert off["image"].augment is None and isinstance(on["image"].augment, ImageAugment)
    assert isinstance(on["audio"].augment, SpectrogramAugment) and not hasattr(on["text"], "augment")


# --- Reproducible training: the harness seeds the global generator, and its checkpoints restore it ------------------


def _fit(run_dir, resume: bool = False, **options) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from polymodal.benchmarks import training
    from polymodal.benchmarks.tasks.base import TrainConfig

    torch.manual_seed(0)
    model = MODELS["clip"](INPUTS, d_model=8, encoders="av-embedded", encoder_options={"width": 4, **options})
    config = TrainConfig(epochs=3, batch_size=8, lr=0.01, threads=1)
    training.fit(model, rows(24, 0), rows(8, 1), config, run_dir, resume=resume, progress=False)
    return load_file(run_dir / training.BEST)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.usefixtures("one_thread")
def test_an_augmented_run_repeats_and_resumes_to_the_same_weights(tmp_path, monkeypatch):
    from polymodal.benchmarks import training

    whole = _fit(tmp_path / "whole")
    assert _same(_fit(tmp_path / "again"), whole)
    assert not _same(_fit(tmp_path / "plain", augment=False), whole)  # the augmentation reached training
    checkpoint = training._checkpoint

    def killed(run_dir, model, optimizer, scheduler, generator, state, improved):
        checkpoint(run_dir, model, optimizer, scheduler, generator, state, improved)
        raise KeyboardInterrupt  # right after the first epoch's checkpoint

    monkeypatch.setattr(training, "_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "cut")
    monkeypatch.setattr(training, "_checkpoint", checkpoint)
    assert _same(_fit(tmp_path / "cut", resume=True), whole)
