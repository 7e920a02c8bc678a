"""Contrastive losses over M modalities: pairwise InfoNCE (CLIP) and Symile.

Every loss takes row-aligned embeddings, one (N, d) tensor per modality (row i
of each is the same sample), and ``scale``, the logit scale already
exponentiated (see :class:`baselines.logit_scale.LogitScale`).

Distributed training: pass embeddings gathered from every rank *with* gradient
(N global rows, see :func:`baselines.distributed.gather_with_grad`) and
``rows``, the slice of them this rank owns. The loss is then the mean over the
local rows only, each labelled by its global index, so the mean of the per-rank
losses, which DDP's gradient averaging optimises, is the loss of the global
batch. ``rows=None`` means every row.
"""

import functools
import itertools
import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

#: Negative sets of :func:`symile_loss`, named as in the official package.
SYMILE_NEGATIVES = ("n", "n_squared")

# Logits per block of the O(N^2) sweep. On CPU, 1 MiB float32 blocks keep the
# elementwise passes in cache; accelerators want big blocks to amortise launches.
_BLOCK_LOGITS = {"cpu": 1 << 18}
_BLOCK_LOGITS_ELSEWHERE = 1 << 26


def _local(rows: slice | None, n: int) -> slice:
    """``rows`` with explicit bounds, checked to be a contiguous part of range(n)."""
    if rows is None:
        return slice(0, n)
    start, stop, step = rows.indices(n)
    if step != 1 or start >= stop:
        raise ValueError(f"rows must be a non-empty contiguous slice of range({n}), got {rows}")
    return slice(start, stop)


def _check(embeddings: Sequence[Tensor], minimum: int) -> None:
    if len(embeddings) < minimum:
        raise ValueError(f"need at least {minimum} modalities, got {len(embeddings)}")
    shapes = {tuple(e.shape) for e in embeddings}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"embeddings must all have the same (N, d) shape, got {sorted(shapes)}")


def infonce(a: Tensor, b: Tensor, scale: Tensor | float, rows: slice | None = None) -> Tensor:
    """Symmetric InfoNCE of one pair: (CE(s·a·bᵀ) + CE(s·b·aᵀ)) / 2, positives on the diagonal."""
    _check((a, b), 2)
    rows = _local(rows, len(a))
    labels = torch.arange(rows.start, rows.stop, device=a.device)
    a_to_b = F.cross_entropy((scale * a[rows]) @ b.T, labels)
    b_to_a = F.cross_entropy((scale * b[rows]) @ a.T, labels)
    return (a_to_b + b_to_a) / 2


def clip_loss(embeddings: Sequence[Tensor], scale: Tensor | float, rows: slice | None = None) -> Tensor:
    """CLIP for M modalities: the sum of :func:`infonce` over every unordered pair."""
    _check(embeddings, 2)
    return sum(infonce(a, b, scale, rows) for a, b in itertools.combinations(embeddings, 2))


def mip(*tensors: Tensor) -> Tensor:
    """Multilinear inner product Σ_k Π_m t_m[..., k], broadcasting over leading dims."""
    return functools.reduce(torch.mul, tensors).sum(-1)


