"""Run under torchrun by tests/benchmarks/test_distributed_eval.py: retrieval with the candidates sharded over ranks.

Every rank computes the top-k and the target ranks of each case in CASES
through polymodal.benchmarks.protocols.retrieval, which splits the candidates
between the ranks of the process group, and writes what it got to
RANK.safetensors in the folder given, so the test can check that every rank
holds the same, merged result and that it equals one process's.
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from polymodal.benchmarks.protocols.retrieval import target_ranks, topk

K = (1, 3, 10, 60)
#: (name, queries, candidates, chunk, candidate_chunk)
CASES = [
    ("ties", 37, 53, 5, 7),  # 53 candidates: 27 and 26 on two ranks
    ("distinct", 37, 53, 1000, 1000),
    ("blocks", 40, 101, 16, 9),
    ("one-candidate", 6, 1, 4, 4),  # fewer candidates than ranks: a rank scores nothing
]


def embeddings(name: str, n_q: int, n_c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer entries, so that every blocking sums exactly: scores compare bit for bit with the full matrix."""
    g = torch.Generator().manual_seed(0)
    if name == "distinct":  # entries up to 1000 over 16 dims: ties are rare
        return tuple(torch.randint(-1000, 1001, (n, 16), generator=g).double() for n in (n_q, n_c))
    q, c = (torch.randint(-1, 2, (n, 3), generator=g).float() for n in (n_q, n_c))  # few values: ties everywhere
    c[10:20] = c[:1]  # a block of equal candidates, across the two ranks' shares
    return q, c


def targets(n_q: int, n_c: int) -> torch.Tensor:
    return torch.randint(n_c, (n_q,), generator=torch.Generator().manual_seed(1))


def results() -> dict[str, torch.Tensor]:
    """Every case's top-k (values and indices, for each k) and target ranks, keyed by name."""
    out = {}
    for name, n_q, n_c, chunk, candidate_chunk in CASES:
        q, c = embeddings(name, n_q, n_c)

        def scores(rows, cols):
            return q[rows] @ c[cols].T

        for k in K:
            values, indices = topk(scores, n_q, n_c, k, chunk=chunk, candidate_chunk=candidate_chunk)
            out[f"{name}/top{k}/values"], out[f"{name}/top{k}/indices"] = values, indices
        out[f"{name}/ranks"] = target_ranks(scores, targets(n_q, n_c), n_c, chunk=chunk, candidate_chunk=candidate_chunk)
    return out


def main(folder: str) -> None:
    dist.init_process_group("gloo")
    save_file({key: t.contiguous() for key, t in results().items()}, Path(folder) / f"{dist.get_rank()}.safetensors")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
