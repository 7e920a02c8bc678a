"""AlignCLIP (the ``sarahESL/AlignCLIP`` repository): a shared transformer for every
modality, and IMSep, a loss that separates a modality's own samples by how far apart
their texts mean. See ``specs/methods.md``, section "AlignCLIP".

Pure torch; the optional ``hf:`` semantic encoder imports ``transformers`` lazily.
"""

from __future__ import annotations

import dataclasses
import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.registry import Registry

from .config import ModelConfig, build
from .encoders import build_encoders
from .interface import ContrastiveModel, card_of, ordered_queries
from .logit_scale import LogitScale
from .losses import _local, clip_loss
from .scoring import clip_scores

#: imsep_sides -> (separate each non-text modality, separate the text). The authors'
#: training script separates both; their loss class defaults to the text side only, and
#: an open issue says the paper separates the image side only.
IMSEP_SIDES = {"both": (True, True), "image": (True, False), "text": (False, True)}
#: How the text side's IMSep terms weigh with M − 1 partner modalities, by name -> weight of each of them (× β).
#: "per_partner": each pair keeps the authors' two-modality loss, so the text weighs (M − 1)·β in all;
#: "averaged": the text side weighs β in all, as each other modality does.
TEXT_WEIGHTS = {"per_partner": lambda partners: 1.0, "averaged": lambda partners: 1.0 / partners}


# ---------------------------------------------------------------------------------------
# Frozen semantic encoders of the texts: (N, L) byte ids -> (N, k) unit rows, no gradient.


def _as_byte_ids(ids: Tensor) -> Tensor:
    """`ids` as integer byte ids (byte b is token b + 1, 0 pads), once they are: token ids of a tokenizer's
    vocabulary (the m3-paper texts) read as bytes would make every text alike, and D collapse to ~0."""
    ids = ids.round().long() if ids.is_floating_point() else ids.long()
    if ids.numel() and (ids.min() < 0 or ids.max() > 256):
        raise ValueError(f"AlignCLIP's semantic encoders read texts as byte ids 1-256 (0 pads); these hold ids "
                         f"{ids.min().item()}..{ids.max().item()}, a tokenizer's token ids: give the model the "
                         "texts as bytes (the m3-embedded or VGG-sound+ text encoders), not m3-paper token ids")
    return ids


def decode_bytes(ids: Tensor) -> list[str]:
    """Texts from byte ids (byte b is token b + 1); pads are dropped."""
    ids = _as_byte_ids(ids).cpu()
    return [bytes((row[(row >= 1) & (row <= 256)] - 1).tolist()).decode("utf-8", errors="replace") for row in ids]


class BytesNgram:
    """A fixed hashed bag of byte 1- to 3-grams, L2-normalised: no weights, no downloads, deterministic.

    Texts that share words share n-grams, so 1 − cosine is a crude offline semantic
    distance. A text with no bytes gets the zero vector: distance 1 from every text.
    """

    def __init__(self, buckets: int = 1024, orders: tuple[int, ...] = (1, 2, 3)):
        self.buckets, self.orders = buckets, orders

    @torch.no_grad()
    def __call__(self, ids: Tensor) -> Tensor:
        codes = _as_byte_ids(ids)
        bag = torch.zeros(len(ids), self.buckets, device=ids.device)
        for n in self.orders:
            if codes.shape[1] < n:
                continue
            windows = codes.unfold(1, n, 1)  # (N, L - n + 1, n)
            # A unique code per n-gram (base 257, offset by n), then Knuth's multiplicative hash:
            # its top bits, scaled to the buckets, spread neighbouring codes apart.
            code = (windows * 257 ** torch.arange(n, device=ids.device)).sum(-1) + n * 257**3
            bucket = ((code * 2654435761) % 2**32) * self.buckets // 2**32
            bag.scatter_add_(1, bucket, (windows > 0).all(-1).float())
        return F.normalize(bag, dim=-1)


class HfSentenceEncoder:
    """A frozen Hugging Face model: decode the bytes to strings, tokenise, mean-pool the last
    hidden state over the attention mask, L2-normalise.

    It is deliberately not an ``nn.Module`` attribute of the model: its weights stay out of
    checkpoints, parameter counts and the optimizer, and are reloaded from ``name``. It
    follows the ids to their device on first use.
    """

    def __init__(self, name: str, max_length: int = 128):
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(name)
        self.model = AutoModel.from_pretrained(name).eval().requires_grad_(False)
        self.max_length = max_length

    @torch.no_grad()
    def __call__(self, ids: Tensor) -> Tensor:
        self.model.to(ids.device)
        batch = self.tokenizer(
            decode_bytes(ids), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(ids.device)
        hidden = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)


