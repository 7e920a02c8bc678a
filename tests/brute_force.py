"""Loss formulas written out one row at a time, for the tests to check the vectorised losses against."""

import math

import torch
import torch.nn.functional as F


def unit_rows(modalities, n: int = 7, d: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded float64 unit-norm rows per modality."""
    g = torch.Generator().manual_seed(seed)
    return {m: F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1) for m in modalities}


def infonce_loop(x, y, scale: float, rows: range) -> float:
    """Mean over ``rows`` of both directions' -log softmax of the positive, one row at a time."""
    total = 0.0
    for i in rows:
        for u, v in ((x, y), (y, x)):
            logits = [scale * float(u[i] @ v[j]) for j in range(len(v))]
            total -= logits[i] - math.log(sum(math.exp(l) for l in logits))
    return total / (2 * len(rows))


def sharded_mean(loss_of_rows, parts: list[slice], n: int):
    """Σ over rank shards of ``loss_of_rows(part)`` weighted by its share of the n rows: what DDP's averaging gives."""
    return sum(loss_of_rows(p) * (p.stop - p.start) / n for p in parts)


def smoothed_ce_loop(logits: list[float], target: int, smoothing: float) -> float:
    """Cross-entropy with label smoothing, written out: (1 − ε)·(−log p_target) + ε·mean_k(−log p_k)."""
    log_z = math.log(sum(math.exp(l) for l in logits))
    nll = [log_z - l for l in logits]
    return (1 - smoothing) * nll[target] + smoothing * sum(nll) / len(nll)


def volume_of(vectors) -> float:
    """sqrt(|det(X Xᵀ)|) of the k vectors stacked as the rows of X, by torch.linalg.det."""
    x = torch.stack(list(vectors))
    return float(torch.linalg.det(x @ x.T).abs().sqrt())


def triangle_of(x0, x1, x2) -> float:
    """TRIANGLE's surrogate from the edge vectors themselves: (‖u‖²‖w‖² − (u·w)²)/2, u = x0 − x1, w = x0 − x2."""
    u, w = x0 - x1, x0 - x2
    return float((u @ u) * (w @ w) - (u @ w) ** 2) / 2


def heron_area(x0, x1, x2) -> float:
    """The triangle's area from its three side lengths alone (Heron's formula)."""
    a, b, c = (float((p - q).norm()) for p, q in ((x0, x1), (x1, x2), (x2, x0)))
    s = (a + b + c) / 2
    return math.sqrt(max(s * (s - a) * (s - b) * (s - c), 0.0))


def volume_loss_loop(embeddings, scale: float, measure, anchors, smoothing: float, rows: range) -> float:
    """GRAM's loss one (anchor, row) at a time: anchor row i against every tuple j, and tuple i against every
    anchor row j, each a smoothed CE on −scale·measure, averaged over both directions, rows and anchors."""
    n = len(embeddings[0])
    total = 0.0
    for m in anchors:
        others = [e for k, e in enumerate(embeddings) if k != m]
        anchor = embeddings[m]
        for i in rows:
            to_tuples = [-scale * measure(anchor[i], *(o[j] for o in others)) for j in range(n)]
            to_anchors = [-scale * measure(anchor[j], *(o[i] for o in others)) for j in range(n)]
            total += (smoothed_ce_loop(to_tuples, i, smoothing) + smoothed_ce_loop(to_anchors, i, smoothing)) / 2
    return total / (len(anchors) * len(rows))
