"""A model installed by entry point: Symile over small MLP encoders.

Installed (``pip install examples/my_model``), it is ``my-model`` to ``polymodal train``, ``bench`` and
``submit``, with no import path to give: pyproject.toml declares it in the ``polymodal.models`` entry-point
group; polymodal.baselines.interface documents what each method must do.
"""

import torch.nn.functional as F
from torch import nn
from polymodal.baselines import ContrastiveModel, LogitScale, mip_scores, symile_loss


class MyModel(ContrastiveModel):
    def __init__(self, inputs, width=64):
        super().__init__()
        self.modalities, self.width = tuple(inputs), width
        self.encoders = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(d, width), nn.GELU(), nn.Linear(width, width)) for m, d in inputs.items()}
        )
        self.scale = LogitScale()

    def encode(self, modality, x):
        return F.normalize(self.encoders[modality](x), dim=-1)

    def loss(self, embeddings, rows=None, generator=None):
        ordered = [embeddings[m] for m in self.modalities]
        return symile_loss(ordered, self.scale(), rows=rows, generator=generator)

    def score(self, queries, target, candidates):
        return mip_scores([queries[m] for m in self.modalities if m in queries], candidates)

    def card(self):
        size = sum(p.numel() for p in self.parameters())
        return {"name": "my-model", "parameters": size, "config": {"width": self.width}}
