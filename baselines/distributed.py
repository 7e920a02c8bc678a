"""Gathering embeddings across ranks for contrastive losses under DDP."""

import torch
import torch.distributed as dist
from torch import Tensor


def gather_with_grad(x: Tensor) -> tuple[Tensor, slice]:
    """All ranks' rows of ``x`` concatenated in rank order, and the slice that is ours.

    Gradients flow back to every rank's rows, so each rank's loss over its own
    ``rows`` (see :mod:`baselines.losses`) trains against the global batch.
    Without an initialised process group this is the identity.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return x, slice(0, len(x))
    # Unequal batches would misplace the rows: check them before gathering.
    sizes = [torch.empty(1, dtype=torch.long, device=x.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([len(x)], device=x.device))
    if len({int(s) for s in sizes}) != 1:
        raise ValueError(f"every rank must contribute the same number of rows, got {[int(s) for s in sizes]}")
    rank = dist.get_rank()
    return _GatherRows.apply(x), slice(rank * len(x), (rank + 1) * len(x))


class _GatherRows(torch.autograd.Function):
    """Every rank's rows, in rank order, with gradient.

    Every rank's loss depends on our rows, so their gradient is the sum over ranks
    of the gradient each computed for them. An all-reduce, unlike reduce-scatter,
    works on every backend, and embeddings are small next to the model.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)  # all_reduce works in place
        dist.all_reduce(grad)
        n = len(grad) // dist.get_world_size()
        return grad[dist.get_rank() * n : (dist.get_rank() + 1) * n]
