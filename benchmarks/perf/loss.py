"""Time and peak memory of polymodal's Symile loss against the official `symile` package,
and of the newer objectives against Symile's O(N) loss.

Forward plus backward of the loss on three L2-normalised (N, d) float32 embeddings
and a learned logit scale, for
  * O(N) negatives at N = 256, 1024, 4096: time (goal: ours/official <= 1.0);
  * O(N^2) negatives at N = 256, 512, 1024: time (goal <= 1.2) and peak memory
    (goal <= 0.10);
  * GRAM (text anchor, label smoothing), TRIANGLE, Gated Symile (in-batch, with
    its gate) and ConFu (with its projections and fusion MLPs) at N = 256, 1024,
    4096: time and peak memory as ratios to our Symile O(N) at the same N (no
    goal: what each objective costs; GRAM's N·N Gram determinants dominate).

Method. Each (implementation, negatives, N) runs in a fresh subprocess, so that no
run inherits another's allocator state or peak. It calls the loss once at N = 8
(loading every code path), builds its inputs, reads its resident set size
(/proc/self/statm), then runs `--warmup` unmeasured and `--repeats` measured
forward+backward passes. Time is the median measured pass. Peak memory is the
process's peak resident set size (getrusage ru_maxrss) afterwards minus the resident
size before the passes: the most memory the loss held at once beyond its inputs.
The official O(N^2) loss keeps its N^3 logits three times per anchor (matmul output,
scaled copy, log-softmax output); where that estimate exceeds 80% of physical
memory (N = 1024 needs ~42 GiB) it is not run, and the table says so.

Linux only (reads /proc). Run from the repository root with polymodal installed
(`make setup`) or with PYTHONPATH=. ; a full run takes about five minutes on two
cores.
"""

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

import symile
import torch
import torch.nn.functional as F

from polymodal.baselines.losses import symile_loss
from polymodal.baselines.models import MODELS
from polymodal.baselines.volumes import gram_volume, triangle_area2, volume_loss

IMPLEMENTATIONS = {
    "official": lambda embeddings, scale, negatives: symile.Symile(negatives)(embeddings, scale),
    "ours": lambda embeddings, scale, negatives: symile_loss(embeddings, scale, negatives),
}


def _model_loss(name: str, d: int):
    """The loss of reference model ``name`` on given embeddings, with its own parameters (gate, fusion heads)."""
    model = MODELS[name]({m: d for m in "abc"}, d_model=d)
    return lambda embeddings, scale, negatives: model.loss(dict(zip("abc", embeddings)))


#: The newer objectives, each built for width d; measured against "ours" with O(N) negatives.
NEW_LOSSES = {
    "gram": lambda d: lambda e, scale, negatives: volume_loss(e, scale, gram_volume, [0], 0.1),
    "triangle": lambda d: lambda e, scale, negatives: volume_loss(e, scale, triangle_area2, [0], 0.1),
    "gated-symile": lambda d: _model_loss("gated-symile", d),
    "confu": lambda d: _model_loss("confu", d),
}
SIZES = {"n": (256, 1024, 4096), "n_squared": (256, 512, 1024)}
# O(N^2) passes take seconds to minutes each, and GRAM's N^2 determinants seconds at N = 4096.
REPEATS = {"n": 10, "n_squared": 3, "new": 3}


