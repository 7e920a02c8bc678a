"""GRAM's data–text matching (DTM) term: a head that tells a sample's true tuple from hard negatives that the
volume finds nearly as good, trained beside the volume loss and used to re-rank its top candidates."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .losses import _local

#: The official sampler adds this to every softmax weight, so that even a far tuple can be drawn.
_FLOOR = 1e-4


def _at_least_float32(x: Tensor) -> Tensor:
    """Softmax and CE in float32 at least, under autocast too."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


class MatchingHead(nn.Module):
    """Logits (n, 2) of "not a match" / "a match" for n whole tuples, one unit embedding per modality in the
    model's modality order, from Linear–GELU–LayerNorm–Linear over their concatenation and products with each
    other. The official head has this shape on its BERT cross-encoder's CLS; polymodal's pooled embeddings have
    no tokens to cross-attend, so the pairwise products carry their interaction instead."""

    def __init__(self, k: int, d: int, hidden: int):
        super().__init__()
        features = k * d + k * (k - 1) // 2 * d
        self.mlp = nn.Sequential(nn.Linear(features, hidden), nn.GELU(), nn.LayerNorm(hidden), nn.Linear(hidden, 2))

    def forward(self, tuple_: Sequence[Tensor]) -> Tensor:
        products = [tuple_[p] * tuple_[q] for p in range(len(tuple_)) for q in range(p + 1, len(tuple_))]
        return self.mlp(torch.cat([*tuple_, *products], dim=-1))

    def match(self, tuple_: Sequence[Tensor]) -> Tensor:
        """P(match) of each tuple."""
        return self(tuple_).softmax(-1)[..., 1]


def hard_negatives(logits: Tensor, positives: Tensor, uniforms: Tensor) -> Tensor:
    """For each row of ``logits``, one column other than its positive, drawn with probability proportional
    to softmax(row) + 1e-4 (the official rule), by Gumbel-max on ``uniforms`` of the same shape."""
    weights = _at_least_float32(logits).softmax(-1) + _FLOOR
    weights = weights.scatter(1, positives[:, None], 0.0)
    gumbel = -(-uniforms.clamp_min(1e-20).log()).log()
    return (weights.log() + gumbel).argmax(-1)


def matching_loss(
    head: MatchingHead,
    embeddings: Sequence[Tensor],
    scale: Tensor | float,
    measure: Callable[[Sequence[Tensor], Sequence[Tensor]], Tensor],
    anchors: Sequence[int],
    rows: slice | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The mean over ``anchors`` of GRAM's DTM loss. For anchor m and each local row i: the true tuple; the
    anchor i with a hard-negative tuple j, drawn from row i of −scale·measure; and a hard-negative anchor j
    with tuple i, drawn from column i. CE of the head's logits, label 1 for the true tuples only.

    The draws are Gumbel-max over (n, n) uniforms from ``generator`` for every gathered row, of which each
    rank takes its own, so ranks that share a seed draw what one process draws. The sampling logits carry
    no gradient; the head's inputs do, as in the official code."""
    n = len(embeddings[0])
    rows = _local(rows, n)
    local = torch.arange(rows.start, rows.stop, device=embeddings[0].device)
    device = torch.device("cpu") if generator is None else generator.device
    total = 0.0
    for m in anchors:
        others = [k for k in range(len(embeddings)) if k != m]
        with torch.no_grad():
            to_tuples = -scale * measure([embeddings[m][rows]], [embeddings[k] for k in others])
            to_anchors = -scale * measure([embeddings[m]], [embeddings[k][rows] for k in others]).T
        uniforms = torch.rand(2, n, n, generator=generator, device=device)[:, rows].to(to_tuples.device)
        negative_tuple = hard_negatives(to_tuples, local, uniforms[0])
        negative_anchor = hard_negatives(to_anchors, local, uniforms[1])

        def tuples(anchor_rows: Tensor, tuple_rows: Tensor) -> list[Tensor]:
            return [e[anchor_rows if k == m else tuple_rows] for k, e in enumerate(embeddings)]

        logits = torch.cat([
            head(tuples(local, local)), head(tuples(local, negative_tuple)), head(tuples(negative_anchor, local)),
        ])
        labels = torch.cat([torch.ones_like(local), torch.zeros_like(local), torch.zeros_like(local)])
        total = total + F.cross_entropy(_at_least_float32(logits), labels)
    return total / len(anchors)


def rerank(head: MatchingHead, scores: Tensor, tuple_of: Callable[[Tensor, Tensor], list[Tensor]], top: int) -> Tensor:
    """``scores`` (n_q, n_c) with each row's ``top`` best candidates re-scored by the head, as the row's best
    score + 1 + P(match), so that they rank by P(match) above every other candidate, which keep their order.
    ``tuple_of(query_rows, candidate_rows)`` gives the head's input for those (query, candidate) pairs."""
    top = min(top, scores.shape[1])
    best = scores.topk(top, dim=1).indices
    queries = torch.arange(len(scores), device=scores.device)[:, None].expand_as(best)
    p = head.match(tuple_of(queries.reshape(-1), best.reshape(-1))).reshape(best.shape)
    lifted = scores.max(dim=1, keepdim=True).values + 1 + p
    return scores.scatter(1, best, lifted.to(scores.dtype))
