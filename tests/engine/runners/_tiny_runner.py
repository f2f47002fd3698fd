"""The tiny dataset and model the runner tests train: 16 seeded 4-d points
with alternating labels, and a linear classifier.

Test modules ``import _tiny_runner as T``: this folder's ``conftest.py``
loads it under that name (pytest runs with ``--import-mode=importlib``, so
this folder is not on ``sys.path``).
"""
import torch
from mmengine.model import BaseModel
from torch import nn
from torch.utils.data import Dataset


class Points(Dataset):
    """16 points: ``inputs`` seeded by the index, ``labels`` = index % 2."""

    def __len__(self):
        return 16

    def __getitem__(self, idx):
        g = torch.Generator().manual_seed(idx)
        return dict(inputs=torch.randn(4, generator=g),
                    labels=torch.tensor(idx % 2))


class Linear(BaseModel):
    """Two-class linear model over the first ``width`` input features;
    returns the loss in ``'loss'`` mode and the logits otherwise."""

    def __init__(self, width=4):
        super().__init__()
        self.fc = nn.Linear(width, 2)

    def forward(self, inputs, labels, mode='tensor'):
        logits = self.fc(inputs[:, :self.fc.in_features])
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(logits, labels))
        return logits
