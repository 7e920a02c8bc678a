"""Splits as streams of shard-sized pieces: training, validation and scoring without whole-split tensors.

A split is a `Source`: its pieces in manifest order (one per shard: a raw shard's arrays, or the shard's file
in the feature cache), each with its row count, loaded one at a time. What a stream holds is bounded by its
shuffle buffer and a piece (at most four times twice the buffer and a piece, see `_compact`), never by the
split.

A training epoch's batches follow from (seed, epoch) alone:

1. the pieces are permuted by numpy's ``default_rng([seed, epoch])`` and dealt to `streams` streams, stream
   s taking every streams-th one from the s-th;
2. each stream shuffles its rows through a buffer (``default_rng([seed, epoch, s])``): once it holds twice
   `buffer` rows it is permuted and all but `buffer` of them leave, in cuts of batch_size / streams rows,
   a cut's rows grouped by the piece they come from (the loss does not depend on the rows' order in a batch,
   and a piece's rows are then copied in one go);
3. global batch k is the k-th cut of every stream, in stream order. Every stream gives as many cuts as the
   smallest one can fill, so every rank takes the same number of steps; one stream keeps its last, partial cut.

Under DDP rank r runs streams r·k to r·k + k - 1 (k = streams / world), which are its part of every global
batch: a run's batches depend on `streams`, not on how many ranks share them, so two ranks at two streams
train exactly as one process at two. A rank's DataLoader workers load its pieces, every workers-th one each,
and the batches do not depend on how many there are. Validation and scoring read in manifest order.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

Arrays = dict[str, np.ndarray]
#: A task's per-epoch redraw of a training piece: (arrays, epoch, seed, piece index) -> the columns it replaces.
PieceView = Callable[[Arrays, int, int, int], Arrays]


@dataclass(frozen=True)
class Piece:
    """One shard's rows of a split: how many, and how to load them (a piece must hold `rows` rows)."""

    name: str
    rows: int
    load: Callable[[], Arrays]


@dataclass(frozen=True)
class Source:
    """A split as pieces in manifest order; `fields` are the columns a batch holds (the model's inputs)."""

    pieces: tuple[Piece, ...]
    fields: tuple[str, ...]

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.pieces)

    @classmethod
    def of(cls, data: Source | dict, piece_rows: int = 1024) -> Source:
        """`data` itself if it is a source; else in-memory columns (arrays or tensors) cut into pieces."""
        if isinstance(data, Source):
            return data
        arrays = {k: v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for k, v in data.items()}
        n = len(next(iter(arrays.values())))
        starts = range(0, n, piece_rows)
        return cls(tuple(Piece(f"rows {a}-{min(n, a + piece_rows) - 1}", min(n, a + piece_rows) - a,
                               lambda a=a: {k: v[a:a + piece_rows] for k, v in arrays.items()}) for a in starts),
                   tuple(arrays))

    def load(self, index: int) -> Arrays:
        piece = self.pieces[index]
        arrays = piece.load()
        got = {len(v) for v in arrays.values()}
        if got != {piece.rows}:
            raise SystemExit(f"{piece.name}: holds {sorted(got)} rows, the manifest says {piece.rows}")
        return arrays

    def mapped(self, transform: Callable[[Arrays], Arrays], fields: tuple[str, ...]) -> Source:
        """The same pieces, each turned by `transform` as it loads; batches hold `fields`."""
        return Source(tuple(Piece(p.name, p.rows, functools.partial(_then, p.load, transform)) for p in self.pieces),
                      tuple(fields))

    def where(self, keep: np.ndarray) -> Source:
        """The rows where `keep` (one flag per row, in manifest order), piece by piece."""
        ends = np.cumsum([0] + [p.rows for p in self.pieces])
        return Source(tuple(Piece(p.name, int(keep[a:b].sum()), functools.partial(_kept, p.load, keep[a:b]))
                            for p, a, b in zip(self.pieces, ends[:-1], ends[1:])), self.fields)

    def column(self, name: str) -> np.ndarray:
        """One column of every row, in manifest order (class labels, keys): loaded a piece at a time."""
        return np.concatenate([self.load(i)[name] for i in range(len(self.pieces))])

    def read_all(self) -> dict[str, torch.Tensor]:
        """Every row in memory, in manifest order: for small splits and tests, never for training."""
        parts = [self.load(i) for i in range(len(self.pieces))]
        return {f: torch.from_numpy(np.concatenate([p[f] for p in parts])) for f in self.fields}


