"""MLP over a flattened window of observations (``context_len=1`` is the classic BC MLP)."""

import torch
from torch import nn

from il_lab.config.schema import Activation, HiddenSizes


class MLPNet(nn.Module):
    def __init__(
        self,
        *,
        obs_dim: int,
        context_len: int,
        hidden_sizes: HiddenSizes,
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        act = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[activation]
        layers, width = [], obs_dim * context_len
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), act()]
            width = size
        self.body = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.body(windows.flatten(1))  # (batch, out_dim)
