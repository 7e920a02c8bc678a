"""Top-k candidates and the rank of a target, over (n_q x n_c) scores computed a block at a time, on one rank or many.

Scoring every query against every candidate at once holds n_q x n_c floats
(10 GB at 50k x 50k); here only one block of `chunk` queries x `candidate_chunk`
candidates is alive at a time, and each block is reduced while it is still hot
in cache: to its rows' k best, merged into the best so far, or to counts of the
candidates ahead of each row's target. Memory grows with the block, not with n_c.

Under torchrun (an initialised process group) every rank scores every query
against its own contiguous share of the candidates (`shard`). Top-k: each rank
keeps its share's k best with their global indices, one all_gather collects them,
and every rank merges them. Target ranks: the rank holding a query's target sends
its score to all (all_reduce MAX), each rank counts the candidates of its share
ahead of it, and all_reduce SUM adds the counts. Without a process group it runs
as one rank. Results come back on the CPU, the same on every rank.

Ties go to the lower candidate index, as a stable descending sort orders them:
candidate j ranks ahead of candidate i when it scores higher, or scores the same
and j < i. That order is total, so the k best of the k best of each share are the
k best overall, and rankings are identical for any chunking and any world size
as long as a query's score against a candidate does not depend on the block it is
computed in. A model whose scores are all equal ranks candidate 0 first, and
reaches chance, not a perfect score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist
from torch import Tensor

#: (query rows, candidate columns) -> their (len(rows), len(columns)) block of scores
Scorer = Callable[[slice, slice], Tensor]
CHUNK = 1024  # queries per block
CANDIDATE_CHUNK = 16384  # candidates per block: a block of 1024 x 16384 float32 scores is 64 MiB


def chunks(n: int, chunk: int = CHUNK, start: int = 0) -> Iterator[slice]:
    """Consecutive slices of at most `chunk` covering start, ..., start + n - 1."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    for begin in range(start, start + n, chunk):
        yield slice(begin, min(begin + chunk, start + n))


def _group_rank_world(group) -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


def shard(n: int, rank: int, world: int) -> slice:
    """Rank `rank`'s contiguous share of n candidates; shares differ by at most one, the first ones larger."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def _collective_device(group) -> torch.device:
    """NCCL moves CUDA tensors only; gloo moves CPU ones."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def stable_topk(s: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """torch.topk with ties to the lower index. torch leaves the order of ties open, so fix it afterwards:
    re-sort the k picked per row, and fully sort the rare rows where a tie straddles the k-th place."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, s.shape[1])
    if k == 0:  # no candidates: an empty share of a rank
        return s.new_empty(len(s), 0), torch.empty(len(s), 0, dtype=torch.long, device=s.device)
    # One more than asked: a tie straddles the k-th place exactly when the (k+1)-th best equals the k-th,
    # and then topk may have kept a higher index. Selecting one more costs next to nothing; counting
    # the candidates that reach the k-th score would cost a pass as long as the matmul.
    v, i = s.topk(min(k + 1, s.shape[1]), dim=1)
    straddles = v[:, k] == v[:, k - 1] if v.shape[1] > k else torch.zeros(len(s), dtype=torch.bool, device=s.device)
    v, i = merge(v[:, :k], i[:, :k], k)
    if straddles.any():
        rows = straddles.nonzero().squeeze(1)
        sv, si = s[rows].sort(dim=1, descending=True, stable=True)
        v[rows], i[rows] = sv[:, :k], si[:, :k]
    return v, i


