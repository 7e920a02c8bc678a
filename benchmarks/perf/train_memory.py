"""Peak memory of a training run at N and at 10N samples, and the streaming loader against in-memory indexing.

Synthetic feature shards of the Symile-M3 paper encoders' widths (CLIP ViT-L/14 1024, Whisper-large-v3 1280,
XLM-R-large 1024, each + the missing flag: 13.3 kB a row in float32) are written as the feature cache writes
them, one safetensors file per shard. A fresh process then trains one epoch of Symile on the first N rows,
another on all 10N, each through benchmarks.training.fit streaming the files, and reports its peak RSS
(ru_maxrss). Goal: peak(10N) / peak(N) <= 1.2, since a stream holds its shuffle buffer and a shard, never the
split.

The loader ratio is the samples/s of the training loader (benchmarks.streaming.epoch_batches: shards read from
disk, the buffer shuffle, the cut into batches) against indexing the same N rows held in memory by a random
permutation, as the trainer did before it streamed: the median of `--rounds` epochs of each, alternated.
Goal >= 0.8 on CPU.

    python benchmarks/perf/train_memory.py [--rows 4000] [--shard-rows 500] [--shuffle-buffer 1000]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from polymodal.baselines.models import MODELS
from polymodal.benchmarks.streaming import Order, Piece, Source, epoch_batches
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.benchmarks.training import fit

INPUTS = {"image": 1024 + 1, "audio": 1280 + 1, "text": 1024 + 1}
BATCH = 256


def write_shards(folder: Path, shards: int, rows: int) -> None:
    """`shards` files of `rows` random rows each, one at a time so that writing them holds one."""
    for i in range(shards):
        rng = np.random.default_rng([0, i])
        save_file({m: rng.standard_normal((rows, width), dtype=np.float32) for m, width in INPUTS.items()},
                  str(folder / f"shard-{i:05d}.safetensors"))


def source(folder: Path, shards: int, rows: int) -> Source:
    files = sorted(folder.glob("*.safetensors"))[:shards]
    return Source(tuple(Piece(f.name, rows, lambda f=f: load_file(str(f))) for f in files), tuple(INPUTS))


def train_child(folder: Path, shards: int, rows: int, buffer: int) -> dict:
    """One epoch of Symile over `shards` files; this process's peak RSS."""
    torch.manual_seed(0)
    model = MODELS["symile"](dict(INPUTS), d_model=32)
    train = source(folder, shards, rows)
    config = TrainConfig(epochs=1, batch_size=BATCH, lr=1e-3, seed=0, shuffle_buffer=buffer)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as run:
        fit(model, train, source(folder, 1, rows), config, Path(run), progress=False)
    return {"rows": train.rows, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds": time.perf_counter() - began}


def loader_rates(folder: Path, shards: int, rows: int, buffer: int, rounds: int) -> tuple[float, float]:
    """(streaming, in-memory) samples/s over the same rows: the median of `rounds` epochs of each, alternated."""
    data = source(folder, shards, rows)
    held = data.read_all()

    def streamed(epoch: int) -> int:
        return sum(len(b["image"]) for b in epoch_batches(data, Order(BATCH, 1, buffer, seed=0), epoch))

    def indexed(epoch: int) -> int:
        order = torch.randperm(data.rows, generator=torch.Generator().manual_seed(epoch))
        return sum(len({m: x[order[a:a + BATCH]] for m, x in held.items()}["image"]) for a in range(0, data.rows, BATCH))

    rates: dict = {streamed: [], indexed: []}
    for epoch in range(rounds):
        for loop, measured in rates.items():
            began = time.perf_counter()
            measured.append(loop(epoch) / (time.perf_counter() - began))
    return statistics.median(rates[streamed]), statistics.median(rates[indexed])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4000, help="N, the smaller run's training rows (default %(default)s)")
    parser.add_argument("--shard-rows", type=int, default=500, help="rows per shard file (default %(default)s)")
    parser.add_argument("--shuffle-buffer", type=int, default=1000, help="the stream's buffer (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="epochs of each loader timed (default %(default)s)")
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "SHARDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(train_child(Path(args.child[0]), int(args.child[1]), args.shard_rows, args.shuffle_buffer)))
        return
    if args.rows % args.shard_rows:
        parser.error(f"--rows {args.rows} must be a multiple of --shard-rows {args.shard_rows}")
    shards = args.rows // args.shard_rows
    with tempfile.TemporaryDirectory(prefix="polymodal-perf-memory-") as folder:
        write_shards(Path(folder), 10 * shards, args.shard_rows)
        runs = []
        for count in (shards, 10 * shards):  # each in a fresh process: ru_maxrss is a process's peak
            out = subprocess.run([sys.executable, __file__, "--child", folder, str(count), "--shard-rows",
                                  str(args.shard_rows), "--shuffle-buffer", str(args.shuffle_buffer)],
                                 check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(out.splitlines()[-1]))
        streaming, in_memory = loader_rates(Path(folder), shards, args.shard_rows, args.shuffle_buffer, args.rounds)
    split_mb = lambda rows: rows * sum(INPUTS.values()) * 4 / 2**20
    for run in runs:
        print(f"{run['rows']:>7,} rows ({split_mb(run['rows']):,.0f} MB of features): peak RSS "
              f"{run['peak_rss_mb']:,.0f} MB, one epoch in {run['seconds']:.1f} s")
    print(f"peak RSS ratio 10N/N: {runs[1]['peak_rss_mb'] / runs[0]['peak_rss_mb']:.3f} (goal <= 1.2)")
    print(f"loader: streaming {streaming:,.0f} samples/s, in-memory indexing {in_memory:,.0f} samples/s, "
          f"ratio {streaming / in_memory:.3f} (goal >= 0.8)")


if __name__ == "__main__":
    main()