#: The official code's: Sentence-BERT's mean-pooled, normalised all-mpnet-base-v2.
PAPER_SEMANTIC = "hf:sentence-transformers/all-mpnet-base-v2"
#: Semantic encoders by kind; ``semantic="kind"`` or ``"kind:argument"``, e.g. ``"hf:BAAI/bge-small-en"``.
SEMANTIC = Registry("semantic encoder", {"bytes-ngram": BytesNgram, "hf": HfSentenceEncoder}, takes_arg={"hf"},
                    forms="bytes-ngram or hf:MODEL_NAME")


def semantic_encoder(spec: str):
    encoder, argument = SEMANTIC.spec(spec)
    return encoder(argument) if argument else encoder()


# ---------------------------------------------------------------------------------------
# Losses.


def semantic_distance(semantic: Tensor, rows: slice, dtype: torch.dtype) -> Tensor:
    """D = 1 − Ŝ·Ŝᵀ over ``rows`` against every row, Ŝ the unit ``semantic`` rows (the diagonal is left to IMSep)."""
    unit = F.normalize(semantic.to(dtype), dim=-1)
    return 1 - unit[rows] @ unit.T


def imsep_loss(x: Tensor, t: Tensor, distance: Tensor, scale: Tensor | float, rows: slice | None = None) -> Tensor:
    """IMSep of modality ``x`` against its paired texts ``t``: CE(s·M, arange) over ``rows``, where

        M = (x·xᵀ) ⊙ D + diag(x·tᵀ),   D = :func:`semantic_distance` with a zero diagonal.

    Samples of x repel each other in proportion to their texts' semantic distance, and
    each competes with its own paired cross-modal similarity. The diagonal of M is set to
    x·t outright, so D's diagonal is exactly zero (not 1 − ‖Ŝ_i‖² up to rounding, nor 1
    for an empty text). Local row r sits at global row ``rows.start + r``: its diagonal
    entry and its label are both that column.
    """
    rows = _local(rows, len(x))
    labels = torch.arange(rows.start, rows.stop, device=x.device)
    logits = (x[rows] @ x.T) * distance
    paired = (x[rows] * t[rows]).sum(-1)
    logits = logits.index_put((labels - rows.start, labels), paired)
    return F.cross_entropy(scale * logits, labels)


def alignclip_loss(
    embeddings: list[Tensor],
    scale: Tensor | float,
    rows: slice | None = None,
    text: int | None = None,
    semantic: Tensor | None = None,
    sides: str = "both",
    alpha: float = 1.0,
    beta: float = 0.5,
    text_weight: str = "per_partner",
) -> Tensor:
    """α·Σ_pairs [CE(s·A·Bᵀ) + CE(s·B·Aᵀ)] + β·Σ_{X ≠ text} [L_X + w·L_T^X].

    The CLIP term is summed over every pair of modalities and not halved. IMSep pairs the
    text (index ``text``) with each other modality X: L_X separates X (positive x·t),
    L_T^X separates the text (positive t·x); ``sides`` keeps one or both, and
    ``text_weight`` (:data:`TEXT_WEIGHTS`) sets w. With two modalities this is the
    authors' loss whatever w. ``text=None`` leaves the CLIP term only.
    """
    total = alpha * 2 * clip_loss(embeddings, scale, rows)
    if text is None:
        return total
    separate_others, separate_text = IMSEP_SIDES[sides]
    t = embeddings[text]
    w = TEXT_WEIGHTS[text_weight](len(embeddings) - 1)
    distance = semantic_distance(semantic, _local(rows, len(t)), t.dtype)  # one N×N product for every term
    for k, x in enumerate(embeddings):
        if k == text:
            continue
        if separate_others:
            total = total + beta * imsep_loss(x, t, distance, scale, rows)
        if separate_text:
            total = total + beta * w * imsep_loss(t, x, distance, scale, rows)
    return total


# ---------------------------------------------------------------------------------------
# The model.


