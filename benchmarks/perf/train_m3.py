"""Symile-M3 training throughput on cached features, against the loader alone.

The floor is the training loop's own loader (benchmarks.streaming.epoch_batches) over
the same streamed features, without the model; the ratio (train samples/s over
loader samples/s) says how much of the loop the model leaves to data handling. Features are cached first if needed.

    python benchmarks/perf/train_m3.py [--data DATA] [--model symile] [--steps 30]

Without --data it builds a small digits M3-5 set (2,000 train rows) in a temporary folder.
On CPU the from-scratch encoders dominate a step, so the ratio is far below the
0.8 goal, which is a GPU target: quote it with the device it ran on.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from polymodal.baselines.models import resolve_model
from polymodal.benchmarks.data import load_manifest
from polymodal.benchmarks.tasks import load_task
from polymodal.benchmarks.streaming import Order, Source, epoch_batches
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.benchmarks.training import Placement, _autocast, batch_loss


def steps_of(data: Source, batch_size: int, steps: int, place: Placement):
    """`steps` batches from the training loop's own loader, over as many shuffled epochs as that takes, on the
    device."""
    order = Order(batch_size, 1, TrainConfig.shuffle_buffer, seed=0)
    epochs = (epoch_batches(data, order, epoch) for epoch in itertools.count())
    for batch in itertools.islice(itertools.chain.from_iterable(epochs), steps):
        yield {m: x.to(place.device, non_blocking=True) for m, x in batch.items()}


def rows(batch: dict[str, torch.Tensor]) -> int:
    return len(next(iter(batch.values())))  # an epoch's last batch may be short


def loader_rate(data, batch_size: int, steps: int, place: Placement) -> float:
    began, seen = time.perf_counter(), 0
    for batch in steps_of(data, batch_size, steps, place):
        seen += rows(batch)
    if place.device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - began)


def train_rate(model, data, batch_size: int, steps: int, place: Placement, amp: bool) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator, autocast = torch.Generator().manual_seed(0), _autocast(place, amp)
    began, seen = time.perf_counter(), 0
    for batch in steps_of(data, batch_size, steps, place):
        loss = batch_loss(model, batch, generator, autocast)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += rows(batch)
    if place.device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - began)


def small_dataset() -> str:
    import tempfile

    from polymodal.builders.core.runner import build
    from polymodal.builders.symile_m3.builder import M3Config, SymileM3Builder

    out = tempfile.mkdtemp(prefix="polymodal-perf-m3-")
    build(SymileM3Builder(M3Config(train=2000, val=200, test=200)), out, progress=False)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a symile-m3 dataset folder (default: build a small one)")
    parser.add_argument("--model", default="symile", help="model name (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="timed steps of each loop (default %(default)s)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data is None:
        args.data = small_dataset()
    task = load_task("symile-m3")
    manifest = load_manifest(args.data)
    place = Placement.detect()
    data = task.source(args.data, "train")
    model = resolve_model(args.model)(task.inputs(manifest), **task.model_config(args.model)).to(place.device)
    train_rate(model, data, args.batch_size, 3, place, args.amp)  # warm-up: allocator, kernels
    trained = train_rate(model, data, args.batch_size, args.steps, place, args.amp)
    floor = loader_rate(data, args.batch_size, args.steps, place)
    name = torch.cuda.get_device_name(place.device) if place.device.type == "cuda" else "cpu"
    print(f"device {name}, batch {args.batch_size}, {args.steps} steps")
    print(f"loader alone: {floor:,.0f} samples/s")
    print(f"training:     {trained:,.0f} samples/s")
    print(f"ratio train/loader: {trained / floor:.3f}")
    # Equal to the loader's share of a training step: what the model leaves of the loop is 1 - ratio.
    print(f"time outside the loader: {1 - trained / floor:.1%} of a training step")


if __name__ == "__main__":
    main()
