"""Our PPO's actor-critic policy: separate actor and critic MLPs over normalized observations.

``net_arch`` sizes the actor's hidden layers, and the critic's too unless ``vf_net_arch`` is
given (SB3's ``net_arch=dict(pi=..., vf=...)``).

The actor is an MLP body with an action head from ``il_lab.networks.heads`` (categorical for
Discrete, diagonal Gaussian with a state-independent log std for Box), the same heads BC uses;
the critic is an MLP with a scalar output. Observation normalization (``normalize_obs``) keeps
running statistics of the raw observations inside the policy: the trainer updates them after
each rollout, they are frozen everywhere else, saved with the weights and applied by
``predict``, so every env stays the plain env.

Initialization follows SB3's ``ortho_init``: orthogonal weights with gain sqrt(2) in hidden
layers, 0.01 on the action output and 1 on the value output, zero biases; with
``ortho_init=False`` PyTorch's default initialization. Either way it is drawn from the policy's
own seed, so building a policy never moves the global random state.
"""

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from il_lab.envs import EnvSpec, describe_space, descriptions_match
from il_lab.errors import ConfigError
from il_lab.interfaces import observation_batch
from il_lab.networks.heads import make_head
from il_lab.networks.normalization import RunningMeanStd

FILE_FORMAT = "il_lab.PPOPolicy"
FILE_FORMAT_VERSION = 2  # 2: separate actor/critic sizes, activation, heads, obs_rms buffers
OBS_CLIP = 10.0  # normalized observations are clipped to [-OBS_CLIP, OBS_CLIP], as SB3 does
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