class SharedTower(nn.Module):
    """SharedCLIP's parameter sharing at small scale: per-modality input embedders -> several tokens per sample
    (+ a learned CLS token where the modality is read at one, + a learned per-modality position embedding) -> ONE
    transformer (pads masked out of attention, texts causal) -> ONE final LayerNorm -> the CLS or EOT token's
    output -> ONE bias-free projection -> L2 norm.

    The official SharedCLIP reads an image at a learned CLS token prepended to its patches, and a text at its
    last real (EOT) token under the text's causal mask, the one position that has seen every word: so here the
    ``text`` modality is read at EOT. Every other one (audio, XOR's a, b and c) is read like an image, at a CLS
    token: its tokens are an unordered set of views with no end token, and a CLS token pools a set without
    favouring one member, where an EOT read would favour the last view.

    An embedder with ``token_states(x) -> ((N, L, d) states, (N, L) real)`` (the text heads over token or byte
    ids) gives its tokens and pad mask itself, at most ``inputs[m]`` of them. Any other gives one (N, d) vector,
    which ``Linear(d, tokens·d)`` splits into ``tokens`` tokens.
    """

    def __init__(self, embedders: nn.ModuleDict, inputs: dict[str, int], d_model: int, tokens: int, layers: int,
                 heads: int, text: str | None):
        super().__init__()
        self.embedders, self.tokens = embedders, tokens
        self.sequences = {m for m, e in embedders.items() if hasattr(e, "token_states")}
        self.pooling = {m: "eot" if m == text else "cls" for m in embedders}
        self.to_tokens = nn.ModuleDict(
            {m: nn.Linear(d_model, tokens * d_model) for m in embedders if m not in self.sequences}
        )
        scale = d_model**-0.5  # the official initialisation: width^-0.5, and 0.01 for the text's positions
        self.class_embedding = nn.ParameterDict(
            {m: nn.Parameter(scale * torch.randn(d_model)) for m, rule in self.pooling.items() if rule == "cls"}
        )
        self.positional_embedding = nn.ParameterDict({
            m: nn.Parameter((0.01 if self.pooling[m] == "eot" else scale) * torch.randn(
                (inputs[m] if m in self.sequences else tokens) + (self.pooling[m] == "cls"), d_model))
            for m in embedders
        })
        layer = nn.TransformerEncoderLayer(
            d_model, heads, 4 * d_model, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.projection = nn.Linear(d_model, d_model, bias=False)

    def sequence(self, modality: str, x: Tensor) -> tuple[Tensor, Tensor]:
        """(N, L, d) input tokens, positions added, and (N, L) which are real, position 0 always (an empty text
        is read at its first position rather than attending to nothing)."""
        embedder = self.embedders[modality]
        if modality in self.sequences:
            tokens, real = embedder.token_states(x)
        else:
            tokens = self.to_tokens[modality](embedder(x)).unflatten(-1, (self.tokens, -1))
            real = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        if modality in self.class_embedding:
            cls = self.class_embedding[modality].to(tokens.dtype).expand(len(tokens), 1, -1)
            tokens, real = torch.cat([cls, tokens], 1), F.pad(real, (1, 0), value=True)
        positions = self.positional_embedding[modality]
        if tokens.shape[1] > len(positions):
            raise ValueError(f"{modality}: {tokens.shape[1]} tokens, more than the {len(positions)} positions its "
                             f"input width gives the shared tower")
        real = real.clone()
        real[:, 0] = True
        return tokens + positions[: tokens.shape[1]].to(tokens.dtype), real

    def forward(self, modality: str, x: Tensor) -> Tensor:
        tokens, real = self.sequence(modality, x)
        length = tokens.shape[1]
        eot = self.pooling[modality] == "eot"
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).triu(1) if eot else None
        out = self.norm(self.transformer(tokens, mask=causal, src_key_padding_mask=~real))
        if eot:  # the last real position: pads may sit anywhere after it, and none is read
            at = torch.where(real, torch.arange(length, device=real.device), -1).amax(1)
            pooled = out[torch.arange(len(out), device=out.device), at]
        else:
            pooled = out[:, 0]
        return F.normalize(self.projection(pooled), dim=-1)


