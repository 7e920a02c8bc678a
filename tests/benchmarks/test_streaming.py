"""Streamed splits (benchmarks.streaming): every row once per epoch, a deterministic order, batches that do
not depend on ranks or loader workers, and a training run killed mid-epoch that resumes to the same weights."""

import functools
import json
import weakref

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from polymodal.baselines import MODELS
from polymodal.benchmarks import streaming, training
from polymodal.benchmarks.streaming import Order, Piece, Source, embed_source, epoch_batches, mean_embeddings, ordered_batches
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.benchmarks.training import Logging, fit
from tests.helpers import killed_on_call

INPUTS = {"a": 4, "b": 4, "c": 4}


def _rows(n, piece_rows=7):
    """A split whose column `a` holds each row's number, so a batch says which rows it took."""
    ids = np.arange(n, dtype=np.float32)
    return Source.of({"a": np.repeat(ids[:, None], 4, 1), "b": -np.repeat(ids[:, None], 2, 1)}, piece_rows=piece_rows)


def _ids(batches):
    return [b["a"][:, 0].long().tolist() for b in batches]


@pytest.mark.parametrize("buffer", [0, 5, 30, 1000])
def test_one_stream_takes_every_row_once_per_epoch_in_an_order_of_the_seed_and_epoch(buffer):
    source = _rows(100)
    order = Order(batch_size=16, streams=1, buffer=buffer, seed=3)
    epochs = {e: _ids(epoch_batches(source, order, e)) for e in (0, 1)}
    for ids in epochs.values():
        assert sorted(sum(ids, [])) == list(range(100))
        assert [len(b) for b in ids] == [16] * 6 + [4]  # the last batch partial, as `steps` counts
        assert order.steps(source, 0) == 7
    assert epochs[0] != epochs[1] and _ids(epoch_batches(source, order, 0)) == epochs[0]
    assert _ids(epoch_batches(source, Order(16, 1, buffer, seed=4), 0)) != epochs[0]
    # the columns of a row stay together
    for batch in epoch_batches(source, order, 0):
        assert torch.equal(batch["b"][:, 0], -batch["a"][:, 0])