def _body(in_dim: int, hidden: tuple[int, ...], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip((in_dim, *hidden[:-1]), hidden, strict=True):
        layers += [nn.Linear(a, b), activation()]
    return nn.Sequential(*layers)


def _orthogonal_init(linears: list[nn.Linear], out_gain: float, gen: torch.Generator) -> None:
    for i, linear in enumerate(linears):
        gain = out_gain if i == len(linears) - 1 else math.sqrt(2)
        nn.init.orthogonal_(linear.weight, gain=gain, generator=gen)
        nn.init.zeros_(linear.bias)


class PPOPolicy(nn.Module):
    """Actor-critic MLPs with their own (frozen) observation normalization; a ``Policy``."""

    def __init__(
        self,
        *,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Discrete | gym.spaces.Box,
        net_arch: list[int] | tuple[int, ...],
        normalize_obs: bool,
        vf_net_arch: list[int] | tuple[int, ...] | None = None,
        activation: str = "tanh",
        ortho_init: bool = True,
        log_std_init: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(observation_space, gym.spaces.Box):
            raise ConfigError(f"observation space {observation_space}; allowed: Box")
        if not isinstance(action_space, gym.spaces.Discrete | gym.spaces.Box):
            raise ConfigError(f"action space {action_space}; allowed: Discrete or Box")
        if activation not in ACTIVATIONS:
            raise ConfigError(
                f"activation={activation!r} is not allowed; allowed: {', '.join(ACTIVATIONS)}"
            )
        self.observation_space = observation_space
        self.action_space = action_space
        self.pi_arch = tuple(int(h) for h in net_arch)
        self.vf_arch = self.pi_arch if vf_net_arch is None else tuple(int(h) for h in vf_net_arch)
        self.activation = activation
        self.ortho_init = bool(ortho_init)
        self.log_std_init = float(log_std_init)
        self.normalize_obs = bool(normalize_obs)
        self.obs_dim = int(np.prod(observation_space.shape))
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        act = ACTIVATIONS[activation]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # default initialization, when ortho_init is off
            self.actor_body = _body(self.obs_dim, self.pi_arch, act)
            self.head = make_head(action_space, self.pi_arch[-1], log_std_init)
            self.critic = nn.Sequential(
                *_body(self.obs_dim, self.vf_arch, act), nn.Linear(self.vf_arch[-1], 1)
            )
        if self.ortho_init:
            gen = torch.Generator().manual_seed(seed)
            head_out = self.head.linear if self.discrete else self.head.mean
            actor = [m for m in self.actor_body if isinstance(m, nn.Linear)] + [head_out]
            _orthogonal_init(actor, out_gain=0.01, gen=gen)
            _orthogonal_init([m for m in self.critic if isinstance(m, nn.Linear)], 1.0, gen)
        self.obs_rms = RunningMeanStd((self.obs_dim,))  # raw observations; trainer updates it

    @property
    def device(self) -> torch.device:
        return self.obs_rms.mean.device

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observations ``(batch, obs_dim)`` to the networks' inputs."""
        if not self.normalize_obs:
            return obs
        return self.obs_rms.normalize(obs, OBS_CLIP).float()

    def update_obs_stats(self, obs: torch.Tensor) -> None:
        """Merge raw observations ``(batch, obs_dim)`` into the running statistics."""
        self.obs_rms.update(obs)

    # acting and evaluating ------------------------------------------------------------------

    def action_params(self, obs_n: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n)`` or Gaussian means ``(batch, action_dim)`` for normalized obs."""
        return self.head(self.actor_body(obs_n))

    def value(self, obs_n: torch.Tensor) -> torch.Tensor:
        return self.critic(obs_n).squeeze(-1)  # (batch,)

    def sample(
        self, obs_n: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sampled (unclipped) actions, their log-probabilities and the values."""
        params = self.action_params(obs_n)
        actions = self.head.sample(params, generator)
        return actions, self.head.log_prob(params, actions), self.value(obs_n)

    def evaluate(
        self, obs_n: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probabilities of ``actions``, entropies and values, each ``(batch,)``."""
        params = self.action_params(obs_n)
        return self.head.log_prob(params, actions), self.head.entropy(params), self.value(obs_n)

    def env_actions(self, actions: torch.Tensor) -> np.ndarray:
        """What the envs receive: Discrete indices as they are, Box actions clipped."""
        return self.head.to_env(actions).cpu().numpy()

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
        obs_n = self.normalize(torch.as_tensor(obs, device=self.device))
        actions = self.head.act(self.action_params(obs_n), deterministic).cpu().numpy()
        return (actions[0] if single else actions), state

    # files ----------------------------------------------------------------------------------

    def architecture(self) -> dict:
        """The constructor's arguments (besides spaces and seed), as saved in a file."""
        return {
            "net_arch": list(self.pi_arch),
            "vf_net_arch": list(self.vf_arch),
            "normalize_obs": self.normalize_obs,
            "activation": self.activation,
            "ortho_init": self.ortho_init,
            "log_std_init": self.log_std_init,
        }

    def save(self, path: str | Path) -> None:
        """Weights, normalization statistics and what is needed to rebuild, in one file."""
        torch.save(
            {
                "format": FILE_FORMAT,
                "format_version": FILE_FORMAT_VERSION,
                "observation_space": describe_space(self.observation_space),
                "action_space": describe_space(self.action_space),
                **self.architecture(),
                "state_dict": {k: v.cpu() for k, v in self.state_dict().items()},
            },
            path,
        )

    @classmethod
    def load(
        cls, path: str | Path, env: EnvSpec, device: torch.device, key: str = "expert.path"
    ) -> "PPOPolicy":
        """Load a file written by ``save``, checking its spaces against ``env``.

        Raises:
            ConfigError: the file is missing, unreadable, not ours, or made for other spaces.
        """
        path = Path(path)
        where = f"{key}={str(path)!r}"
        if not path.is_file():
            raise ConfigError(f"{where} does not exist; allowed: a .pt file saved by expert=ppo")
        try:
            saved = torch.load(path, map_location=device, weights_only=True)
        except Exception as e:  # zip, pickle and torch errors alike
            reason = first_line(e)
            raise ConfigError(f"{where} is not a loadable expert=ppo policy ({reason})") from e
        if not isinstance(saved, dict) or saved.get("format") != FILE_FORMAT:
            raise ConfigError(f"{where} is not a policy file saved by expert=ppo")
        if saved.get("format_version") != FILE_FORMAT_VERSION:
            raise ConfigError(
                f"{where} has format version {saved.get('format_version')!r}; "
                f"allowed: {FILE_FORMAT_VERSION}"
            )
        for name, ours in (("observation", env.observation_space), ("action", env.action_space)):
            theirs = saved[f"{name}_space"]
            if not descriptions_match(theirs, describe_space(ours)):
                raise ConfigError(
                    f"{where} was trained with {name} space {theirs}, "
                    f"but env.id={env.id!r} has {ours}"
                )
        policy = cls(
            observation_space=env.observation_space,
            action_space=env.action_space,
            net_arch=saved["net_arch"],
            vf_net_arch=saved["vf_net_arch"],
            normalize_obs=saved["normalize_obs"],
            activation=saved["activation"],
            ortho_init=saved["ortho_init"],
            log_std_init=saved["log_std_init"],
        )
        try:
            policy.load_state_dict(saved["state_dict"])
        except RuntimeError as e:
            raise ConfigError(f"{where} has weights that do not fit ({first_line(e)})") from e
        return policy.to(device).eval()


def first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
