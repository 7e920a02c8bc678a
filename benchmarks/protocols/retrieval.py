"""Top-k candidates and the rank of a target, over (n_q x n_c) scores computed a chunk of queries at a time.

Scoring every query against every candidate at once holds n_q x n_c floats
(10 GB at 50k x 50k); here only `chunk` x n_c are alive at a time, and each
chunk is reduced while it is still hot in cache.

Ties go to the lower candidate index, as a stable descending sort orders them:
candidate j ranks ahead of candidate i when it scores higher, or scores the same
and j < i. So a model whose scores are all equal ranks candidate 0 first, and
reaches chance, not a perfect score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

#: rows of queries -> their (len(rows), n_c) scores against every candidate
Scorer = Callable[[slice], Tensor]
CHUNK = 1024


def chunks(n: int, chunk: int = CHUNK) -> Iterator[slice]:
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


def topk(scores: Scorer, n_queries: int, k: int, chunk: int = CHUNK) -> tuple[Tensor, Tensor]:
    """(values, indices), each (n_queries, k'): every query's k best candidates, best first; k' = min(k, n_c)."""
    values, indices = [], []
    for rows in chunks(n_queries, chunk):
        v, i = stable_topk(scores(rows), k)
        values.append(v)
        indices.append(i)
    if not values:
        return torch.empty(0, 0), torch.empty(0, 0, dtype=torch.long)
    return torch.cat(values), torch.cat(indices)


def stable_topk(s: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """torch.topk with ties to the lower index. torch leaves the order of ties open, so fix it afterwards:
    re-sort the k picked per row, and fully sort the rare rows where a tie straddles the k-th place."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, s.shape[1])
    # One more than asked: a tie straddles the k-th place exactly when the (k+1)-th best equals the k-th,
    # and then topk may have kept a higher index. Selecting one more costs next to nothing; counting
    # the candidates that reach the k-th score would cost a pass as long as the matmul.
    v, i = s.topk(min(k + 1, s.shape[1]), dim=1)
    straddles = v[:, k] == v[:, k - 1] if v.shape[1] > k else torch.zeros(len(s), dtype=torch.bool, device=s.device)
    v, i = v[:, :k], i[:, :k]
    i, order = i.sort(dim=1)  # by index, then a stable sort by value keeps equal values in index order
    v, order = v.gather(1, order).sort(dim=1, descending=True, stable=True)
    i = i.gather(1, order)
    if straddles.any():
        rows = straddles.nonzero().squeeze(1)
        sv, si = s[rows].sort(dim=1, descending=True, stable=True)
        v[rows], i[rows] = sv[:, :k], si[:, :k]
    return v, i


def target_ranks(scores: Scorer, targets: Tensor, chunk: int = CHUNK) -> Tensor:
    """(n_q,) the 0-based rank of candidate targets[q] among every candidate of query q (0: the best)."""
    ranks = []
    for rows in chunks(len(targets), chunk):
        s, t = scores(rows), targets[rows].long()[:, None]
        true = s.gather(1, t)
        ahead = (s > true).sum(1) + ((s == true) & (torch.arange(s.shape[1], device=s.device) < t)).sum(1)
        ranks.append(ahead.cpu())
    return torch.cat(ranks) if ranks else torch.empty(0, dtype=torch.long)


def recall_at(ranks: Tensor, ks: tuple[int, ...]) -> dict[int, Tensor]:
    """Per query, whether its target is among the best k, as 0/1 floats, for each k."""
    return {k: (ranks < k).double() for k in ks}
