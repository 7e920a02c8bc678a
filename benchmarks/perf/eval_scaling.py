"""How retrieval evaluation's time and peak memory grow with the number of candidates (10k, 50k, 200k by default).

The path is the one the Symile-M3 task evaluates with (benchmarks/tasks/symile_m3/task.py, `retrieve`):
polymodal.benchmarks.protocols.retrieval.topk over a Symile model's own `score` (the scaled MIP of the
audio and text query embeddings against every image embedding), top-1, blocks of `--chunk` queries x
`--candidate-chunk` candidates. A fixed `--queries` queries are scored against each candidate count, so the
work is queries x candidates x d: linear in the candidates, and the time ratios' expectation is the size
ratios (5 and 20 for 50k and 200k against 10k). Only one block of scores is alive at a time, so the memory the
scoring holds beyond its inputs is bounded by the block, min(candidates, candidate-chunk) wide: its ratio
should stay near 1 once the candidates fill a block. The inputs themselves (candidates x d floats of
embeddings) grow linearly, as they must; the table shows them apart.

The task's own protocol queries with every test row (queries = candidates), which is quadratic: the last
column derives that time as time x candidates / queries, from this run's figure.

Method. Each size runs in a fresh subprocess (no allocator state or peak carried over). The worker builds a
Symile model and the embeddings, runs the path once on a few rows (loads every code path), reads its resident
set size (/proc/self/statm), then takes `--repeats` timed runs; the best time counts. Peak memory is the
worker's peak resident set size (getrusage ru_maxrss, which sees torch's allocations, unlike tracemalloc)
minus the resident size before the runs: the most the scoring held at once beyond its inputs.

    python benchmarks/perf/eval_scaling.py [--sizes 10000,50000,200000] [--queries 1024] [--dim 256]

Linux only (reads /proc). The default run takes about half a minute on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

from polymodal.baselines.models import MODELS
from polymodal.benchmarks.protocols.retrieval import CANDIDATE_CHUNK, CHUNK, topk

QUERIES = ("audio", "text")  # the Symile-M3 protocol retrieves the image from these


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_resident_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def sizes(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated candidate counts, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"counts must be >= 1, got {text!r}")
    return values


@torch.no_grad()
def retrieve(model, queries: dict[str, torch.Tensor], candidates: torch.Tensor, chunk: int, candidate_chunk: int):
    """The Symile-M3 task's retrieval, with as many queries as given rather than one per candidate."""
    n_queries = len(next(iter(queries.values())))
    return topk(lambda rows, cols: model.score({m: q[rows] for m, q in queries.items()}, "image", candidates[cols]),
                n_queries, len(candidates), 1, chunk, candidate_chunk)


def measure(args: argparse.Namespace, n: int) -> dict:
    """Runs inside the worker subprocess."""
    torch.manual_seed(0)
    width = args.dim + 1  # any input width: only the embeddings are scored
    model = MODELS["symile"]({m: width for m in ("image", *QUERIES)}, d_model=args.dim).eval()
    generator = torch.Generator().manual_seed(0)
    queries = {m: torch.randn(args.queries, args.dim, generator=generator) for m in QUERIES}
    candidates = torch.randn(n, args.dim, generator=generator)
    retrieve(model, {m: q[:8] for m, q in queries.items()}, candidates[:64], args.chunk, args.candidate_chunk)
    before = resident_bytes()
    seconds = []
    for _ in range(args.repeats):
        began = time.perf_counter()
        retrieve(model, queries, candidates, args.chunk, args.candidate_chunk)
        seconds.append(time.perf_counter() - began)
    return {"seconds": min(seconds), "peak_bytes": peak_resident_bytes() - before, "total_peak_bytes": peak_resident_bytes(),
            "input_bytes": candidates.element_size() * candidates.numel()}


def run_worker(args: argparse.Namespace, n: int) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", str(n)]
    for option in ("queries", "dim", "chunk", "candidate_chunk", "threads", "repeats"):
        command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    return json.loads(subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout)


def report(args: argparse.Namespace) -> None:
    print(f"top-1 retrieval (Symile-M3's path: topk over Symile's score), {args.queries:,} queries, d={args.dim}, "
          f"float32, blocks of {args.chunk} x {args.candidate_chunk}, {args.threads} threads, best of {args.repeats}")
    runs = {n: run_worker(args, n) for n in args.sizes}
    for n, run in runs.items():  # float32 scores of one block: the bound on what the scoring holds
        run["block_bytes"] = 4 * min(args.chunk, args.queries) * min(args.candidate_chunk, n)
    anchor = runs[args.sizes[0]]
    print(f"{'candidates':>10} {'seconds':>8} {'time ratio':>10} {'linear':>6} {'scoring peak':>12} {'ratio':>6} "
          f"{'one block':>9} {'peak/block':>10} {'inputs':>8} {'process peak':>12} {'all-test protocol':>17}")
    for n, run in runs.items():
        print(f"{n:>10,} {run['seconds']:8.3f} {run['seconds'] / anchor['seconds']:10.2f} {n / args.sizes[0]:6.1f} "
              f"{run['peak_bytes'] / 2**20:8.0f} MiB {run['peak_bytes'] / anchor['peak_bytes']:6.2f} "
              f"{run['block_bytes'] / 2**20:5.0f} MiB {run['peak_bytes'] / run['block_bytes']:10.2f} "
              f"{run['input_bytes'] / 2**20:4.0f} MiB {run['total_peak_bytes'] / 2**20:8.0f} MiB "
              f"{run['seconds'] * n / args.queries:15.0f} s")
    for n in args.sizes[1:]:
        print(f"time {n:,}/{args.sizes[0]:,}: {runs[n]['seconds'] / anchor['seconds']:.2f} (linear: {n / args.sizes[0]:g}); "
              f"scoring peak {n:,}/{args.sizes[0]:,}: {runs[n]['peak_bytes'] / anchor['peak_bytes']:.2f} "
              f"(bounded: ~1 once both fill a block)")
    print("scoring peak / one block of scores: " + ", ".join(f"{run['peak_bytes'] / run['block_bytes']:.2f}" for run in runs.values())
          + " (bounded by the block: the same at every size)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=sizes, default=[10_000, 50_000, 200_000],
                        help="candidate counts, comma-separated; the first is the anchor (default 10000,50000,200000)")
    parser.add_argument("--queries", type=int, default=CHUNK, help="queries scored against each size (default %(default)s)")
    parser.add_argument("--dim", type=int, default=256, help="embedding dimension d (default %(default)s)")
    parser.add_argument("--chunk", type=int, default=CHUNK, help="queries per block (default: the protocol's, %(default)s)")
    parser.add_argument("--candidate-chunk", type=int, default=CANDIDATE_CHUNK,
                        help="candidates per block (default: the protocol's, %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every run (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per size; the best counts (default %(default)s)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for option in ("queries", "dim", "chunk", "candidate_chunk", "threads", "repeats"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be >= 1, got {getattr(args, option)}")
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure(args, args.worker)))
    else:
        report(args)


if __name__ == "__main__":
    main()
