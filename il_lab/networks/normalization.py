"""Running mean and variance of a stream, merged batch by batch (Chan et al. 1979).

One helper for every running statistic in il_lab: our PPO's observation and return
normalization, and GAIL's reward scale. The statistics are buffers, so they travel with a
module's ``state_dict`` (saved with a policy, restored on load).
"""

import torch
from torch import nn

EPS = 1e-8


class RunningMeanStd(nn.Module):
    """Mean and (population) variance of every sample seen so far, per element of ``shape``."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.register_buffer("mean", torch.zeros(self.shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(self.shape, dtype=torch.float64))
        # A tiny prior count, as SB3's RunningMeanStd: the first batch then sets the statistics.
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Merge ``batch`` of shape ``(n, *shape)`` into the statistics."""
        batch = batch.detach().to(self.mean.device, torch.float64).reshape(-1, *self.shape)
        n = batch.shape[0]
        if n == 0:
            return
        batch_mean = batch.mean(0)
        batch_var = batch.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    @property
    def std(self) -> torch.Tensor:
        return torch.sqrt(self.var + EPS)

    def normalize(self, x: torch.Tensor, clip: float | None = None) -> torch.Tensor:
        """``(x - mean) / std``, clipped to ``[-clip, clip]``, in ``x``'s dtype."""
        scaled = (x - self.mean) / self.std
        if clip is not None:
            scaled = scaled.clamp(-clip, clip)
        return scaled.to(x.dtype)

    def scale(self, x: torch.Tensor, clip: float | None = None) -> torch.Tensor:
        """``x / std`` (no centring, so a reward keeps its sign), clipped, in ``x``'s dtype."""
        scaled = x / self.std
        if clip is not None:
            scaled = scaled.clamp(-clip, clip)
        return scaled.to(x.dtype)
