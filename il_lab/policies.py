"""The policy every BC-style learner produces: a network over stacked, normalized observations.

The history of the last ``context_len`` observations is the ``state`` of ``predict``: it is
reset on ``episode_start`` by filling the window with the new episode's first observation, which
is exactly how ``il_lab.datasets.stack_windows`` pads training windows.
"""

import importlib
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from il_lab.errors import ConfigError
from il_lab.interfaces import observation_batch
from il_lab.networks.heads import make_head

OBS_NORMS = ("per_dim", "shared", "none")


class StackedObsPolicy(nn.Module):
    def __init__(
        self,
        *,
        network: nn.Module,
        network_kwargs: dict,
        observation_space: gym.spaces.Box,
        action_space: gym.Space,
        context_len: int,
        obs_norm: str = "per_dim",
    ) -> None:
        super().__init__()
        self.net = network
        self.network_kwargs = dict(network_kwargs)
        self.head = make_head(action_space, network.out_dim)
        self.observation_space = observation_space
        self.action_space = action_space
        self.context_len = context_len
        self.obs_dim = int(np.prod(observation_space.shape))
        if obs_norm not in OBS_NORMS:
            raise ConfigError(
                f"learner.obs_norm={obs_norm!r} is not allowed; allowed: {', '.join(OBS_NORMS)}"
            )
        self.obs_norm = obs_norm
        # Identity until fit_normalization sees the data trained on.
        self.register_buffer("obs_mean", torch.zeros(self.obs_dim))
        self.register_buffer("obs_std", torch.ones(self.obs_dim))

    @property
    def device(self) -> torch.device:
        return self.obs_mean.device

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Action-distribution parameters for raw windows ``(batch, context_len, obs_dim)``."""
        return self.head(self.net((windows - self.obs_mean) / self.obs_std))

    @torch.no_grad()
    def fit_normalization(self, obs: np.ndarray) -> None:
        """Set the observation statistics from ``obs (N, obs_dim)``, the data trained on.

        ``per_dim`` centres and scales each dimension. ``shared`` centres each dimension but
        divides all by one scale (the root mean square of the per-dimension stds): when the
        demonstrations are narrow (one episode), a dimension the expert barely moved would
        otherwise blow up every state the learner drifts into. ``none`` leaves inputs raw.
        """
        obs = np.asarray(obs, dtype=np.float32).reshape(-1, self.obs_dim)
        if self.obs_norm == "none":
            return
        std = obs.std(0)
        if self.obs_norm == "shared":
            std = np.full_like(std, np.sqrt(np.mean(std**2)))
        self.obs_mean.copy_(torch.as_tensor(obs.mean(0)))
        self.obs_std.copy_(torch.as_tensor(std + 1e-6))

    @torch.no_grad()
    def act_on_windows(self, windows: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for raw windows ``(batch, context_len, obs_dim)``, with no history kept."""
        was_training = self.training
        self.eval()
        params = self(torch.as_tensor(windows, dtype=torch.float32, device=self.device))
        self.train(was_training)
        return self.head.act(params, deterministic).cpu().numpy()

    def initial_state(self, obs: np.ndarray) -> np.ndarray:
        return np.repeat(obs[:, None, :], self.context_len, axis=1)  # (n_envs, K, obs_dim)

    def advance(
        self, state: np.ndarray | None, obs: np.ndarray, episode_start: np.ndarray | None
    ) -> np.ndarray:
        """The history after seeing ``obs`` (n_envs, obs_dim); new episodes restart it."""
        if state is None or len(state) != len(obs):
            return self.initial_state(obs)
        state = np.concatenate([state[:, 1:], obs[:, None, :]], axis=1)
        if episode_start is not None and np.any(episode_start):
            starts = np.asarray(episode_start, dtype=bool)
            state[starts] = self.initial_state(obs[starts])
        return state

    @torch.no_grad()
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        obs, single = observation_batch(observation, self.observation_space)
        state = self.advance(state, obs, episode_start)
        actions = self.act_on_windows(state, deterministic)
        return (actions[0] if single else actions), state

    def save(self, path: Path) -> None:
        """Weights plus everything needed to rebuild and normalize, in one file."""
        torch.save(
            {
                "format_version": 1,
                "network_class": f"{type(self.net).__module__}.{type(self.net).__qualname__}",
                "network_kwargs": self.network_kwargs,
                "observation_space": self.observation_space,
                "action_space": self.action_space,
                "context_len": self.context_len,
                "obs_norm": self.obs_norm,
                "state_dict": self.state_dict(),
            },
            path,
        )

    @classmethod
    def load(cls, path: Path, device: str | torch.device = "cpu") -> "StackedObsPolicy":
        saved = torch.load(path, map_location=device, weights_only=False)
        module, _, name = saved["network_class"].rpartition(".")
        network = getattr(importlib.import_module(module), name)(**saved["network_kwargs"])
        policy = cls(
            network=network,
            network_kwargs=saved["network_kwargs"],
            observation_space=saved["observation_space"],
            action_space=saved["action_space"],
            context_len=saved["context_len"],
            obs_norm=saved.get("obs_norm", "per_dim"),
        )
        policy.load_state_dict(saved["state_dict"])
        return policy.to(device)
