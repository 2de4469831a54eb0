"""Action heads, chosen per action space: categorical for Discrete, Gaussian for Box."""

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


class GaussianHead(ActionHead):
    """Diagonal Gaussian with a state-independent log-std; negative log-likelihood loss.

    Deterministic actions are the mean; every action is clipped to the space's bounds.
    """

    def __init__(self, in_dim: int, space: gym.spaces.Box) -> None:
        super().__init__()
        self.shape = space.shape
        dim = int(np.prod(space.shape))
        self.mean = nn.Linear(in_dim, dim)
        self.log_std = nn.Parameter(torch.zeros(dim))
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32).flatten())
        self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32).flatten())

    def forward(self, features):
        return self.mean(features)  # (batch, action_dim)

    def _dist(self, mean):
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))

    def loss(self, mean, actions):
        return -self._dist(mean).log_prob(actions.flatten(1).float()).sum(-1).mean()

    def act(self, mean, deterministic):
        action = mean if deterministic else self._dist(mean).sample()
        return torch.clamp(action, self.low, self.high).reshape(-1, *self.shape)


def make_head(action_space: gym.Space, in_dim: int) -> ActionHead:
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalHead(in_dim, int(action_space.n), int(action_space.start))
    if isinstance(action_space, gym.spaces.Box):
        return GaussianHead(in_dim, action_space)
    raise TypeError(f"no action head for {action_space}; allowed: Discrete, Box")
