"""Action heads, chosen per action space: categorical for Discrete, Gaussian for Box.

BC uses ``loss``/``act``; our PPO (``il_lab.rl``) also samples with its own generator and needs
log-probabilities and entropies. Actions are in the env's terms: Discrete indices include the
space's ``start``; Box actions are unclipped until ``to_env`` clips them to the bounds.
"""

import math

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class ActionHead(nn.Module):
    """Maps features to an action distribution's parameters, its loss, and actions."""

    def loss(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def act(self, params: torch.Tensor, deterministic: bool) -> torch.Tensor:
        raise NotImplementedError

    def accuracy(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor | None:
        return None

    def log_prob(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(batch,)`` of ``actions``."""
        raise NotImplementedError

    def entropy(self, params: torch.Tensor) -> torch.Tensor:
        """Entropies ``(batch,)`` of the distributions."""
        raise NotImplementedError

    def sample(self, params: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Unclipped samples, drawn from ``generator``."""
        raise NotImplementedError

    def to_env(self, actions: torch.Tensor) -> torch.Tensor:
        """What an env accepts (Box: clipped to the bounds, in the space's shape)."""
        return actions


class CategoricalHead(ActionHead):
    """Logits over ``n`` actions; cross-entropy loss; argmax when deterministic."""

    def __init__(self, in_dim: int, n: int, start: int = 0) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, n)
        self.start = start

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)  # (batch, n)

    def loss(self, logits, actions):
        return F.cross_entropy(logits, actions.long() - self.start)

    def act(self, logits, deterministic):
        index = (
            logits.argmax(-1)
            if deterministic
            else torch.distributions.Categorical(logits=logits).sample()
        )
        return index + self.start

    def accuracy(self, logits, actions):
        return (logits.argmax(-1) == actions.long() - self.start).float().mean()

    def log_prob(self, logits, actions):
        index = (actions.long() - self.start)[:, None]
        return logits.log_softmax(-1).gather(-1, index).squeeze(-1)

    def entropy(self, logits):
        log_probs = logits.log_softmax(-1)
        return -(log_probs.exp() * log_probs).sum(-1)

    def sample(self, logits, generator):
        index = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
        return index + self.start


class GaussianHead(ActionHead):
    """Diagonal Gaussian with a state-independent log-std; negative log-likelihood loss.

    Deterministic actions are the mean; every action is clipped to the space's bounds.
    """

    def __init__(self, in_dim: int, space: gym.spaces.Box, log_std_init: float = 0.0) -> None:
        super().__init__()
        self.shape = space.shape
        dim = int(np.prod(space.shape))
        self.mean = nn.Linear(in_dim, dim)
        self.log_std = nn.Parameter(torch.full((dim,), float(log_std_init)))
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32).flatten())
        self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32).flatten())

    def forward(self, features):
        return self.mean(features)  # (batch, action_dim)

    def _dist(self, mean):
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))

    def loss(self, mean, actions):
        return -self.log_prob(mean, actions).mean()

    def act(self, mean, deterministic):
        action = mean if deterministic else self._dist(mean).sample()
        return self.to_env(action)

    def log_prob(self, mean, actions):
        z = (actions.flatten(1).float() - mean) / self.log_std.exp()
        return (-0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self, mean):
        per_dim = 0.5 + 0.5 * math.log(2 * math.pi) + self.log_std
        return per_dim.sum().expand(mean.shape[0])

    def sample(self, mean, generator):
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return mean + self.log_std.exp() * noise

    def to_env(self, actions):
        return torch.clamp(actions.flatten(1), self.low, self.high).reshape(-1, *self.shape)


def make_head(action_space: gym.Space, in_dim: int, log_std_init: float = 0.0) -> ActionHead:
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalHead(in_dim, int(action_space.n), int(action_space.start))
    if isinstance(action_space, gym.spaces.Box):
        return GaussianHead(in_dim, action_space, log_std_init)
    raise TypeError(f"no action head for {action_space}; allowed: Discrete, Box")
