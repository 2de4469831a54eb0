"""SAC's networks: the squashed-Gaussian actor (a ``Policy`` with its own file format) and the
critics as one ensemble whose layers are batched matmuls over weights ``(n_critics, in, out)``.
``il_lab.rl.sac`` trains them."""

import math
from itertools import pairwise
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from il_lab.envs import EnvSpec, describe_space, descriptions_match
from il_lab.errors import ConfigError
from il_lab.interfaces import observation_batch
from il_lab.rl.policy import ACTIVATIONS

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # the actor's log std is clamped to this, as in SB3
N_CRITICS = 2
FILE_FORMAT = "il_lab.SACPolicy"


class SACPolicy(nn.Module):
    """The squashed-Gaussian actor; a ``Policy`` on raw observations, acting in the env's bounds."""

    def __init__(
        self,
        *,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Box,
        net_arch: tuple[int, ...],
        activation: str,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(action_space, gym.spaces.Box) or not action_space.is_bounded():
            raise ConfigError(f"action space {action_space}; allowed: a bounded Box for SAC")
        self.observation_space, self.action_space = observation_space, action_space
        self.net_arch, self.activation = tuple(net_arch), activation
        self.obs_dim = int(np.prod(observation_space.shape))
        self.action_dim = int(np.prod(action_space.shape))
        layers: list[nn.Module] = []
        with torch.random.fork_rng(devices=[]):  # PyTorch's default init, from our own seed
            torch.manual_seed(seed)
            for a, b in pairwise((self.obs_dim, *self.net_arch)):
                layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(self.net_arch[-1], 2 * self.action_dim)  # mean, log std
        low, high = torch.as_tensor(np.stack([action_space.low, action_space.high])).flatten(1)
        self.register_buffer("action_scale", (high - low).float() / 2)  # (action_dim,)
        self.register_buffer("action_bias", (high + low).float() / 2)  # (action_dim,)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log std of ``u``, each ``(batch, action_dim)``."""
        mean, log_std = self.head(self.body(obs)).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(
        self, obs: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions ``(batch, action_dim)`` in ``[-1, 1]``, their log-probabilities ``(batch,)``."""
        mean, log_std = self(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        u = mean + log_std.exp() * noise  # reparameterized
        # log N(u; mean, std) - log(1 - tanh(u)^2), the latter as 2 (log 2 - u - softplus(-2u))
        log_prob = -0.5 * noise**2 - log_std - 0.5 * math.log(2 * math.pi)
        log_prob = log_prob - 2 * (math.log(2) - u - F.softplus(-2 * u))
        return torch.tanh(u), log_prob.sum(-1)

    def to_env(self, acts: torch.Tensor) -> torch.Tensor:
        """``[-1, 1]`` actions to the env's bounds."""
        return acts * self.action_scale + self.action_bias

    @torch.no_grad()
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """SB3's signature: actions for a batch (or one unbatched observation); no memory."""
        obs, single = observation_batch(observation, self.observation_space)
        obs_t = torch.as_tensor(obs, device=self.action_scale.device)
        acts = torch.tanh(self(obs_t)[0]) if deterministic else self.sample(obs_t)[0]
        acts = self.to_env(acts).cpu().numpy().reshape(-1, *self.action_space.shape)
        return (acts[0] if single else acts), state

    def save(self, path: str | Path) -> None:
        """Weights, spaces and architecture, in one file."""
        spaces = {"observation_space": self.observation_space, "action_space": self.action_space}
        torch.save(
            {
                "format": FILE_FORMAT,
                **{name: describe_space(space) for name, space in spaces.items()},
                "net_arch": list(self.net_arch),
                "activation": self.activation,
                "state_dict": {k: v.cpu() for k, v in self.state_dict().items()},
            },
            path,
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        env: EnvSpec,
        device: torch.device | str = "cpu",
        key: str = "path",
    ) -> "SACPolicy":
        """A policy saved by ``save``, once its spaces are checked against ``env``'s; errors
        name the config ``key`` that gave ``path``."""
        where = f"{key}={str(path)!r}"
        try:
            saved = torch.load(path, map_location=device, weights_only=True)
        except Exception as e:  # missing, zip, pickle and torch errors alike
            raise ConfigError(f"{where} is not a loadable SAC policy ({type(e).__name__})") from e
        if not isinstance(saved, dict) or saved.get("format") != FILE_FORMAT:
            raise ConfigError(f"{where} is not a policy file saved by SACPolicy.save")
        spaces = {"observation_space": env.observation_space, "action_space": env.action_space}
        for name, space in spaces.items():
            if not descriptions_match(saved[name], describe_space(space)):
                raise ConfigError(f"{where} has another {name} than env.id={env.id!r}")
        policy = cls(**spaces, net_arch=saved["net_arch"], activation=saved["activation"])
        policy.load_state_dict(saved["state_dict"])
        return policy.to(device).eval()


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers as one matmul: ``(n, batch, in) -> (n, batch, out)``."""

    def __init__(self, n: int, in_dim: int, out_dim: int, generator: torch.Generator) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim))  # (n, in, out)
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim))  # (n, 1, out)
        bound = 1 / math.sqrt(in_dim)  # nn.Linear's default init, member by member
        for param in (self.weight, self.bias):
            nn.init.uniform_(param, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class CriticEnsemble(nn.Module):
    """``N_CRITICS`` Q-networks in one module: ``Q(obs, acts)`` is ``(n_critics, batch)``."""

    def __init__(self, in_dim: int, net_arch: tuple[int, ...], activation: str, seed: int) -> None:
        super().__init__()
        generator, layers = torch.Generator().manual_seed(seed), []
        for a, b in pairwise((in_dim, *net_arch, 1)):
            layers += [EnsembleLinear(N_CRITICS, a, b, generator), ACTIVATIONS[activation]()]
        self.net = nn.Sequential(*layers[:-1])

    def forward(self, obs: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, acts], -1).expand(N_CRITICS, -1, -1)  # (n_critics, batch, in_dim)
        return self.net(x).squeeze(-1)  # (n_critics, batch)
