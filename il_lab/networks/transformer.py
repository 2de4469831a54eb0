"""Transformer encoder over a window of observations, one token per frame.

Each of the K frames is embedded linearly and given a learned position embedding; a pre-norm
encoder attends across the K tokens and the last token's output (the current frame, having seen
its history) is the feature vector.
"""

import torch
from torch import nn

from il_lab.errors import ConfigError


class TransformerNet(nn.Module):
    def __init__(
        self,
        *,
        obs_dim: int,
        context_len: int,
        d_model: int,
        n_heads: int,
        n_layers: int,
        dim_feedforward: int,
        dropout: float,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ConfigError(
                f"learner.network.d_model={d_model} must be divisible by "
                f"learner.network.n_heads={n_heads}"
            )
        self.embed = nn.Linear(obs_dim, d_model)
        self.position = nn.Parameter(torch.zeros(1, context_len, d_model))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_heads,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        # Nested-tensor fast path only applies to post-norm layers; say so instead of warning.
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out_dim = d_model

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(windows) + self.position  # (batch, K, d_model)
        return self.norm(self.encoder(tokens)[:, -1])  # (batch, d_model)
