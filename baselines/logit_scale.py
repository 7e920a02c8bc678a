"""The learned temperature of contrastive logits, as in CLIP and Symile."""

import math

import torch
from torch import Tensor, nn


class LogitScale(nn.Module):
    """Holds log(s) and returns s = exp(log s), the factor applied to every similarity.

    Learning the log keeps s positive. ``max_value`` caps the returned s (CLIP and
    AlignCLIP cap it at 100); past the cap the gradient to the parameter is zero.
    A fixed scale is still a parameter, so checkpoints look the same either way.
    """

    def __init__(self, init: float = math.log(1 / 0.07), learnable: bool = True, max_value: float | None = None):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(float(init)), requires_grad=learnable)
        self.max_value = max_value

    def forward(self) -> Tensor:
        scale = self.log_scale.exp()
        return scale if self.max_value is None else scale.clamp(max=self.max_value)

    def extra_repr(self) -> str:
        learnable = self.log_scale.requires_grad
        return f"log_scale={self.log_scale.item():.4f}, learnable={learnable}, max_value={self.max_value}"
