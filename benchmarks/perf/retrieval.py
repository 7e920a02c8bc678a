"""Chunked top-k retrieval (polymodal.benchmarks.protocols.retrieval.topk) against one torch.mm of the whole score matrix.

Scores N queries against N candidates (default N = 50,000, d = 256, float32 unit
rows), keeping each query's top 10 (top-1 is its first column), a chunk of
queries at a time. The anchor is a single torch.mm of the same (N x d) @ (d x N)
product in the same run: the bare cost of the scores, with nothing reduced and
all N^2 floats held at once.

Goals: time chunked/anchor <= 1.3; peak memory of the chunked path a small
fraction of the N^2 floats (10 GB at N = 50k).

Method. Each measurement runs in a fresh subprocess, so that no run inherits
another's allocator state or peak; chunked and anchor runs alternate, and the
best of `--repeats` is kept. A worker builds its inputs, reads its resident set
size (/proc/self/statm), runs once, and reports the time and the peak resident
set size (getrusage ru_maxrss) minus the resident size before: the most memory
the path held at once beyond its inputs. The anchor needs the N^2 floats; where
that exceeds 80% of the memory now available it is not run.

Linux only (reads /proc). Run from the repository root with polymodal installed
(`make setup`) or with PYTHONPATH=. ; the default run takes a few minutes on two cores.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from polymodal.benchmarks.protocols.retrieval import topk

K = 10


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_resident_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def available_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    return int(fields["MemAvailable"].split()[0]) * 1024


def chunked(queries: torch.Tensor, candidates: torch.Tensor, chunk: int) -> None:
    topk(lambda rows, cols: queries[rows] @ candidates[cols].T, len(queries), len(candidates), K, chunk)


def anchor(queries: torch.Tensor, candidates: torch.Tensor, chunk: int) -> None:
    torch.mm(queries, candidates.T)


PATHS = {"chunked": chunked, "anchor": anchor}


def measure(path: str, n: int, d: int, chunk: int) -> dict:
    """Runs inside the worker subprocess."""
    generator = torch.Generator().manual_seed(0)
    queries, candidates = (F.normalize(torch.randn(n, d, generator=generator), dim=1) for _ in range(2))
    PATHS[path](queries[:8], candidates[:64], chunk)  # load every code path
    before = resident_bytes()
    began = time.perf_counter()
    PATHS[path](queries, candidates, chunk)
    return {"seconds": time.perf_counter() - began, "peak_bytes": peak_resident_bytes() - before}


def run_worker(args: argparse.Namespace, path: str) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", path]
    for option in ("n", "dim", "chunk", "threads"):
        command += [f"--{option}", str(getattr(args, option))]
    return json.loads(subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout)


def report(args: argparse.Namespace) -> None:
    full = 4 * args.n**2
    print(f"top-{K} of {args.n:,} queries x {args.n:,} candidates, d={args.dim}, float32, chunks of {args.chunk} "
          f"queries, {args.threads} threads, best of {args.repeats}")
    if full > 0.8 * available_bytes():
        print(f"anchor not run: its {full / 2**30:.1f} GiB of scores exceed 80% of the "
              f"{available_bytes() / 2**30:.1f} GiB available; try a smaller --n")
        return
    runs = {path: [] for path in PATHS}
    for _ in range(args.repeats):
        for path in PATHS:
            runs[path].append(run_worker(args, path))
    best = {path: min(r["seconds"] for r in rs) for path, rs in runs.items()}
    peak = {path: max(r["peak_bytes"] for r in rs) for path, rs in runs.items()}
    print(f"{'path':>8} {'seconds':>9} {'peak memory':>12}")
    for path in PATHS:
        print(f"{path:>8} {best[path]:9.2f} {peak[path] / 2**20:8.0f} MiB")
    print(f"time chunked/anchor: {best['chunked'] / best['anchor']:.3f} (goal <= 1.3)")
    print(f"peak memory chunked / N^2 floats ({full / 2**30:.1f} GiB): {peak['chunked'] / full:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000, help="queries and candidates (default %(default)s)")
    parser.add_argument("--dim", type=int, default=256, help="embedding dimension d (default %(default)s)")
    parser.add_argument("--chunk", type=int, default=1024, help="queries scored at once (default %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every run (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each path; the best counts (default %(default)s)")
    parser.add_argument("--worker", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure(args.worker, args.n, args.dim, args.chunk)))
    else:
        report(args)


if __name__ == "__main__":
    main()