class AlignClip(ContrastiveModel):
    """AlignCLIP for any set of modalities: :class:`SharedTower` embeddings and :func:`alignclip_loss`,
    with the settings of :class:`Config`.

    The ``encoders`` (each maps its modality to d_model-wide vectors, or gives its token states) feed the
    shared tower, which reads the ``text`` modality at its EOT token and every other at a CLS token.
    If no modality is named ``text`` (``text=None``, or tasks like XOR with modalities a, b, c),
    IMSep is off and the model is SharedCLIP: the shared tower trained on the unhalved pairwise
    CLIP loss α·Σ_pairs [CE + CE].
    The ``semantic`` encoder (see :data:`SEMANTIC`; by default the official code's Sentence-BERT,
    :data:`PAPER_SEMANTIC`, loaded by name) reads the text input as byte ids (byte b is token b + 1,
    0 pads), as :class:`baselines.layouts.AudioVisualLayout` lays it out, and refuses other token
    ids (m3-paper's XLM-R ids), which read as bytes would give meaningless distances.

    The logit scale is learned and its parameter clamped into [0, ln 100] (s in [1, 100]) before each
    training step, as the authors' code clamps it after each optimizer step.

    Training must call ``model(batch)`` (:meth:`forward`), not :meth:`encode` per modality:
    forward also returns ``"<text>:semantic"``, the semantic embeddings of the same rows,
    which :meth:`loss` needs. Under DDP that key is gathered like the embeddings.
    """

    normalises = True
    #: The embedded layouts (the offline variants, encoders trained from scratch) keep their texts' distances
    #: offline too; pass semantic=hf:... there for the paper's Sentence-BERT.
    preferred_encoders = {family: {"semantic": "bytes-ngram"} for family in ("m3-embedded", "av-embedded")}

    @dataclasses.dataclass(frozen=True)
    class Config(ModelConfig):
        tokens: int = 4  # the shared tower's tokens per input that its embedder gives as one vector
        layers: int = 2  # its depth
        heads: int = 4  # its attention heads; they must divide d_model
        text: str | None = "text"  # the modality whose texts give the semantic distances
        imsep_sides: str = "both"  # a key of IMSEP_SIDES
        text_weight: str = "per_partner"  # a key of TEXT_WEIGHTS: the text side's IMSep weight with 3+ modalities
        alpha: float = 1.0  # the weight of the CLIP term (1 in the paper)
        beta: float = 0.5  # of the IMSep terms (0.5 in the paper)
        semantic: str = PAPER_SEMANTIC  # the frozen semantic encoder of the texts: "hf:MODEL_NAME" or "bytes-ngram"

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.tokens < 1:
                raise ValueError(f"tokens must be at least 1, got {self.tokens}")
            if self.d_model % self.heads:
                raise ValueError(f"d_model={self.d_model} must be divisible by heads={self.heads}")
            SEMANTIC.spec(self.semantic)  # a bad spec fails here, though the encoder loads on first use
            if self.imsep_sides not in IMSEP_SIDES:
                raise ValueError(f"imsep_sides must be one of {sorted(IMSEP_SIDES)}, got {self.imsep_sides!r}")
            if self.text_weight not in TEXT_WEIGHTS:
                raise ValueError(f"text_weight must be one of {sorted(TEXT_WEIGHTS)}, got {self.text_weight!r}")

    def __init__(self, inputs: dict[str, int], **options):
        super().__init__()
        self.config = c = build(self.Config, options, type(self).__name__)
        self.modalities = tuple(inputs)
        embedders = build_encoders(c.encoders, inputs, c.d_model, c.encoder_options)
        self.text = c.text if c.text in self.modalities else None
        self.tower = SharedTower(embedders, inputs, c.d_model, c.tokens, c.layers, c.heads, self.text)
        self.logit_scale = LogitScale(c.logit_scale_init, min_value=1.0, max_value=100.0)
        self.semantic_key = f"{c.text}:semantic"

    @functools.cached_property
    def semantic(self):
        """The frozen semantic encoder of the texts, built on first use (training's forward): scoring, and a loss
        given the semantic rows, never load one, nor does a task without texts."""
        return semantic_encoder(self.config.semantic) if self.text is not None else None

    def encode(self, modality: str, x: Tensor) -> Tensor:
        return self.tower(modality, x)

    def forward(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        out = super().forward(inputs)
        if self.text is not None and self.text in inputs:
            out[self.semantic_key] = self.semantic(inputs[self.text])
        return out

    def loss(
        self, embeddings: dict[str, Tensor], rows: slice | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        ordered = [embeddings[m] for m in self.modalities]
        semantic = None
        if self.text is not None:
            if self.semantic_key not in embeddings:
                raise KeyError(
                    f"AlignCLIP's loss needs {self.semantic_key!r}, the semantic embeddings of the texts: "
                    "embed the batch with model(batch), which adds it, not with encode()"
                )
            semantic = embeddings[self.semantic_key]
        text = None if self.text is None else self.modalities.index(self.text)
        c = self.config
        if self.training:  # the step before this one may have pushed it out: clamp before it is used again
            self.logit_scale.clamp_()
        return alignclip_loss(ordered, self.logit_scale(), rows, text, semantic, c.imsep_sides, c.alpha, c.beta,
                              c.text_weight)

    def score(self, queries: dict[str, Tensor], target: str, candidates: Tensor) -> Tensor:
        return clip_scores(ordered_queries(self.modalities, queries, target), candidates, self.logit_scale())

    def no_weight_decay(self) -> set[str]:
        """The parameters AdamW leaves undecayed, by OpenCLIP's rule (AlignCLIP's code trains with it): gains,
        biases and the logit scale, i.e. everything below two dimensions."""
        return {name for name, p in self.named_parameters() if p.ndim < 2 or "logit_scale" in name}

    def card(self) -> dict:
        return card_of(self, "alignclip", dataclasses.asdict(self.config))