@dataclass(frozen=True)
class Order:
    """How a training epoch draws its batches (see the module's docstring)."""

    batch_size: int
    streams: int
    buffer: int
    seed: int

    def __post_init__(self):
        if self.batch_size % self.streams:
            raise SystemExit(f"--batch-size {self.batch_size} does not divide over --streams {self.streams}")

    def deal(self, source: Source, epoch: int) -> list[list[int]]:
        """Each stream's pieces for the epoch, in the order it reads them."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(source.pieces)).tolist()
        return [order[s::self.streams] for s in range(self.streams)]

    def steps(self, source: Source, epoch: int) -> int:
        """Global batches in the epoch: the cuts the smallest stream fills; with one stream, its partial last."""
        cut = self.batch_size // self.streams
        rows = [sum(source.pieces[i].rows for i in stream) for stream in self.deal(source, epoch)]
        return math.ceil(rows[0] / cut) if self.streams == 1 else min(rows) // cut


def _then(load: Callable[[], Arrays], transform: Callable[[Arrays], Arrays]) -> Arrays:
    return transform(load())


def _kept(load: Callable[[], Arrays], keep: np.ndarray) -> Arrays:
    return {k: v[keep] for k, v in load().items()}


def as_tensors(arrays: Arrays, fields: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {f: torch.from_numpy(np.ascontiguousarray(arrays[f])) for f in fields}


def _concat(parts: list[Arrays]) -> Arrays:
    parts = [p for p in parts if _length(p)] or parts[:1]  # an empty shard's arrays may lack the row shape
    return parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _length(arrays: Arrays) -> int:
    return len(next(iter(arrays.values())))


class _Loads(torch.utils.data.IterableDataset):
    """(stream, piece arrays) in the order given; worker w of n loads the j-th where j % n == w, and the
    DataLoader's round robin over its workers gives them back in the order given."""

    def __init__(self, source: Source, loads: list[tuple[int, int]], view: PieceView | None, epoch: int, seed: int):
        self.source, self.loads, self.view, self.epoch, self.seed = source, loads, view, epoch, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for j, (stream, index) in enumerate(self.loads):
            if j % workers == worker:
                arrays = self.source.load(index)
                if self.view is not None:
                    arrays = {**arrays, **self.view(arrays, self.epoch, self.seed, index)}
                yield stream, {f: arrays[f] for f in self.source.fields}


def _as_is(item):
    return item  # the loader must not turn the numpy arrays into tensors


def _cuts(pieces: Iterator[Arrays], size: int, buffer: int, rng: np.random.Generator) -> Iterator[Arrays]:
    """A stream's rows through its shuffle buffer, in cuts of `size` rows, the last one partial.

    The buffer, and the rows that have left it and wait for a cut, are slots (piece, row) into the pieces
    read: a row is copied once, from its piece into its cut, instead of into a joined buffer first."""
    held: dict[int, Arrays] = {}
    ids = itertools.count()
    buffered = leaving = np.empty((0, 2), np.int64)
    for arrays in pieces:
        if rows := _length(arrays):
            held[key := next(ids)] = arrays
            buffered = np.concatenate([buffered, np.stack([np.full(rows, key), np.arange(rows)], 1)])
        if len(buffered) >= 2 * buffer and len(buffered):
            perm = rng.permutation(len(buffered))
            leaving = np.concatenate([leaving, buffered[perm[: len(buffered) - buffer]]])
            buffered = buffered[perm[len(buffered) - buffer:]]
            leaving, buffered = _compact(held, (leaving, buffered), next(ids))
            while len(leaving) >= size:
                yield _take(held, leaving[:size])
                leaving = leaving[size:]
    leaving = np.concatenate([leaving, buffered[rng.permutation(len(buffered))]])
    for a in range(0, len(leaving), size):
        yield _take(held, leaving[a:a + size])


def _compact(held: dict[int, Arrays], slots: tuple[np.ndarray, ...], key: int) -> tuple[np.ndarray, ...]:
    """`slots` once the pieces they no longer name are let go, and the rows of those with under a quarter of
    their rows left are gathered into one new piece `key`: what a stream holds stays within four times its
    live rows, and a row is copied again a third of a time, on average, at most."""
    every = np.concatenate(slots)
    named, live = np.unique(every[:, 0], return_counts=True)
    for gone in held.keys() - set(named.tolist()):
        del held[gone]
    sparse = named[live * 4 < np.array([_length(held[p]) for p in named.tolist()])]
    if len(sparse):
        moved = np.flatnonzero(np.isin(every[:, 0], sparse))
        moved = moved[np.argsort(every[moved, 0], kind="stable")]  # in the order _take gathers them
        held[key] = _take(held, every[moved])
        for p in sparse.tolist():
            del held[p]
        every[moved] = np.stack([np.full(len(moved), key), np.arange(len(moved))], 1)
    return tuple(np.split(every, np.cumsum([len(s) for s in slots[:-1]])))


