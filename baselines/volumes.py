"""Geometric alignment measures of k unit vectors, and the contrastive loss over them.

GRAM (ICLR 2025, ``ispamm/GRAM``) measures the volume sqrt(|det G|) of the
parallelotope the vectors span, G being their Gram matrix; TRIANGLE (NeurIPS
2025, ``ispamm/TRIANGLE``) the area of the triangle three of them form. Both are
small when the vectors are aligned, so logits are the negated measure.

Every measure here is a matrix over (row tuple i, column tuple j): the vectors
split into a row side, one (n_r, d) tensor per vector, and a column side, one
(n_c, d) per vector. Within a side, vectors of the same index belong together
(an anchor's one modality, a candidate's whole tuple). Only dot products are
formed, never the (n_r, n_c, d) differences: memory is O(n_r·n_c·k²).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .losses import _local

#: A floor under |det G|: a degenerate tuple (two equal vectors) has det 0, where sqrt has an infinite
#: slope. The official GRAM has none; the floor moves a volume by at most 1e-6.
_DET_FLOOR = 1e-12


def gram_entries(row_side: Sequence[Tensor], col_side: Sequence[Tensor]) -> list[list[Tensor]]:
    """The k×k Gram entries <x_p, x_q> of every (row i, column j) tuple, each broadcastable to (n_r, n_c):
    row-side pairs are (n_r, 1), column-side pairs (1, n_c), cross pairs (n_r, n_c)."""
    # Determinants and cancelling differences lose everything in half precision: the entries are float32 at
    # least, under autocast too (the official code casts as well).
    dtype = torch.promote_types(row_side[0].dtype, torch.float32)
    vectors = [(x.to(dtype), "row") for x in row_side] + [(x.to(dtype), "col") for x in col_side]
    entries = [[None] * len(vectors) for _ in vectors]
    for p, (x, side_x) in enumerate(vectors):
        for q in range(p, len(vectors)):
            y, side_y = vectors[q]
            if side_x == side_y:
                dot = (x * y).sum(-1)
                value = dot[:, None] if side_x == "row" else dot[None, :]
            else:
                with torch.autocast(x.device.type, enabled=False):
                    value = x @ y.T  # p is on the row side, since row vectors come first
            entries[p][q] = entries[q][p] = value
    return entries




def gram_volume(row_side: Sequence[Tensor], col_side: Sequence[Tensor]) -> Tensor:
    """(n_r, n_c) volumes sqrt(|det G|) of the k = len(row_side) + len(col_side) vectors of each tuple."""
    entries = gram_entries(row_side, col_side)
    shape = torch.broadcast_shapes(*(e.shape for row in entries for e in row))
    gram = torch.stack([torch.stack([e.expand(shape) for e in row], -1) for row in entries], -2)
    return torch.linalg.det(gram).abs().clamp_min(_DET_FLOOR).sqrt()


def triangle_area2(row_side: Sequence[Tensor], col_side: Sequence[Tensor]) -> Tensor:
    """(n_r, n_c) values of TRIANGLE's score of three vectors x0, x1, x2: with edges u = x0 − x1 and
    w = x0 − x2, (‖u‖²‖w‖² − (u·w)²)/2, which is twice the squared area (the official code drops the sqrt,
    and clamps nothing). Computed from the Gram entries, so in O(n_r·n_c) memory.

    Two vertices span no triangle; their measure is the squared edge ‖x0 − x1‖², which on the unit sphere
    ranks as the cosine does (a task fills an absent third vertex with its mean embedding instead)."""
    k = len(row_side) + len(col_side)
    if k not in (2, 3):
        raise ValueError(f"a triangle has 3 vertices, got {k}")
    g = gram_entries(row_side, col_side)
    if k == 2:
        return g[0][0] + g[1][1] - 2 * g[0][1]
    uu = g[0][0] + g[1][1] - 2 * g[0][1]
    ww = g[0][0] + g[2][2] - 2 * g[0][2]
    uw = g[0][0] - g[0][1] - g[0][2] + g[1][2]
    return (uu * ww - uw * uw) / 2


#: Measures by name; smaller means better aligned.
MEASURES: dict[str, Callable[[Sequence[Tensor], Sequence[Tensor]], Tensor]] = {
    "volume": gram_volume,
    "area": triangle_area2,
}


def volume_loss(
    embeddings: Sequence[Tensor],
    scale: Tensor | float,
    measure: Callable[[Sequence[Tensor], Sequence[Tensor]], Tensor],
    anchors: Sequence[int],
    label_smoothing: float = 0.0,
    rows: slice | None = None,
) -> Tensor:
    """The mean over ``anchors`` of GRAM's bidirectional CE on logits −scale·measure.

    For anchor modality m, entry (i, j) measures anchor row i against the tuple of the other modalities at
    row j; the loss is ½[CE over each anchor's row + CE over each tuple's column], positives on the diagonal,
    with ``label_smoothing``. Under DDP each rank's ``rows`` are scored against every gathered row in both
    directions, as the official code scores local texts against gathered tuples and vice versa.
    """
    n = len(embeddings[0])
    rows = _local(rows, n)
    labels = torch.arange(rows.start, rows.stop, device=embeddings[0].device)
    total = 0.0
    for m in anchors:
        anchor, others = embeddings[m], [e for k, e in enumerate(embeddings) if k != m]
        to_tuples = -scale * measure([anchor[rows]], others)  # local anchors against every tuple
        to_anchors = -scale * measure([anchor], [e[rows] for e in others]).T  # local tuples against every anchor
        total = total + (F.cross_entropy(to_tuples, labels, label_smoothing=label_smoothing)
                         + F.cross_entropy(to_anchors, labels, label_smoothing=label_smoothing)) / 2
    return total / len(anchors)