def test_a_buffer_mixes_rows_of_many_shards_into_a_batch():
    source = _rows(700, piece_rows=50)
    shards = lambda buffer: [len({i // 50 for i in b}) for b in _ids(epoch_batches(source, Order(20, 1, buffer, 0), 0))]
    assert max(shards(0)) <= 2  # without a buffer a batch comes from one shard (or two, where it straddles)
    assert np.mean(shards(300)) > 5


def test_compacting_keeps_every_slots_row_and_only_shards_with_a_quarter_of_their_rows_left():
    rng = np.random.default_rng(0)
    held = {p: {"a": rng.standard_normal((40, 3)).astype(np.float32)} for p in range(6)}
    # shard 0: 30 rows named, 1: 10 (a quarter, kept), 2: 9 (compacted), 3: 1 (compacted), 4 and 5: none (let go)
    named = [(p, r) for p, count in ((0, 30), (1, 10), (2, 9), (3, 1)) for r in rng.choice(40, count, replace=False)]
    slots = np.array(named)[rng.permutation(len(named))]
    rows = lambda slots: [streaming._take(held, slot[None])["a"][0] for slot in slots]  # each slot's row, alone
    before = rows(slots)
    leaving, buffered = streaming._compact(held, (slots[:20], slots[20:]), key=99)
    assert sorted(held) == [0, 1, 99] and len(held[99]["a"]) == 10
    assert (len(leaving), len(buffered)) == (20, 30)
    np.testing.assert_array_equal(rows(np.concatenate([leaving, buffered])), before)  # every slot names its row


def test_what_a_stream_holds_is_bounded_by_its_buffer_however_many_shards_it_reads():
    alive = []  # weak references to each loaded shard's column, with its rows

    def load(i, rows=30):
        arrays = {"a": np.full((rows, 2), i, np.float32)}
        alive.append((weakref.ref(arrays["a"]), rows))
        return arrays

    source = Source(tuple(Piece(str(i), 30, functools.partial(load, i)) for i in range(200)), ("a",))
    order = Order(batch_size=10, streams=1, buffer=40, seed=0)
    held = [sum(rows for ref, rows in alive if ref() is not None) for _ in epoch_batches(source, order, 0)]
    assert max(held) <= 4 * (2 * order.buffer + 30)  # however many shards the stream reads


def test_streams_deal_every_shard_once_and_give_every_rank_as_many_batches():
    source = _rows(203, piece_rows=10)  # 21 shards, one of 3 rows
    order = Order(batch_size=12, streams=4, buffer=8, seed=0)
    dealt = order.deal(source, 5)
    assert sorted(sum(dealt, [])) == list(range(21))
    ranks = [_ids(epoch_batches(source, order, 5, rank=r, world=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == order.steps(source, 5) > 0
    rows_per_stream = [sum(source.pieces[i].rows for i in s) for s in dealt]
    assert order.steps(source, 5) == min(rows_per_stream) // 3
    seen = sum((sum(r, []) for r in ranks), [])
    assert len(seen) == len(set(seen))  # no row twice; the rows a stream cannot fill a batch with wait a later epoch


def test_two_ranks_take_the_parts_of_the_batches_one_process_takes_at_as_many_streams():
    source = _rows(160, piece_rows=9)
    order = Order(batch_size=16, streams=2, buffer=12, seed=1)
    one = _ids(epoch_batches(source, order, 2))
    two = [_ids(epoch_batches(source, order, 2, rank=r, world=2)) for r in range(2)]
    assert one == [a + b for a, b in zip(*two)]
    with pytest.raises(SystemExit, match="--streams 2 does not divide over 4 ranks"):
        next(epoch_batches(source, order, 0, rank=0, world=4))


def test_loader_workers_change_nothing_and_a_skip_starts_mid_epoch():
    source = _rows(150, piece_rows=11)
    order = Order(batch_size=10, streams=2, buffer=20, seed=0)
    alone = _ids(epoch_batches(source, order, 1))
    assert _ids(epoch_batches(source, order, 1, workers=2)) == alone
    assert _ids(epoch_batches(source, order, 1, skip=4)) == alone[4:]


def test_a_shard_holding_other_than_its_manifest_count_is_refused():
    source = _rows(20, piece_rows=10)
    piece = source.pieces[1]
    liar = Source((source.pieces[0], type(piece)("shard-1", 11, piece.load)), source.fields)
    with pytest.raises(SystemExit, match="shard-1: holds \\[10\\] rows, the manifest says 11"):
        list(epoch_batches(liar, Order(5, 1, 0, 0), 0))


@pytest.mark.parametrize("batch", [1, 7, 10, 64])
def test_ordered_batches_are_the_split_in_manifest_order(batch):
    source = _rows(53, piece_rows=10)
    got = list(ordered_batches(source, batch))
    assert [j for j, _ in got] == list(range(-(-53 // batch)))
    assert sum(_ids(b for _, b in got), []) == list(range(53))
    odd = list(ordered_batches(source, batch, keep=lambda j: j % 2 == 1))
    assert [j for j, _ in odd] == [j for j, _ in got if j % 2]
    assert all(torch.equal(b["a"], dict(got)[j]["a"]) for j, b in odd)


def test_embeddings_and_means_streamed_equal_those_of_the_whole_split():
    torch.manual_seed(0)
    model = MODELS["clip"](INPUTS, d_model=8).eval()
    data = {m: torch.randn(45, 4) for m in INPUTS}
    source = Source.of(data, piece_rows=8)
    whole = {m: model.encode(m, x) for m, x in data.items()}
    streamed, means = embed_source(model, source, 10), mean_embeddings(model, source, 10)
    for m in INPUTS:
        assert torch.allclose(streamed[m], whole[m], atol=1e-6)
        assert torch.allclose(means[m], whole[m].double().mean(0).float(), atol=1e-6)


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randint(0, 2, (n, d), generator=g).float() for m, d in INPUTS.items()}


CONFIG = TrainConfig(epochs=3, batch_size=16, lr=0.01, threads=1, shuffle_buffer=24)


def _fit(run_dir, resume=False, **logging):
    torch.manual_seed(0)
    model = MODELS["symile"](INPUTS, d_model=8)
    fit(model, Source.of(_data(200, 0), piece_rows=30), _data(40, 1), CONFIG, run_dir, resume=resume,
        progress=False, logging=Logging(every=1, **logging))
    return load_file(run_dir / training.BEST)


def test_a_run_killed_mid_epoch_resumes_from_the_batch_it_reached(tmp_path, monkeypatch):
    whole = _fit(tmp_path / "whole", checkpoint_every=0)
    real = training.batch_loss
    monkeypatch.setattr(training, "batch_loss", killed_on_call(20, real))  # epoch 1 has 13 batches: 20 is within it
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "cut", checkpoint_every=4)
    monkeypatch.setattr(training, "batch_loss", real)
    state = torch.load(tmp_path / "cut" / training.STATE, weights_only=True)["progress"]
    assert state["epoch"] == 0 and state["within"]["batches"] == 16 - 13  # the checkpoint at step 16, mid-epoch
    resumed = {"n": 0}

    def counts(*args, **kwargs):
        resumed["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "batch_loss", counts)
    again = _fit(tmp_path / "cut", resume=True, checkpoint_every=4)
    assert resumed["n"] == 3 * 13 - 16  # only the steps after the checkpoint ran again
    assert all(torch.equal(whole[k], again[k]) for k in whole)
    logs = [(tmp_path / run / training.LOG).read_text().splitlines() for run in ("whole", "cut")]
    strip = lambda lines: [{k: v for k, v in json.loads(r).items() if not k.startswith("samples_per_s")}
                           for r in lines]
    assert strip(logs[0]) == strip(logs[1])


def test_resuming_over_another_number_of_streams_is_refused(tmp_path):
    _fit(tmp_path)
    torch.manual_seed(0)
    model = MODELS["symile"](INPUTS, d_model=8)
    config = TrainConfig(**{**CONFIG.__dict__, "epochs": 4, "streams": 2})
    with pytest.raises(SystemExit, match="resume it with --streams 1"):
        fit(model, Source.of(_data(200, 0), piece_rows=30), _data(40, 1), config, tmp_path, resume=True, progress=False)