def _take(held: dict[int, Arrays], slots: np.ndarray) -> Arrays:
    """The rows at `slots` (piece, row), grouped by piece in the order the pieces were read: the rows of a piece
    are one gather by torch (which uses every thread, as indexing a tensor in memory does), written in place."""
    slots = slots[np.argsort(slots[:, 0], kind="stable")]
    pieces, starts = np.unique(slots[:, 0], return_index=True)
    first = held[int(pieces[0])]
    out = {k: torch.empty((len(slots), *v.shape[1:]), dtype=torch.from_numpy(v[:0]).dtype) for k, v in first.items()}
    for p, a, b in zip(pieces.tolist(), starts.tolist(), [*starts[1:].tolist(), len(slots)]):
        rows = torch.from_numpy(slots[a:b, 1])
        for k, v in held[p].items():
            torch.index_select(torch.from_numpy(v), 0, rows, out=out[k][a:b])
    return {k: v.numpy() for k, v in out.items()}


def epoch_batches(source: Source, order: Order, epoch: int, rank: int = 0, world: int = 1, workers: int = 0,
                  view: PieceView | None = None, skip: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """This rank's part of each of the epoch's global batches, from the `skip`-th on (a resumed epoch)."""
    if order.streams % world:
        raise SystemExit(f"--streams {order.streams} does not divide over {world} ranks; pass a multiple of {world}")
    dealt = order.deal(source, epoch)
    per_rank = order.streams // world
    mine = list(range(rank * per_rank, (rank + 1) * per_rank))
    # Round robin over this rank's streams, so that each stream's next piece arrives about when it is needed.
    loads = [(s, dealt[s][j]) for j in range(max(len(dealt[s]) for s in mine)) for s in mine if j < len(dealt[s])]
    loader = iter(torch.utils.data.DataLoader(_Loads(source, loads, view, epoch, order.seed), batch_size=None,
                                              num_workers=min(workers, len(loads)), collate_fn=_as_is))
    waiting: dict[int, deque] = {s: deque() for s in mine}

    def pieces_of(stream: int) -> Iterator[Arrays]:
        for _ in dealt[stream]:
            while not waiting[stream]:
                got, arrays = next(loader)
                waiting[got].append(arrays)
            yield waiting[stream].popleft()

    cut = order.batch_size // order.streams
    cuts = [_cuts(pieces_of(s), cut, order.buffer, np.random.default_rng([order.seed, epoch, s])) for s in mine]
    for step in range(order.steps(source, epoch)):
        parts = [next(c) for c in cuts]
        if step >= skip:
            yield as_tensors(_concat(parts), source.fields)


def ordered_batches(source: Source, batch_size: int, keep: Callable[[int], bool] = lambda j: True
                    ) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """(j, the j-th batch of `batch_size` rows in manifest order) for each j that `keep`s, the last one
    partial; only the pieces those batches hold are loaded."""
    ends = np.cumsum([p.rows for p in source.pieces]).tolist()
    loaded: dict[int, Arrays] = {}
    for j in range(math.ceil(source.rows / batch_size)):
        if not keep(j):
            continue
        lo, hi = j * batch_size, min(source.rows, (j + 1) * batch_size)
        first, last = bisect.bisect_right(ends, lo), bisect.bisect_left(ends, hi)
        loaded = {i: loaded[i] if i in loaded else source.load(i) for i in range(first, last + 1)}
        parts = []
        for i in range(first, last + 1):
            start = ends[i] - source.pieces[i].rows
            parts.append({k: v[max(lo, start) - start:min(hi, ends[i]) - start] for k, v in loaded[i].items()})
        yield j, as_tensors(_concat(parts), source.fields)


@torch.no_grad()
def embed_source(model, source: Source, batch: int) -> dict[str, torch.Tensor]:
    """Every modality of a split encoded a batch at a time: only the embeddings are held, never the inputs."""
    encoded = [{m: model.encode(m, x) for m, x in rows.items()} for _, rows in ordered_batches(source, batch)]
    return {m: torch.cat([e[m] for e in encoded]) for m in source.fields}


@torch.no_grad()
def mean_embeddings(model, source: Source, batch: int) -> dict[str, torch.Tensor]:
    """Each modality's mean embedding over a split, summed a batch at a time in float64."""
    sums: dict[str, torch.Tensor] = {}
    for _, rows in ordered_batches(source, batch):
        for m, x in rows.items():
            e = model.encode(m, x).double().sum(0)
            sums[m] = sums[m] + e if m in sums else e
    return {m: (s / source.rows).float() for m, s in sums.items()}
