"""Run under torchrun by tests/benchmarks/test_distributed.py: a DDP step on two ranks against one process.

For each objective, every rank embeds its half of one global batch through
DDP, gathers all embeddings with gradient and takes the loss over its own
rows. Rank 0 then repeats the step in one process on the whole batch and
writes the largest differences in loss and gradient to the JSON path given.
It does the same for the validation loss of splits that do not fill the
global batches: smaller than one, and one and a half.
"""

import json
import sys
from contextlib import nullcontext

import torch
import torch.distributed as dist

from polymodal.baselines.distributed import gather_with_grad
from polymodal.baselines.models import MODELS
from polymodal.benchmarks.training import Placement, mean_loss

INPUTS = {"a": 6, "b": 6, "c": 6}
N = 32  # global batch
#: (label, model, config): every reference loss that gathers negatives across ranks.
CASES = [
    ("clip", "clip", {}),
    ("symile-n", "symile", {}),
    ("symile-n2", "symile", {"negatives": "n_squared"}),
    ("gram", "gram", {}),
    ("gram-anchor-a", "gram", {"anchor": "a"}),
    ("gram-dtm", "gram", {"dtm_weight": 0.1, "dtm_hidden": 8}),
    ("triangle", "triangle", {}),
    ("gated-symile-n", "gated-symile", {"gate_dim": 4, "gate_strength_init": 0.0}),
    ("gated-symile-pair", "gated-symile", {"gate_dim": 4, "gate_strength_init": 0.0, "negatives": "pair",
                                           "pair_negatives": 8}),
    # Dropout draws differ between a rank's rows and the same rows in one process; the rest must agree.
    ("confu", "confu", {"fusion_hidden": 8, "dropout": 0.0}),
]


def model_and_batch(name, config):
    torch.manual_seed(0)
    model = MODELS[name](INPUTS, d_model=8, **config)
    batch = {m: torch.randn(N, d) for m, d in INPUTS.items()}
    return model, batch


def trained(model):
    """The parameters a step trains (a fixed temperature is a parameter without gradient)."""
    return [(k, p) for k, p in model.named_parameters() if p.requires_grad]


def step(model, batch, rows=None):
    generator = torch.Generator().manual_seed(7)
    if rows is None:
        embeddings = model(batch)
    else:
        local = model({m: x[rows] for m, x in batch.items()})
        embeddings = {m: gather_with_grad(e)[0] for m, e in local.items()}
    loss = (model.module if hasattr(model, "module") else model).loss(embeddings, rows=rows, generator=generator)
    loss.backward()
    return loss.detach()


def main(out_path):
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    rows = slice(rank * N // world, (rank + 1) * N // world)
    report = {}
    for label, name, config in CASES:
        model, batch = model_and_batch(name, config)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        loss = step(ddp, batch, rows)
        dist.all_reduce(loss)
        loss /= world  # what DDP optimises: the mean of the ranks' losses
        grads = {k: p.grad for k, p in model.named_parameters()}  # already averaged by DDP
        if rank == 0:
            reference, batch = model_and_batch(name, config)
            expected = step(reference, batch)
            report[label] = {
                "loss": abs(loss.item() - expected.item()),
                "grad": max((grads[k] - p.grad).abs().max().item() for k, p in trained(reference)),
                "grad_norm": sum(p.grad.norm().item() for _, p in trained(reference)),
            }
    report["val"] = {}
    for n in (N // 2, N + N // 2):
        model, _ = model_and_batch("symile", {})
        val = {m: torch.randn(n, d, generator=torch.Generator().manual_seed(n)) for m, d in INPUTS.items()}
        two = mean_loss(model, val, N, 0, Placement(torch.device("cpu"), rank, world), nullcontext())
        if rank == 0:
            one = mean_loss(model, val, N, 0, Placement(torch.device("cpu")), nullcontext())
            report["val"][n] = {"two": two, "one": one}
    if rank == 0:
        with open(out_path, "w") as f:
            json.dump(report, f)
    dist.barrier()  # rank 1 would otherwise tear down gloo while rank 0 still scores alone, and can hang at exit
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
