"""Gated Symile (arXiv 2604.05834; ``TillmannRheude/gated_symile``): Symile whose query modalities are
gated, per candidate, toward learned neutral directions, so that an unreliable modality can be ignored."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig, build
from .encoders import build_encoders
from .interface import ContrastiveModel, card_of, ordered_queries
from .logit_scale import LogitScale
from .losses import _local

GATE_TYPES = ("sigmoid", "softmax")
NEUTRALS = ("random_trainable", "random_frozen", "ones", "none")
NEGATIVES = ("n", "pair")


class ModalityGate(nn.Module):
    """The official attention gate (``ModalityAttentionGate``, ``gate_mode: attention``), conditioned on the
    candidate: for a target modality t and a candidate c of it, each query modality m ≠ t gets a weight

        w_m = sigmoid(<Q_t(c), K_m(e_m)> / T) · (1 − sigmoid(null(c)))       (``gate_type="sigmoid"``)

    with Q_t, K_m bias-free projections to ``d_k``, L2-normalised; T = softplus(log_temp) + 0.1; and the NULL
    logit null(c) = (MLP_null(c) + null_logit_t) / T. ``"softmax"`` takes the softmax over the query
    modalities' logits and the NULL logit and drops the NULL mass. The gated query is

        g_m = normalise((1 − α)·e_m + α·(w_m·e_m + (1 − w_m)·n_m)),      α = sigmoid(strength)

    with n_m the modality's neutral direction (unit; learned by default); without neutrals (``"none"``),
    g_m = (1 − α + α·w_m)·e_m, not renormalised, as the official ablation.

    Everything is computed per (query row i, candidate j) without materialising the (n_q, n_c, d) gated
    vectors: g_m(i, j) = (a·e_m[i] + b·n_m)/r with scalar maps a, b, r over (i, j), which
    :meth:`coefficients` returns.
    """

    def __init__(self, modalities: tuple[str, ...], d_model: int, d_k: int, temperature: float, gate_type: str,
                 use_null: bool, neutral: str, strength_init: float):
        super().__init__()
        if gate_type not in GATE_TYPES:
            raise ValueError(f"gate_type must be one of {GATE_TYPES}, got {gate_type!r}")
        if neutral not in NEUTRALS:
            raise ValueError(f"neutral must be one of {NEUTRALS}, got {neutral!r}")
        if temperature <= 0:
            raise ValueError(f"gate_temperature must be positive, got {temperature}")
        self.modalities, self.gate_type, self.use_null, self.neutral_type = modalities, gate_type, use_null, neutral
        self.q_proj = nn.ModuleDict({m: nn.Linear(d_model, d_k, bias=False) for m in modalities})
        self.k_proj = nn.ModuleDict({m: nn.Linear(d_model, d_k, bias=False) for m in modalities})
        self.null_head = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, d_k), nn.ReLU(), nn.Linear(d_k, 1))
        self.null_logit = nn.Parameter(torch.zeros(len(modalities)))
        self.log_temp = nn.Parameter(torch.tensor(math.log(temperature)))
        self.strength = nn.Parameter(torch.tensor(float(strength_init)))
        directions = torch.ones(len(modalities), d_model) if neutral == "ones" else torch.randn(len(modalities), d_model)
        self.neutral = nn.Parameter(F.normalize(directions, dim=1), requires_grad=neutral == "random_trainable")

    def neutrals(self) -> dict[str, Tensor] | None:
        if self.neutral_type == "none":
            return None
        unit = F.normalize(self.neutral, dim=1)  # a learned direction is renormalised at every use
        return {m: unit[k] for k, m in enumerate(self.modalities)}

    def weights(self, target: str, candidates: Tensor, queries: dict[str, Tensor], paired: bool = False
                ) -> dict[str, Tensor]:
        """(n_q, n_c) gate weights w_m of each query modality, for ``candidates`` (n_c, d) of ``target``; with
        ``paired``, (n,) weights of query row i and candidate i only."""
        temp = F.softplus(self.log_temp) + 0.1
        q = F.normalize(self.q_proj[target](candidates), dim=-1)
        cross = _rowwise if paired else _all_pairs
        logits = {m: cross(F.normalize(self.k_proj[m](e), dim=-1), q) / temp for m, e in queries.items()}
        if not self.use_null:
            null = None
        else:
            t = self.modalities.index(target)
            null = (self.null_head(candidates).squeeze(-1) + self.null_logit[t]) / temp
            null = null if paired else null[None, :]
        if self.gate_type == "sigmoid":
            keep = 1.0 if null is None else 1 - torch.sigmoid(null)
            return {m: torch.sigmoid(s) * keep for m, s in logits.items()}
        stacked = torch.stack([*logits.values(), *([] if null is None else [null.expand_as(next(iter(logits.values())))])])
        probabilities = stacked.softmax(0)
        return {m: probabilities[k] for k, m in enumerate(logits)}

    def coefficients(self, weights: dict[str, Tensor], queries: dict[str, Tensor], paired: bool = False
                     ) -> dict[str, tuple[Tensor, Tensor]]:
        """Per query modality, (a/r, b/r): g_m(i, j) = (a/r)(i, j)·e_m[i] + (b/r)(i, j)·n_m."""
        alpha = torch.sigmoid(self.strength)
        neutrals = self.neutrals()
        out = {}
        for m, w in weights.items():
            a = 1 - alpha + alpha * w
            if neutrals is None:
                out[m] = (a, torch.zeros_like(a))
                continue
            b = alpha * (1 - w)
            e = queries[m]
            norm2, cross = (e * e).sum(-1), e @ neutrals[m]
            if not paired:  # per query row, the same for every candidate
                norm2, cross = norm2[:, None], cross[:, None]
            r = (a * a * norm2 + b * b + 2 * a * b * cross).clamp_min(1e-12).sqrt()
            out[m] = (a / r, b / r)
        return out


def _all_pairs(x: Tensor, y: Tensor) -> Tensor:
    return x @ y.T


def _rowwise(x: Tensor, y: Tensor) -> Tensor:
    return (x * y).sum(-1)


class GatedSymile(ContrastiveModel):
    """Gated Symile as in the official repository's ``symile.yaml`` with ``use_gate: True`` (branch ``main``).

    Embeddings are L2-normalised. The score of candidate c of target t given query rows e_m (m ≠ t) is
    d^((M−1)/2) · exp(logit_scale) · <c, ⊙_m g_m>: Symile's multilinear inner product of the candidate and the
    gated queries (:class:`ModalityGate`), with the official deterministic ×d factor (M = 3) and a learned
    log scale starting at 0.

    Loss: the mean over target modalities of a softmax CE whose candidates are drawn by ``negatives``:
      - ``"pair"``: per query row, the true target and ``pair_negatives`` target rows drawn uniformly with
        replacement from the others (capped at N − 1), each scored with its own gate, as the official pair mode.
      - ``"n"`` (default): Symile's in-batch negatives, the target row against N query tuples built from
        independent permutations of each query modality, the positive on the diagonal.
    In both, every (query, candidate) pair is gated by that candidate. The official ``n`` path gates each
    sample once by its own triple, so a query's gate sees its true target; that leak is avoided here, in
    training and in scoring alike.

    Absent queries are filled with their mean train embedding (``absent_queries = "mean"``), as for Symile.
    The gate's parameters are trained without weight decay (:meth:`no_weight_decay`), as the official optimiser
    groups them; ``lr_gate_mul`` is 1 on ``main`` and not offered. The matrix gate mode is not implemented.
    """

    normalises = True
    absent_queries = "mean"

    @dataclasses.dataclass(frozen=True)
    class Config(ModelConfig):
        logit_scale_init: float = 0.0  # exp(0) = 1: the official init for Symile and its gate
        negatives: str = "n"  # "n" in-batch tuples, or "pair" sampled target candidates
        pair_negatives: int = 512  # negatives per query row in "pair" mode
        gate_type: str = "sigmoid"  # a key of GATE_TYPES
        gate_use_null: bool = True  # the NULL option: a learned way to gate every query down
        gate_neutral: str = "random_trainable"  # a key of NEUTRALS
        gate_temperature: float = 0.7  # the gate's initial temperature T (before the +0.1 floor)
        gate_strength_init: float = -3.0  # logit of α: sigmoid(-3) = 0.047
        gate_dim: int = 256  # d_k of the gate's query and key projections

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.negatives not in NEGATIVES:
                raise ValueError(f"negatives must be one of {NEGATIVES}, got {self.negatives!r}")
            if self.pair_negatives < 1:
                raise ValueError(f"pair_negatives must be >= 1, got {self.pair_negatives}")

    def __init__(self, inputs: dict[str, int], **options):
        super().__init__()
        self.config = c = build(self.Config, options, type(self).__name__)
        self.modalities = tuple(inputs)
        self.encoders = build_encoders(c.encoders, inputs, c.d_model, c.encoder_options)
        self.logit_scale = LogitScale(c.logit_scale_init)
        self.gate = ModalityGate(self.modalities, c.d_model, c.gate_dim, c.gate_temperature, c.gate_type,
                                 c.gate_use_null, c.gate_neutral, c.gate_strength_init)
        # The official DVS factor d^((M-1)/2): the MIP of M unit vectors in d dims shrinks as d^-(M-1)/2.
        self.dvs = c.d_model ** ((len(self.modalities) - 1) / 2)

    def encode(self, modality: str, x: Tensor) -> Tensor:
        return F.normalize(self.encoders[modality](x), dim=-1)

    def gated_scores(self, target: str, queries: dict[str, Tensor], candidates: Tensor, paired: bool = False
                     ) -> Tensor:
        """(n_q, n_c) logits of each candidate of ``target`` against each query tuple, every pair gated by its
        candidate; with ``paired``, the (n,) logits of query tuple i with candidate i alone. The product of the
        gated queries expands into 2^(M−1) terms, each one matmul (or row-wise product)."""
        weights = self.gate.weights(target, candidates, queries, paired)
        coefficients = self.gate.coefficients(weights, queries, paired)
        neutrals = self.gate.neutrals()
        cross = _rowwise if paired else _all_pairs
        rows = len(next(iter(queries.values())))
        total = 0.0
        for sides in itertools.product((0, 1), repeat=len(queries)):  # per query: 0 its row, 1 its neutral
            if neutrals is None and any(sides):
                continue
            product = functools.reduce(
                torch.mul, [queries[m] if side == 0 else neutrals[m][None, :] for m, side in zip(queries, sides)])
            weight = functools.reduce(torch.mul, [coefficients[m][side] for m, side in zip(queries, sides)])
            total = total + weight * cross(product.expand(rows, -1), candidates)
        return self.dvs * self.logit_scale() * total

    def loss(
        self, embeddings: dict[str, Tensor], rows: slice | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        n = len(embeddings[self.modalities[0]])
        rows = _local(rows, n)
        device = torch.device("cpu") if generator is None else generator.device
        total = 0.0
        for target in self.modalities:
            others = [m for m in self.modalities if m != target]
            if self.config.negatives == "pair":
                total = total + self._pair_loss(target, others, embeddings, rows, generator, device)
            else:
                total = total + self._in_batch_loss(target, others, embeddings, rows, generator, device)
        return total / len(self.modalities)

    def _in_batch_loss(self, target, others, embeddings, rows, generator, device) -> Tensor:
        n = len(embeddings[target])
        shuffled = {m: embeddings[m][torch.randperm(n, generator=generator, device=device).to(embeddings[m].device)]
                    for m in others}
        logits = self.gated_scores(target, shuffled, embeddings[target][rows]).T  # local targets x N tuples
        positives = self.gated_scores(target, {m: embeddings[m][rows] for m in others}, embeddings[target][rows],
                                      paired=True)
        logits = logits.clone()
        logits.diagonal(rows.start).copy_(positives)
        labels = torch.arange(rows.start, rows.stop, device=logits.device)
        return F.cross_entropy(logits, labels)

    def _pair_loss(self, target, others, embeddings, rows, generator, device) -> Tensor:
        n, local = len(embeddings[target]), rows.stop - rows.start
        k = min(self.config.pair_negatives, n - 1)
        if k < 1:
            raise ValueError("pair negatives need a batch of at least 2 rows")
        # Drawn for every global row, so that ranks sharing a seed agree with one process on the whole batch.
        drawn = torch.randint(n - 1, (n, k), generator=generator, device=device)[rows]
        own = torch.arange(rows.start, rows.stop, device=device)[:, None]
        negatives = drawn + (drawn >= own)  # uniform over the other rows
        columns = torch.cat([own, negatives], dim=1).to(embeddings[target].device)
        scores = self.gated_scores(target, {m: embeddings[m][rows] for m in others}, embeddings[target])
        logits = scores.gather(1, columns)
        return F.cross_entropy(logits, torch.zeros(local, dtype=torch.long, device=logits.device))

    def score(self, queries: dict[str, Tensor], target: str, candidates: Tensor) -> Tensor:
        ordered = ordered_queries(self.modalities, queries, target)
        present = [m for m in self.modalities if m in queries]
        return self.gated_scores(target, dict(zip(present, ordered)), candidates)

    def no_weight_decay(self) -> set[str]:
        return {name for name, _ in self.named_parameters() if name.startswith("gate.")}

    def card(self) -> dict:
        return card_of(self, "gated-symile", dataclasses.asdict(self.config))