def symile_loss(
    embeddings: Sequence[Tensor],
    scale: Tensor | float,
    negatives: str = "n",
    rows: slice | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """Symile: the mean over anchor modalities of CE(s · MIP logits), positives on the diagonal.

    negatives: "n" draws N - 1 negatives per row by shuffling each non-anchor
        modality (official sampler). "n_squared" uses every one of the N^(M-1)
        tuples of non-anchor rows, streamed so memory stays O(N·d + chunk_size).
    generator: source of the "n" permutations; give every rank one seeded alike.
        None draws from torch's global RNG in the official package's order, so the
        same ``torch.manual_seed`` reproduces its value exactly.
    chunk_size: logits materialised at once by "n_squared" (default 2**18 on CPU,
        2**26 on accelerators); the result does not depend on it.
    """
    _check(embeddings, 2)
    if negatives not in SYMILE_NEGATIVES:
        raise ValueError(f"negatives must be one of {SYMILE_NEGATIVES}, got {negatives!r}")
    rows = _local(rows, len(embeddings[0]))
    # The MIP is linear in each argument: scaling one modality scales every logit.
    scaled = [scale * embeddings[0], *embeddings[1:]]
    positives = mip(*(e[rows] for e in scaled))
    if negatives == "n":
        logsumexp = _sampled_logsumexp(scaled, rows, positives, generator)
    else:
        default = _BLOCK_LOGITS.get(scaled[0].device.type, _BLOCK_LOGITS_ELSEWHERE)
        logsumexp = _exhaustive_logsumexp(scaled, rows, chunk_size or default)
    # Every anchor's positive logit is the same MIP, so the mean CE splits in two.
    return logsumexp.mean() - positives.mean()


def _sampled_logsumexp(
    embeddings: list[Tensor], rows: slice, positives: Tensor, generator: torch.Generator | None
) -> Tensor:
    """(M, n_local) logsumexp of each anchor's O(N) logits, as in the official code."""
    n = len(embeddings[0])
    device = torch.device("cpu") if generator is None else generator.device  # the official draws on CPU
    logsumexp = []
    for m, anchor in enumerate(embeddings):
        # One permutation per non-anchor, in the official package's order, so that
        # a seeded global RNG yields its very permutations.
        shuffled = [
            e[torch.randperm(n, generator=generator, device=device).to(e.device)]
            for k, e in enumerate(embeddings)
            if k != m
        ]
        logits = anchor[rows] @ functools.reduce(torch.mul, shuffled).T
        # Local row r is global row rows.start + r, whose positive replaces column rows.start + r.
        logits.diagonal(rows.start).copy_(positives)
        logsumexp.append(logits.logsumexp(1))
    return torch.stack(logsumexp)


def _exhaustive_logsumexp(embeddings: list[Tensor], rows: slice, chunk_size: int) -> Tensor:
    """(M, n_local) logsumexp of each anchor's logits against all N^(M-1) negative tuples.

    Anchor m's logits are T[i_0, ..., i_{M-1}] = MIP(e_0[i_0], ..., e_{M-1}[i_{M-1}])
    reduced over every index but i_m. When every row is local one sweep over T serves
    all anchors; otherwise anchor m only needs the slab of T where i_m is local.
    """
    n_modalities, n = len(embeddings), len(embeddings[0])
    if rows == slice(0, n):
        return torch.stack(_ProductLogSumExp.apply(tuple(range(n_modalities)), chunk_size, *embeddings))
    slabs = [
        _ProductLogSumExp.apply((m,), chunk_size, *(e[rows] if k == m else e for k, e in enumerate(embeddings)))[0]
        for m in range(n_modalities)
    ]
    return torch.stack(slabs)


class _Block(NamedTuple):
    """A block of T, seen as (first rows, middle tuples, last rows)."""

    rows: slice  # rows of the first modality
    tuples: slice  # flat indices into the grid of middle-modality row tuples
    index: tuple[Tensor, ...]  # those tuples' row in each middle modality
    middle: Tensor  # (c, d): Π_middle e_m[index_m], or 1 when there is no middle
    outer: Tensor  # (b, c, d): e_first[rows, None] * middle
    logits: Tensor  # (b, c, n_last)


def _blocks(embeddings: Sequence[Tensor], chunk_size: int) -> Iterator[_Block]:
    """Cover T block by block, each holding at most max(chunk_size, n_last) logits."""
    first, *middle, last = embeddings
    grid = tuple(len(e) for e in middle)
    n_tuples = math.prod(grid)
    per_tuple = max(1, min(n_tuples, chunk_size // (len(first) * len(last))))
    per_row = max(1, min(len(first), chunk_size // (per_tuple * len(last))))
    for start in range(0, n_tuples, per_tuple):
        tuples = slice(start, min(start + per_tuple, n_tuples))
        index = torch.unravel_index(torch.arange(tuples.start, tuples.stop, device=first.device), grid)
        product = functools.reduce(torch.mul, (e[i] for e, i in zip(middle, index)), first.new_ones(()))
        for row in range(0, len(first), per_row):
            rows = slice(row, row + per_row)
            outer = first[rows, None] * product
            logits = (outer.flatten(0, 1) @ last.T).view(*outer.shape[:2], len(last))
            yield _Block(rows, tuples, index, product, outer, logits)


def _block_dim(axis: int, n_modalities: int) -> int:
    """Which block dim indexes modality ``axis``: 0 first, 2 last, 1 the middle ones."""
    return 0 if axis == 0 else 2 if axis == n_modalities - 1 else 1


def _spread(values: Tensor, axis: int, n_modalities: int, block: _Block) -> Tensor:
    """Per-row ``values`` of modality ``axis``, broadcastable against ``block.logits``."""
    dim = _block_dim(axis, n_modalities)
    if dim == 0:
        return values[block.rows, None, None]
    if dim == 2:
        return values[None, None, :]
    return values[block.index[axis - 1]][None, :, None]


class _ProductLogSumExp(torch.autograd.Function):
    """logsumexp of T[i_0, ..., i_{M-1}] = MIP(e_0[i_0], ..., e_{M-1}[i_{M-1}]) over all
    indices but one, for each requested axis, without ever materialising T.

    Forward streams T in blocks, keeping a running logsumexp along each block dim.
    Backward recomputes each block, turns it into softmax weights (the gradient of
    logsumexp) and contracts them back onto the embeddings, so memory stays
    O(M·N·d + block) in both directions (plus N^(M-2) running values if M > 3).
    """

    @staticmethod
    def forward(ctx, axes: tuple[int, ...], chunk_size: int, *embeddings: Tensor) -> tuple[Tensor, ...]:
        n_modalities = len(embeddings)
        grid = tuple(len(e) for e in embeddings[1:-1])
        wanted = {_block_dim(m, n_modalities) for m in axes}
        sizes = (len(embeddings[0]), math.prod(grid), len(embeddings[-1]))
        running = {d: embeddings[0].new_full((sizes[d],), -math.inf) for d in wanted}
        # Backward runs outside autocast: compute the same logits here so that its
        # softmax weights match these logsumexps.
        with torch.autocast(embeddings[0].device.type, enabled=False):
            for block in _blocks(embeddings, chunk_size):
                where = (block.rows, block.tuples, slice(None))
                for d, acc in running.items():
                    others = tuple(k for k in range(3) if k != d)
                    acc[where[d]] = torch.logaddexp(acc[where[d]], block.logits.logsumexp(others))

        def along(m: int) -> Tensor:
            dim = _block_dim(m, n_modalities)
            if dim != 1:
                return running[dim]
            # Per-tuple values, reduced over the other middle modalities.
            per_tuple = running[1].view(grid).movedim(m - 1, 0)
            return per_tuple.reshape(grid[m - 1], -1).logsumexp(1)

        logsumexp = tuple(along(m) for m in axes)
        ctx.axes, ctx.chunk_size = axes, chunk_size
        ctx.save_for_backward(*embeddings, *logsumexp)
        return logsumexp

    @staticmethod
    @once_differentiable
    def backward(ctx, *grad_logsumexp: Tensor | None) -> tuple[Tensor | None, ...]:
        n_modalities = len(ctx.saved_tensors) - len(ctx.axes)
        embeddings, logsumexp = ctx.saved_tensors[:n_modalities], ctx.saved_tensors[n_modalities:]
        first, *middle, last = embeddings
        grads = [torch.zeros_like(e) for e in embeddings]
        terms = [(m, g, s) for m, g, s in zip(ctx.axes, grad_logsumexp, logsumexp) if g is not None]
        for block in _blocks(embeddings, ctx.chunk_size):
            # d logsumexp_m / dT is the softmax of T along every index but i_m.
            weights = torch.zeros_like(block.logits)
            for m, grad, lse in terms:
                term = (block.logits - _spread(lse, m, n_modalities, block)).exp_()
                weights.add_(term.mul_(_spread(grad, m, n_modalities, block)))
            flat = weights.flatten(0, 1)
            grads[-1].addmm_(flat.T, block.outer.flatten(0, 1))
            d_outer = (flat @ last).view_as(block.outer)
            grads[0][block.rows] += (d_outer * block.middle).sum(1)
            if middle:
                d_middle = (d_outer * first[block.rows, None]).sum(0)
                for k, i in enumerate(block.index):
                    partners = (e[j] for h, (e, j) in enumerate(zip(middle, block.index)) if h != k)
                    grads[1 + k].index_add_(0, i, functools.reduce(torch.mul, partners, d_middle))
        return (None, None, *grads)
