"""Encoders of the Symile-M3 models (Symile, arXiv 2411.01053, Section 5.1). Pure torch, no I/O.

Every encoder ends in the paper's head: Linear -> LayerNorm, with no L2 norm.
Image and audio inputs are flat feature rows whose last column is the missing
flag (0 present, 1 missing); a missing row holds the split-mean features, and
the flag picks one of two learned indicator embeddings, added before the
LayerNorm. Text inputs are token ids (0 pads), a missing text being one
[MISSING] token.

Two families, by the features they read (see polymodal.benchmarks.tasks.symile_m3.featurizers):
    m3-embedded  raw pixels, log-mel frames and UTF-8 bytes, encoders trained from scratch
    m3-paper     frozen CLIP / Whisper embeddings and XLM-RoBERTa token ids: heads, and XLM-R-large's
                 token embeddings and first encoder layer, loaded by name and fine-tuned, as the paper
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from ..layouts import EMBEDDED, EmbeddedLayout


class FlaggedHead(nn.Module):
    """body(features) -> Linear -> + indicator[missing flag] -> LayerNorm."""

    def __init__(self, body: nn.Module, d_body: int, d_model: int):
        super().__init__()
        self.body, self.linear = body, nn.Linear(d_body, d_model)
        self.indicator = nn.Embedding(2, d_model)
        nn.init.zeros_(self.indicator.weight)  # starts as the plain head; learns what missing means
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor) -> Tensor:
        features, flag = x[:, :-1], x[:, -1].round().long()
        return self.norm(self.linear(self.body(features)) + self.indicator(flag))


def crop_pads(ids: Tensor, pad: int) -> Tensor:
    """Integer ids without their trailing all-pad columns: texts are left-aligned, so those carry nothing, and
    cost most of the work."""
    ids = ids.long()
    return ids[:, :int((ids != pad).sum(1).max().clamp(min=1))]


class TokenHead(nn.Module):
    """The paper's text head: body(token embeddings) -> per-token Linear -> mean over non-pad tokens -> LayerNorm."""

    def __init__(self, vocab: int, d_embed: int, body: nn.Module, d_model: int, pad: int = 0):
        super().__init__()
        self.pad = pad
        self.embed = nn.Embedding(vocab, d_embed, padding_idx=pad)
        self.body, self.linear, self.norm = body, nn.Linear(d_embed, d_model), nn.LayerNorm(d_model)

    def token_states(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """(N, L, d_model) per-token states, the ones the head averages, and (N, L) which are real (not pads)."""
        ids = crop_pads(ids, self.pad)
        real = ids != self.pad
        return self.linear(self.body(self.embed(ids), real.unsqueeze(-1).to(self.linear.weight.dtype))), real

    def forward(self, ids: Tensor) -> Tensor:
        tokens, real = self.token_states(ids)
        keep = real.unsqueeze(-1).to(tokens.dtype)
        return self.norm((tokens * keep).sum(1) / keep.sum(1).clamp(min=1))


class PretrainedTextHead(nn.Module):
    """The paper's m3-paper text head: a pretrained RoBERTa-family encoder's token embeddings and its first
    ``layers`` layers, fine-tuned -> mean over non-pad tokens -> Linear -> LayerNorm.

    The vocabulary grows to ``vocab`` rows for the featurizer's [MISSING] token (the last id).
    """

    def __init__(self, name: str, d_model: int, vocab: int, pad: int, layers: int = 1):
        super().__init__()
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(name, add_pooling_layer=False)
        self.encoder.encoder.layer = self.encoder.encoder.layer[:layers]
        self.encoder.config.num_hidden_layers = layers
        self.encoder.resize_token_embeddings(vocab)
        self.pad = pad
        width = self.encoder.config.hidden_size
        self.linear, self.norm = nn.Linear(width, d_model), nn.LayerNorm(d_model)

    def _hidden(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        ids = crop_pads(ids, self.pad)
        mask = ids != self.pad
        return self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state, mask

    def token_states(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """(N, L, d_model) per-token states (the Linear of each position) and (N, L) which are real (not pads)."""
        hidden, mask = self._hidden(ids)
        return self.linear(hidden), mask

    def forward(self, ids: Tensor) -> Tensor:
        hidden, mask = self._hidden(ids)
        keep = mask.unsqueeze(-1).to(hidden.dtype)
        return self.norm(self.linear((hidden * keep).sum(1) / keep.sum(1).clamp(min=1)))


class Unflatten(nn.Module):
    def __init__(self, *shape: int):
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(len(x), *self.shape)


class ConvTokens(nn.Module):
    """(N, L, d) -> (N, L, d): same-length 1-D convolutions over the sequence, so n-grams form words.

    Pad positions are zeroed after every layer, so they act exactly like the convolution's own zero
    padding: trailing pads can be cropped without changing any output.
    """

    def __init__(self, d: int, layers: int = 2, kernel: int = 5):
        super().__init__()
        self.layers = nn.ModuleList(nn.Conv1d(d, d, kernel, padding=kernel // 2) for _ in range(layers))
        self.act = nn.GELU()

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        x, keep = x.transpose(1, 2), keep.transpose(1, 2)
        for conv in self.layers:
            x = self.act(conv(x)) * keep
        return x.transpose(1, 2)


def _image_cnn(layout: EmbeddedLayout, width: int) -> tuple[nn.Module, int]:
    side = layout.image_side // 4
    body = nn.Sequential(
        Unflatten(1, layout.image_side, layout.image_side),
        nn.Conv2d(1, width, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
        nn.Flatten(),
    )
    return body, 2 * width * side * side


def _audio_conv(layout: EmbeddedLayout, width: int) -> tuple[nn.Module, int]:
    # Clips share most of their spectrum; batch norm keeps what tells them apart from drowning in the
    # shared part, else the head's LayerNorm sees one constant vector and the audio never starts to
    # matter. Mean over time last: the clip's language matters, not where its sounds fall.
    body = nn.Sequential(
        Unflatten(layout.n_mels, layout.frames),
        nn.Conv1d(layout.n_mels, width, 5, padding=2), nn.BatchNorm1d(width), nn.GELU(),
        nn.Conv1d(width, 2 * width, 5, padding=2), nn.BatchNorm1d(2 * width), nn.GELU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(),
    )
    return body, 2 * width


def embedded_encoders(inputs: dict[str, int], d_model: int, width: int = 32, layout: EmbeddedLayout = EMBEDDED) -> nn.ModuleDict:
    expected = layout.inputs()
    if inputs != expected:
        raise ValueError(f"m3-embedded encoders read {expected}, got {inputs}")
    return nn.ModuleDict({
        "image": FlaggedHead(*_image_cnn(layout, width // 2), d_model),  # digits need few channels; convs cost most here
        "audio": FlaggedHead(*_audio_conv(layout, width), d_model),
        "text": TokenHead(layout.vocab, 2 * width, ConvTokens(2 * width), d_model, pad=layout.pad),
    })


def paper_heads(inputs: dict[str, int], d_model: int, text_model: str = "FacebookAI/xlm-roberta-large",
                text_layers: int = 1, text_vocab: int = 250_003, text_pad: int = 1,
                augment: bool = False) -> nn.ModuleDict:
    """Heads over the frozen image and audio embeddings; the text head fine-tunes ``text_model``'s token
    embeddings and first ``text_layers`` layers (the paper: XLM-R-large's layer 0, 1024-d) over its
    vocabulary plus [MISSING]. ``text_model`` may be a local path. ``augment`` is declared, False, so the
    card says that training saw no augmented inputs: frozen embeddings have no pixels to augment."""
    if augment:
        raise ValueError("m3-paper encoders read frozen embeddings, which cannot be augmented: augment must be False")
    return nn.ModuleDict({
        "image": FlaggedHead(nn.Identity(), inputs["image"] - 1, d_model),
        "audio": FlaggedHead(nn.Identity(), inputs["audio"] - 1, d_model),
        "text": PretrainedTextHead(text_model, d_model, text_vocab, text_pad, text_layers),
    })


#: M3 encoder families by name; each builds as ``family(inputs, d_model, **options)``.
M3_ENCODERS: dict[str, Callable[..., nn.ModuleDict]] = {"m3-embedded": embedded_encoders, "m3-paper": paper_heads}
