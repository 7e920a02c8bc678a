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
