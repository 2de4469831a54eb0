"""MLP over a flattened window of observations (``context_len=1`` is the classic BC MLP)."""

import torch
from torch import nn

from il_lab.errors import ConfigError


class MLPNet(nn.Module):
    def __init__(
        self, *, obs_dim: int, context_len: int, hidden_sizes: list[int], activation: str = "relu"
    ) -> None:
        super().__init__()
        if not hidden_sizes or min(hidden_sizes) < 1:
            raise ConfigError(
                f"learner.network.hidden_sizes={list(hidden_sizes)} is not allowed; "
                "allowed: a non-empty list of integers >= 1"
            )
        act = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}.get(activation)
        if act is None:
            raise ConfigError(
                f"learner.network.activation={activation!r} is not allowed; "
                "allowed: relu, tanh, gelu"
            )
        layers, width = [], obs_dim * context_len
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), act()]
            width = size
        self.body = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.body(windows.flatten(1))  # (batch, out_dim)
