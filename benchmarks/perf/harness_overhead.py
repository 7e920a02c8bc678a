"""A training step of the harness against a bare PyTorch loop doing the same forward, backward and AdamW step.

The harness step is the one benchmarks.training._fit_stage takes: batch_loss
(encoders under the autocast switch, embeddings gathered for DDP, the model's
loss), zero_grad, backward, AdamW over param_groups, the learning-rate
scheduler's step and the epoch's running loss. The anchor, measured in the same
run, is a bare loop on the same batch and an identical copy of the same model:
encode each modality, the model's loss, zero_grad, backward, AdamW.step.

Goal: time harness/bare <= 1.1.

Method. Both loops take `--warmup` unmeasured steps, then alternate blocks of
`--steps` measured steps for `--rounds` rounds; each loop's median block counts.
The model is Symile (O(N) negatives) over flat features of the Symile-M3 paper
encoders' widths (CLIP ViT-L/14 1024, Whisper-large-v3 1280, XLM-R-large 1024,
plus the missing flag), with the reference encoders onto `--d-model` dims.

    python benchmarks/perf/harness_overhead.py [--batch-size 256] [--d-model 256] [--steps 50]

The default run takes well under a minute on two cores.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from polymodal.baselines.models import MODELS
from polymodal.benchmarks.lr_schedules import lr_scheduler
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.benchmarks.training import Placement, _autocast, batch_loss, param_groups

INPUTS = {"image": 1024 + 1, "audio": 1280 + 1, "text": 1024 + 1}  # the paper encoders' widths, + missing flag


class Harness:
    """_fit_stage's step, its pieces imported from benchmarks.training."""

    def __init__(self, model, config: TrainConfig, total_steps: int):
        self.model, self.place = model, Placement.detect()
        self.optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay, config.lr))
        self.scheduler = lr_scheduler(self.optimizer, config.lr_schedule, config.warmup, total_steps)
        self.generator, self.autocast = torch.Generator().manual_seed(0), _autocast(self.place, config.amp)
        self.total = torch.zeros((), dtype=torch.float64)

    def step(self, batch: dict[str, torch.Tensor]) -> None:
        loss = batch_loss(self.model, batch, self.generator, self.autocast)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.total += loss.detach().double() * len(next(iter(batch.values())))


class Bare:
    """The same work written out by hand."""

    def __init__(self, model, config: TrainConfig):
        self.model = model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.generator = torch.Generator().manual_seed(0)

    def step(self, batch: dict[str, torch.Tensor]) -> None:
        embeddings = {m: self.model.encode(m, x) for m, x in batch.items()}
        loss = self.model.loss(embeddings, generator=self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def block_seconds(loop, batch, steps: int) -> float:
    began = time.perf_counter()
    for _ in range(steps):
        loop.step(batch)
    return (time.perf_counter() - began) / steps


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256, help="rows per step (default %(default)s)")
    parser.add_argument("--d-model", type=int, default=256, help="embedding width (default %(default)s)")
    parser.add_argument("--steps", type=int, default=50, help="steps per measured block (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating blocks of each loop (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured steps of each loop (default %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MODELS["symile"](INPUTS, d_model=args.d_model)
    generator = torch.Generator().manual_seed(1)
    batch = {m: torch.randn(args.batch_size, d, generator=generator) for m, d in INPUTS.items()}
    config = TrainConfig(epochs=1, batch_size=args.batch_size)
    total = args.warmup + args.rounds * args.steps
    loops = {"harness": Harness(copy.deepcopy(model).train(), config, total),
             "bare": Bare(copy.deepcopy(model).train(), config)}
    for loop in loops.values():
        block_seconds(loop, batch, args.warmup)
    seconds = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, loop in loops.items():
            seconds[name].append(block_seconds(loop, batch, args.steps))
    median = {name: statistics.median(s) for name, s in seconds.items()}
    print(f"symile on inputs {INPUTS}, d_model {args.d_model}, batch {args.batch_size}, {args.threads} threads; "
          f"median of {args.rounds} blocks of {args.steps} steps")
    for name, s in median.items():
        print(f"{name:>8}: {s * 1e3:8.2f} ms/step")
    print(f"time harness/bare: {median['harness'] / median['bare']:.3f} (goal <= 1.1)")


if __name__ == "__main__":
    main()
