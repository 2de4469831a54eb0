"""Transformer encoder over a window of observations, one token per frame.

Each of the K frames is embedded linearly and given a learned position embedding; a pre-norm
encoder attends across the K tokens and the last token's output (the current frame, having seen
its history) is the feature vector.

Only the last token's output is used, so the last layer computes nothing else: its keys and
values still come from every token, but its query, attention output, feed-forward block and
norms run on the last token alone. The result equals the whole encoder's last token (same
parameters, same ``state_dict``) at about 1/4 less work with 3 layers.
"""

from collections.abc import Mapping
from typing import Annotated

import torch
from torch import nn

from il_lab.config.schema import Fraction, Size
from il_lab.errors import ConfigError


class TransformerNet(nn.Module):
    def __init__(
        self,
        *,
        obs_dim: int,
        context_len: int,
        d_model: Size,
        n_heads: Size,
        n_layers: Size,
        dim_feedforward: Size,
        dropout: Annotated[float, Fraction],
    ) -> None:
        super().__init__()
        self.check_config({"d_model": d_model, "n_heads": n_heads}, "")
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

    @staticmethod
    def check_config(values: Mapping, prefix: str) -> None:
        """Attention splits ``d_model`` into ``n_heads`` equal heads."""
        if values["d_model"] % values["n_heads"]:
            raise ConfigError(
                f"{prefix}d_model={values['d_model']} must be divisible by "
                f"{prefix}n_heads={values['n_heads']}"
            )

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        x = self.embed(windows) + self.position  # (batch, K, d_model)
        *body, last = self.encoder.layers
        for layer in body:
            x = layer(x)
        return self.norm(_last_token_output(last, x))  # (batch, d_model)


def _last_token_output(layer: nn.TransformerEncoderLayer, x: torch.Tensor) -> torch.Tensor:
    """A pre-norm ``layer``'s output ``(batch, d_model)`` at the last of ``x``'s tokens."""
    h = layer.norm1(x)  # (batch, K, d_model): keys and values from every token
    attended = layer.self_attn(h[:, -1:], h, h, need_weights=False)[0]  # (batch, 1, d_model)
    y = x[:, -1:] + layer.dropout1(attended)
    y = y + layer._ff_block(layer.norm2(y))
    return y[:, 0]
