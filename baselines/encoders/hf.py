"""Synergy-CLIP's backbones from ``transformers``: CLIP ViT for images, RoBERTa for text and
AST for audio, each read through its ``pooler_output`` (Synergy-CLIP, the
``JoSangYeon/Synergy-CLIP`` repository). Pure torch, no file I/O of its own.

The family ``hf-synergy`` builds them by ``size``:
    tiny        random-init backbones (hidden 32, one layer) shaped for
                :class:`~baselines.layouts.AudioVisualLayout` rows, for tests and smoke runs
    base/large  the paper's checkpoints, fetched by name with ``from_pretrained``

Each backbone reads flat rows shaped by its own config, and :func:`hf_synergy_encoders`
refuses ``inputs`` of other widths:
    image  (3·S·S,) channel-major pixels, S = ``image_size``
    audio  (n_mels·frames,) mel-major log-mel, n_mels = ``num_mel_bins``, frames = ``max_length``;
           AST wants (frames, n_mels), so rows are transposed
    text   (L,) token ids padded with ``pad_token_id`` on the right, L + pad + 1 <= positions
The tiny configs match AUDIO_VISUAL (32² RGB, 64 mels × 100 frames, byte ids with pad 0).
The checkpoints need rows of their own shapes (224² images, 128 × 1024 fbank, RoBERTa BPE
ids with pad 1), which a featurizer must write.

Outputs are pooler outputs of the backbone's hidden width, given as ``out_features``, not
``d_model``: the model maps them to its embedding space (Synergy-CLIP with its bias-free
projection), so this family suits only models that read ``out_features``.

The backbones are fine-tuned end to end, so by default (``augment``) the image and audio
backbones augment their rows in training mode as the official code does (baselines.augment),
undoing the scaling of the rows they read: the AUDIO_VISUAL featurizer's at size tiny, the
checkpoints' processors' (CLIP-normalised pixels, AST's normalised fbank) at base and large.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor, nn

from ..augment import AUDIO_VISUAL_ROWS, NOISE, ImageAugment, RowScale, SpectrogramAugment
from ..layouts import AUDIO_VISUAL, AudioVisualLayout

if TYPE_CHECKING:
    from transformers import PretrainedConfig

_TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)


class _Backbone(nn.Module):
    """A transformers model read through its pooler output; ``out_features`` is its width. Its
    ``augment`` module, if any, changes the rows first, in training mode only."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.out_features = model.config.hidden_size
        self.augment: nn.Module | None = None

    @property
    def config(self) -> PretrainedConfig:
        return self.model.config

    def augmented(self, x: Tensor) -> Tensor:
        return self.augment(x) if self.training and self.augment is not None else x


class ImageBackbone(_Backbone):
    """(N, 3·S·S) channel-major rows -> CLIP vision pooler output (the post-LayerNorm CLS token)."""

    @property
    def in_features(self) -> int:
        return self.config.num_channels * self.config.image_size**2

    def forward(self, x: Tensor) -> Tensor:
        side = self.config.image_size
        x = self.augmented(x)
        return self.model(pixel_values=x.reshape(len(x), self.config.num_channels, side, side)).pooler_output


class AudioBackbone(_Backbone):
    """(N, n_mels·frames) mel-major rows -> AST pooler output (the mean of its two class tokens)."""

    @property
    def in_features(self) -> int:
        return self.config.num_mel_bins * self.config.max_length

    def forward(self, x: Tensor) -> Tensor:
        spectrogram = self.augmented(x).reshape(len(x), self.config.num_mel_bins, self.config.max_length)
        return self.model(input_values=spectrogram.transpose(1, 2)).pooler_output


class TextBackbone(_Backbone):
    """(N, L) right-padded token ids -> RoBERTa pooler output (tanh dense over the first token)."""

    @property
    def in_features(self) -> int:
        # RoBERTa numbers tokens from pad + 1, so the longest text fills positions up to pad + L.
        return self.config.max_position_embeddings - self.config.pad_token_id - 1

    def forward(self, ids: Tensor) -> Tensor:
        ids = ids.long()  # rows may arrive as floats from a float feature matrix
        mask = ids != self.config.pad_token_id
        mask[:, 0] = True  # the pooler reads token 0; an empty text must not mask every key
        return self.model(input_ids=ids, attention_mask=mask.long()).pooler_output


@dataclass(frozen=True)
class Backbone:
    """How to build one modality's backbone: its transformers class (named, since transformers is
    an optional dependency, imported only when a backbone is built), row reader and tiny config."""

    model: str
    reader: type[_Backbone]
    tiny: Callable[[AudioVisualLayout], dict]