def official_n_squared_bytes(n: int, d: int) -> int:
    """The official O(N^2) peak: per anchor, three float32 (N, N^2) logit tensors and
    two (N^2, d) products (the rolled copies and their concatenation) kept for backward."""
    return 3 * 4 * (3 * n**3 + 2 * n**2 * d)


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_resident_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure(implementation: str, negatives: str, n: int, d: int, repeats: int, warmup: int) -> dict:
    """Runs inside the worker subprocess."""
    torch.manual_seed(0)
    loss_fn = IMPLEMENTATIONS[implementation] if implementation in IMPLEMENTATIONS else NEW_LOSSES[implementation](d)

    def inputs(rows: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        embeddings = [F.normalize(torch.randn(rows, d), dim=1).requires_grad_() for _ in range(3)]
        return embeddings, torch.tensor(math.log(1 / 0.07), requires_grad=True)

    def step(embeddings: list[torch.Tensor], log_scale: torch.Tensor) -> float:
        began = time.perf_counter()
        loss_fn(embeddings, log_scale.exp(), negatives).backward()
        elapsed = time.perf_counter() - began
        for leaf in (*embeddings, log_scale):
            leaf.grad = None
        return elapsed

    step(*inputs(8))
    embeddings, log_scale = inputs(n)
    before = resident_bytes()
    for _ in range(warmup):
        step(embeddings, log_scale)
    seconds = [step(embeddings, log_scale) for _ in range(repeats)]
    return {"seconds": statistics.median(seconds), "peak_bytes": peak_resident_bytes() - before}


def run_worker(args: argparse.Namespace, implementation: str, negatives: str, n: int) -> dict:
    repeats = args.repeats or REPEATS[negatives]
    # One warm-up pass would double an O(N^2) run; its first pass is measured with the rest.
    warmup = args.warmup if negatives == "n" else 0
    options = {"--dim": args.dim, "--threads": args.threads, "--repeats": repeats, "--warmup": warmup}
    command = [sys.executable, os.path.abspath(__file__), "--worker", implementation, negatives, str(n)]
    for option, value in options.items():
        command += [option, str(value)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout)


def report(args: argparse.Namespace) -> None:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    print(f"Symile loss forward+backward: 3 modalities, d={args.dim}, float32, {args.threads} threads, "
          f"median pass; {memory / 2**30:.0f} GiB of memory")

    print("\nO(N) negatives (goal: time ours/official <= 1.0)")
    print(f"{'N':>6} {'official':>12} {'ours':>12} {'ours/official':>14}")
    for n in SIZES["n"]:
        official, ours = (run_worker(args, impl, "n", n)["seconds"] for impl in ("official", "ours"))
        print(f"{n:6d} {official * 1e3:9.1f} ms {ours * 1e3:9.1f} ms {ours / official:14.2f}")

    print("\nO(N^2) negatives (goals: time ours/official <= 1.2, peak memory ours/official <= 0.10)")
    print(f"{'N':>6} {'official':>10} {'peak':>10} {'ours':>10} {'peak':>10} {'time ratio':>11} {'memory ratio':>13}")
    for n in SIZES["n_squared"]:
        ours = run_worker(args, "ours", "n_squared", n)
        ours_cells = f"{ours['seconds']:8.2f} s {ours['peak_bytes'] / 2**20:6.0f} MiB"
        needed = official_n_squared_bytes(n, args.dim)
        if needed > 0.8 * memory:
            print(f"{n:6d} {'not run':>21} {ours_cells}   official would need ~{needed / 2**30:.0f} GiB")
            continue
        official = run_worker(args, "official", "n_squared", n)
        print(f"{n:6d} {official['seconds']:8.2f} s {official['peak_bytes'] / 2**20:6.0f} MiB {ours_cells} "
              f"{ours['seconds'] / official['seconds']:11.2f} {ours['peak_bytes'] / official['peak_bytes']:13.3f}")


def report_new_losses(args: argparse.Namespace) -> None:
    print("\nNewer objectives against our Symile O(N) at the same N (time ratio, peak memory ratio)")
    print(f"{'N':>6} {'symile O(N)':>20} " + " ".join(f"{name:>26}" for name in NEW_LOSSES))
    for n in SIZES["n"]:
        anchor = run_worker(args, "ours", "n", n)
        cells = []
        for name in NEW_LOSSES:
            got = run_worker(args, name, "new", n)
            cells.append(f"{got['seconds'] * 1e3:7.1f} ms {got['seconds'] / anchor['seconds']:5.2f}x "
                         f"{got['peak_bytes'] / max(anchor['peak_bytes'], 1):6.1f}x")
        print(f"{n:6d} {anchor['seconds'] * 1e3:7.1f} ms {anchor['peak_bytes'] / 2**20:6.0f} MiB " + " ".join(
            f"{c:>26}" for c in cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=256, help="embedding dimension d (default 256)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every run (default 2)")
    parser.add_argument("--repeats", type=int, help="measured passes per run (default 10 for O(N), 3 for O(N^2))")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured passes before the O(N) runs")
    parser.add_argument("--only-new", action="store_true", help="measure the newer objectives only")
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "NEGATIVES", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        implementation, negatives, n = args.worker
        print(json.dumps(measure(implementation, negatives, int(n), args.dim, args.repeats, args.warmup)))
    else:
        if not args.only_new:
            report(args)
        report_new_losses(args)


if __name__ == "__main__":
    main()
