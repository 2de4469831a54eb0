"""Networks that map a window of observations ``(batch, context_len, obs_dim)`` to features."""

from il_lab.networks.heads import ActionHead, CategoricalHead, GaussianHead, make_head
from il_lab.networks.mlp import MLPNet
from il_lab.networks.transformer import TransformerNet

__all__ = ["ActionHead", "CategoricalHead", "GaussianHead", "MLPNet", "TransformerNet", "make_head"]