BACKBONES: dict[str, Backbone] = {
    "image": Backbone(
        "CLIPVisionModel", ImageBackbone,
        lambda layout: dict(_TINY, image_size=layout.image_side, patch_size=8, num_channels=layout.channels),
    ),
    "audio": Backbone(
        "ASTModel", AudioBackbone,
        lambda layout: dict(_TINY, num_mel_bins=layout.n_mels, max_length=layout.frames),
    ),
    "text": Backbone(
        "RobertaModel", TextBackbone,
        lambda layout: dict(
            _TINY, vocab_size=layout.vocab, pad_token_id=layout.pad, max_position_embeddings=layout.text_len + layout.pad + 1,
        ),
    ),
}

#: The paper's checkpoints by size: the official AudioConfig_BASE names the 12-12 AST; Large keeps the 10-10 one.
CHECKPOINTS: dict[str, dict[str, str]] = {
    "base": {
        "image": "openai/clip-vit-base-patch16",
        "text": "FacebookAI/roberta-base",
        "audio": "MIT/ast-finetuned-audioset-12-12-0.447",
    },
    "large": {
        "image": "openai/clip-vit-large-patch14",
        "text": "FacebookAI/roberta-large",
        "audio": "MIT/ast-finetuned-audioset-10-10-0.4593",
    },
}


def _load(size: str, modality: str) -> nn.Module:
    import transformers

    backbone = BACKBONES[modality]
    model = getattr(transformers, backbone.model)
    if size == "tiny":
        return model(model.config_class(**backbone.tiny(AUDIO_VISUAL)))
    return model.from_pretrained(CHECKPOINTS[size][modality])


def _checkpoint_rows() -> RowScale:
    """The rows the checkpoints read, as their processors write them: CLIP-normalised pixels (the
    official transform's Normalize) and AST's ln fbank, normalised as (ln P - mean) / (2·std). AST's
    pre-emphasis colours the official white noise, so its power is measured per mel bin, on 8 clips
    of it at a fixed seed, through AST's own feature extractor."""
    import numpy as np
    from transformers import ASTFeatureExtractor
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    extractor = ASTFeatureExtractor(do_normalize=False)
    rate = extractor.sampling_rate
    # 11 s fill all max_length frames (10.24 s), so none is padding.
    noise = NOISE * np.random.default_rng(0).standard_normal((8, 11 * rate))
    fbank = extractor(list(noise), sampling_rate=rate, return_tensors="np").input_values  # (8, frames, mels)
    # The fbank floors power at float32's eps; bins that hold no filter stay there, and gain no noise.
    floor = np.finfo(np.float32).eps
    power = np.maximum(np.exp(fbank).mean((0, 1)) - floor, np.finfo(np.float32).tiny)
    return RowScale(tuple(OPENAI_CLIP_MEAN), tuple(OPENAI_CLIP_STD), 2 * extractor.std, extractor.mean,
                    tuple(np.log(power).tolist()))


def _augment(modality: str, config: PretrainedConfig, scale: RowScale) -> nn.Module | None:
    if modality == "image":
        return ImageAugment(config.num_channels, config.image_size, scale)
    if modality == "audio":
        return SpectrogramAugment(config.num_mel_bins, config.max_length, scale)
    return None  # text: Synergy-CLIP varies captions (their templates), not tokens


SIZES = ("tiny", *CHECKPOINTS)
#: The width of the paper's projections at each size; the tiny backbones project to the model's d_model.
PROJECTION_WIDTHS = {"base": 768, "large": 1024}


def hf_synergy_encoders(inputs: dict[str, int], d_model: int, size: str = "tiny",
                        augment: bool = True) -> nn.ModuleDict:
    """Image, audio and text backbones of ``size``, in the order of ``inputs``, the image and audio
    ones augmenting their rows in training if ``augment``.

    ``d_model`` is unused: outputs keep the backbone's width (``out_features``), for the
    model's own projection.
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; known: {SIZES}")
    if set(inputs) != set(BACKBONES):
        raise ValueError(f"hf-synergy encoders read modalities {sorted(BACKBONES)}, got {sorted(inputs)}")
    encoders = nn.ModuleDict({m: BACKBONES[m].reader(_load(size, m)) for m in inputs})
    scale = (AUDIO_VISUAL_ROWS if size == "tiny" else _checkpoint_rows()) if augment else None
    for m, encoder in encoders.items():
        encoder.projection_width = PROJECTION_WIDTHS.get(size)
        encoder.augment = _augment(m, encoder.config, scale) if augment else None
    widths = {m: encoders[m].in_features for m in inputs}
    # Text may be shorter than the positions allow; images and spectrograms must match exactly.
    if any(inputs[m] != widths[m] for m in ("image", "audio")) or inputs["text"] > widths["text"]:
        raise ValueError(f"hf-synergy {size} encoders read image, audio and at most text widths {widths}, got {inputs}")
    return encoders
