"""Modality-gap measures (Liang et al., arXiv 2203.02053; Wang & Isola's uniformity).

Every measure L2-normalises first, so models whose embeddings are not on the
sphere (Symile-M3's LayerNorm heads) are measured on the same footing.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor


def centroid_distance(x: Tensor, y: Tensor) -> Tensor:
    """||mean(x̂) - mean(ŷ)||₂ of the normalised embeddings of two modalities."""
    return (F.normalize(x.float(), dim=-1).mean(0) - F.normalize(y.float(), dim=-1).mean(0)).norm()


def alignment(x: Tensor, y: Tensor) -> Tensor:
    """The mean cosine of paired rows."""
    return (F.normalize(x.float(), dim=-1) * F.normalize(y.float(), dim=-1)).sum(-1).mean()


def uniformity(x: Tensor, t: float = 2.0) -> Tensor:
    """log mean over distinct pairs of exp(-t ||u - v||²); lower is more uniform."""
    u = F.normalize(x.float(), dim=-1)
    return torch.pdist(u).pow(2).mul(-t).exp().mean().log()


def gap_metrics(embeddings: dict[str, Tensor], uniformity_rows: int = 2048) -> dict[str, float]:
    """Every measure for row-aligned embeddings: per pair of modalities, and per modality.

    Uniformity reads the first ``uniformity_rows`` rows only: it costs rows² pairs.
    """
    out = {}
    for a, b in itertools.combinations(embeddings, 2):
        out[f"gap_centroid/{a}-{b}"] = float(centroid_distance(embeddings[a], embeddings[b]))
        out[f"alignment/{a}-{b}"] = float(alignment(embeddings[a], embeddings[b]))
    for m, x in embeddings.items():
        out[f"uniformity/{m}"] = float(uniformity(x[:uniformity_rows]))
    return out