def merge(values: Tensor, indices: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k best of each row's candidates, given by score and global index, best first, ties to the lower index."""
    indices, order = indices.sort(dim=1)
    values, order = values.gather(1, order).sort(dim=1, descending=True, stable=True)
    return values[:, :k], indices.gather(1, order)[:, :k]


def _share_topk(scores: Scorer, rows: slice, mine: slice, k: int, candidate_chunk: int) -> tuple[Tensor, Tensor]:
    """The k best of this rank's share for `rows`, with global indices, a block of candidates at a time."""
    best = None
    for columns in chunks(mine.stop - mine.start, candidate_chunk, mine.start) if mine.stop > mine.start else [mine]:
        v, i = stable_topk(scores(rows, columns), k)
        i = i + columns.start
        best = (v, i) if best is None else merge(torch.cat([best[0], v], 1), torch.cat([best[1], i], 1), k)
    return best


def topk(scores: Scorer, n_queries: int, n_candidates: int, k: int, chunk: int = CHUNK,
         candidate_chunk: int = CANDIDATE_CHUNK, group=None) -> tuple[Tensor, Tensor]:
    """(values, indices), each (n_queries, k'), on the CPU: every query's k best candidates, best first;
    k' = min(k, n_candidates). Under a process group, each rank scores its share of the candidates."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rank, world = _group_rank_world(group)
    mine, width = shard(n_candidates, rank, world), min(k, n_candidates)
    values, indices = [], []
    for rows in chunks(n_queries, chunk):
        v, i = _share_topk(scores, rows, mine, k, candidate_chunk)
        if world > 1:
            v, i = _gathered(v, i, width, n_candidates, group)
        values.append(v.cpu())
        indices.append(i.cpu())
    if not values:
        return torch.empty(0, 0), torch.empty(0, 0, dtype=torch.long)
    return torch.cat(values), torch.cat(indices)


def _gathered(v: Tensor, i: Tensor, width: int, n_candidates: int, group) -> tuple[Tensor, Tensor]:
    """Every rank's k best merged. all_gather wants equal shapes: a share with fewer than `width` candidates
    is padded with -inf at index n_candidates, which loses every tie to a real candidate and is never kept."""
    device, pad = _collective_device(group), width - v.shape[1]
    v = torch.cat([v, v.new_full((len(v), pad), float("-inf"))], 1).to(device)
    i = torch.cat([i, i.new_full((len(i), pad), n_candidates)], 1).to(device)
    world = dist.get_world_size(group)
    all_v, all_i = [torch.empty_like(v) for _ in range(world)], [torch.empty_like(i) for _ in range(world)]
    dist.all_gather(all_v, v, group=group)
    dist.all_gather(all_i, i, group=group)
    return merge(torch.cat(all_v, 1), torch.cat(all_i, 1), width)


def target_ranks(scores: Scorer, targets: Tensor, n_candidates: int, chunk: int = CHUNK,
                 candidate_chunk: int = CANDIDATE_CHUNK, group=None) -> Tensor:
    """(n_q,) the 0-based rank of candidate targets[q] among every candidate of query q (0: the best).

    Two passes over this rank's blocks: the first scores only the blocks that hold a target, to read the
    targets' scores (float64 holds any float score exactly); the second counts the candidates ahead."""
    if len(targets) and not 0 <= int(targets.min()) <= int(targets.max()) < n_candidates:
        raise ValueError(f"targets must index the {n_candidates} candidates, got {int(targets.min())} to {int(targets.max())}")
    rank, world = _group_rank_world(group)
    mine = shard(n_candidates, rank, world)
    blocks = list(chunks(mine.stop - mine.start, candidate_chunk, mine.start))
    device = _collective_device(group) if world > 1 else torch.device("cpu")
    ranks = []
    for rows in chunks(len(targets), chunk):
        t = targets[rows].long().cpu()
        true = torch.full((len(t),), float("-inf"), dtype=torch.float64)
        for columns in blocks:
            held = ((t >= columns.start) & (t < columns.stop)).nonzero().squeeze(1)
            if len(held):
                s = scores(rows, columns)
                true[held] = s[held.to(s.device), (t[held] - columns.start).to(s.device)].double().cpu()
        if world > 1:
            true = true.to(device)
            dist.all_reduce(true, dist.ReduceOp.MAX, group=group)
        ahead = torch.zeros(len(t), dtype=torch.long)
        for columns in blocks:
            s = scores(rows, columns)
            there, at = true.to(s.device)[:, None], t.to(s.device)[:, None]
            index = torch.arange(columns.start, columns.stop, device=s.device)
            ahead += ((s > there).sum(1) + ((s == there) & (index < at)).sum(1)).cpu()
        if world > 1:
            ahead = ahead.to(device)
            dist.all_reduce(ahead, group=group)
        ranks.append(ahead.cpu())
    return torch.cat(ranks) if ranks else torch.empty(0, dtype=torch.long)


def recall_at(ranks: Tensor, ks: tuple[int, ...]) -> dict[int, Tensor]:
    """Per query, whether its target is among the best k, as 0/1 floats, for each k."""
    return {k: (ranks < k).double() for k in ks}
