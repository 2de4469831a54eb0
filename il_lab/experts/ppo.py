"""Our own PPO: Proximal Policy Optimization (Schulman et al. 2017, arXiv:1707.06347).

One iteration collects ``n_steps`` steps in each of ``n_envs`` vectorized envs with the current
policy, computes advantages with GAE(lambda) (Schulman et al. 2016), then runs ``n_epochs``
passes of shuffled minibatches over the rollout, minimizing

    clipped surrogate policy loss + vf_coef * value loss - ent_coef * entropy,

with per-minibatch advantage normalization and gradient-norm clipping. With
``linear_annealing`` the learning rate and the clip range fall linearly to 0 over
``total_env_steps``, like SB3 / rl-zoo ``lin_`` schedules. Hyperparameters carry SB3's names,
so ``conf/expert/ppo.yaml`` and ``conf/expert/sb3_ppo.yaml`` share their keys, and the
TensorBoard tags are SB3's (``il_lab.metrics.EXPERT_TAGS``), so both experts draw on the same
charts (x-axis: env steps).

Episode ends. The envs are gymnasium 1.x vector envs, which reset on the *next* step
(autoreset mode ``NEXT_STEP``): the step that ends an episode returns the episode's final
observation, and the following step ignores its action, resets the env and returns the first
observation with reward 0. Such reset steps carry no learning signal: they are masked out of
GAE and of the loss (``valid`` below). Because the final observation is stored as the next
row's observation, the value a time-limit truncation bootstraps from is simply the next row's
value; a termination does not bootstrap.

Observation normalization (``normalize_obs``) keeps a running mean and variance of the raw
observations inside the policy, updated by the trainer after each rollout (the rollout's
observations are stored as normalized when they were acted on, so the ratio starts at 1) and
frozen everywhere else: saved with the weights and applied by ``predict``.

``PPOTrainer`` owns the loop and can be driven in chunks (``learn(n_env_steps)``) with an
optional ``reward_fn`` that replaces the env reward for training (GAIL's generator);
``PPOExpert`` is the pipeline's expert (same interface as ``SB3PPOExpert``) built on it.
"""

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from il_lab.envs import EnvSpec, describe_space, descriptions_match
from il_lab.errors import ConfigError
from il_lab.validation import check_rollout_batch

log = logging.getLogger(__name__)

# reward_fn(obs (n, obs_dim), actions (n,) or (n, action_dim), next_obs (n, obs_dim)) -> (n,)
RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

FILE_FORMAT = "il_lab.PPOPolicy"
FILE_FORMAT_VERSION = 1
OBS_CLIP = 10.0  # normalized observations are clipped to [-OBS_CLIP, OBS_CLIP], as SB3 does
OBS_EPS = 1e-8
EP_INFO_WINDOW = 100  # rollout/ep_rew_mean averages the last 100 episodes, as SB3 does


@dataclass(frozen=True, kw_only=True)
class PPOHyperparameters:
    """PPO's hyperparameters, with SB3's names and meanings.

    ``n_envs * n_steps`` env steps make one rollout; ``batch_size`` is the minibatch size;
    ``net_arch`` gives the hidden sizes of both the actor and the critic (separate MLPs).
    """

    total_env_steps: int
    n_envs: int
    n_steps: int
    batch_size: int
    n_epochs: int
    gamma: float
    gae_lambda: float
    learning_rate: float
    clip_range: float
    linear_annealing: bool
    ent_coef: float
    vf_coef: float
    max_grad_norm: float
    net_arch: tuple[int, ...]
    normalize_obs: bool = False
    clip_range_vf: float | None = None  # SB3's default: the value loss is not clipped

    def __post_init__(self) -> None:
        object.__setattr__(self, "net_arch", tuple(int(h) for h in self.net_arch))
        for key in ("total_env_steps", "n_envs", "n_steps", "batch_size", "n_epochs"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key}={value!r} is not allowed; allowed: an integer >= 1")
        check_rollout_batch(self.batch_size, self.n_envs, self.n_steps)
        if not self.net_arch or min(self.net_arch) < 1:
            raise ConfigError(
                f"net_arch={list(self.net_arch)} is not allowed; "
                "allowed: a non-empty list of integers >= 1"
            )

    def schedule(self, num_timesteps: int) -> tuple[float, float]:
        """Learning rate and clip range after ``num_timesteps`` env steps."""
        if not self.linear_annealing:
            return self.learning_rate, self.clip_range
        remaining = max(0.0, 1.0 - num_timesteps / self.total_env_steps)
        return remaining * self.learning_rate, remaining * self.clip_range


def make_vector_env(env: EnvSpec, n_envs: int) -> gym.vector.VectorEnv:
    """``n_envs`` copies of ``env``: the native vector implementation if the env has one."""
    mode = "vector_entry_point" if gym.spec(env.id).vector_entry_point is not None else "sync"
    venv = gym.make_vec(env.id, num_envs=n_envs, vectorization_mode=mode, **env.make_kwargs)
    # gymnasium 1.0 always resets on the next step without saying so; 1.1+ names its mode.
    autoreset = venv.metadata.get("autoreset_mode")
    if autoreset is not None and getattr(autoreset, "name", autoreset) != "NEXT_STEP":
        venv.close()
        raise ConfigError(
            f"env.id={env.id!r} vectorizes with autoreset mode {autoreset}; "
            "allowed: NEXT_STEP (what our PPO's masking assumes)"
        )
    return venv


# ----------------------------------------------------------------------------------------------
# The policy
# ----------------------------------------------------------------------------------------------


def _mlp(
    in_dim: int, hidden: tuple[int, ...], out_dim: int, out_gain: float, gen: torch.Generator
) -> nn.Sequential:
    """Tanh MLP with orthogonal weights (gain sqrt(2) inside, ``out_gain`` last), zero biases."""
    layers: list[nn.Module] = []
    sizes = [in_dim, *hidden]
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.Tanh()]
    layers.append(nn.Linear(sizes[-1], out_dim))
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    for i, linear in enumerate(linears):
        gain = out_gain if i == len(linears) - 1 else math.sqrt(2)
        nn.init.orthogonal_(linear.weight, gain=gain, generator=gen)
        nn.init.zeros_(linear.bias)
    return nn.Sequential(*layers)


class PPOPolicy(nn.Module):
    """Actor-critic MLPs with their own (frozen) observation normalization; a ``Policy``.

    Discrete actions: a categorical over logits. Box actions: a diagonal Gaussian with a
    state-independent log std; actions are clipped to the space's bounds before they reach an
    env (the unclipped sample is what the loss sees).
    """

    def __init__(
        self,
        *,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Discrete | gym.spaces.Box,
        net_arch: tuple[int, ...] | list[int],
        normalize_obs: bool,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(observation_space, gym.spaces.Box):
            raise ConfigError(f"observation space {observation_space}; allowed: Box")
        if not isinstance(action_space, gym.spaces.Discrete | gym.spaces.Box):
            raise ConfigError(f"action space {action_space}; allowed: Discrete or Box")
        self.observation_space = observation_space
        self.action_space = action_space
        self.net_arch = tuple(int(h) for h in net_arch)
        self.normalize_obs = bool(normalize_obs)
        self.obs_dim = int(np.prod(observation_space.shape))
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        gen = torch.Generator().manual_seed(seed)
        if isinstance(action_space, gym.spaces.Discrete):
            self.action_start = int(action_space.start)
            out_dim = int(action_space.n)
            self.register_parameter("log_std", None)
        else:
            self.action_start = 0
            out_dim = int(np.prod(action_space.shape))
            self.log_std = nn.Parameter(torch.zeros(out_dim))
            low = torch.as_tensor(action_space.low, dtype=torch.float32).flatten()
            high = torch.as_tensor(action_space.high, dtype=torch.float32).flatten()
            self.register_buffer("action_low", low)
            self.register_buffer("action_high", high)
        self.actor = _mlp(self.obs_dim, self.net_arch, out_dim, out_gain=0.01, gen=gen)
        self.critic = _mlp(self.obs_dim, self.net_arch, 1, out_gain=1.0, gen=gen)
        # Running statistics of raw observations; updated only by the trainer.
        self.register_buffer("obs_mean", torch.zeros(self.obs_dim, dtype=torch.float64))
        self.register_buffer("obs_var", torch.ones(self.obs_dim, dtype=torch.float64))
        self.register_buffer("obs_count", torch.tensor(1e-4, dtype=torch.float64))

    @property
    def device(self) -> torch.device:
        return self.obs_mean.device

    # observation normalization ------------------------------------------------------------

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observations ``(batch, obs_dim)`` to the network's inputs."""
        if not self.normalize_obs:
            return obs
        scaled = (obs - self.obs_mean) / torch.sqrt(self.obs_var + OBS_EPS)
        return scaled.clamp(-OBS_CLIP, OBS_CLIP).float()

    @torch.no_grad()
    def update_obs_stats(self, obs: torch.Tensor) -> None:
        """Merge a batch of raw observations ``(batch, obs_dim)`` into the running statistics."""
        batch = obs.double()
        n = batch.shape[0]
        batch_mean = batch.mean(0)
        batch_var = batch.var(0, unbiased=False)
        total = self.obs_count + n
        delta = batch_mean - self.obs_mean
        m2 = self.obs_var * self.obs_count + batch_var * n + delta**2 * self.obs_count * n / total
        self.obs_mean += delta * n / total
        self.obs_var.copy_(m2 / total)
        self.obs_count.copy_(total)

    # acting and evaluating ------------------------------------------------------------------

    def value(self, obs_n: torch.Tensor) -> torch.Tensor:
        return self.critic(obs_n).squeeze(-1)  # (batch,)

    def sample(
        self, obs_n: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sampled actions, their log-probabilities and the values, for normalized obs."""
        out = self.actor(obs_n)  # (batch, n_actions) logits or (batch, action_dim) means
        if self.discrete:
            actions = torch.multinomial(out.softmax(-1), 1, generator=generator).squeeze(-1)
            log_prob = out.log_softmax(-1).gather(-1, actions[:, None]).squeeze(-1)
        else:
            noise = torch.randn(out.shape, generator=generator, device=out.device)
            actions = out + self.log_std.exp() * noise
            log_prob = self.log_prob_of_mean(out, actions)
        return actions, log_prob, self.value(obs_n)

    def evaluate(
        self, obs_n: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probabilities of ``actions``, entropies and values, each ``(batch,)``."""
        out = self.actor(obs_n)
        if self.discrete:
            log_probs = out.log_softmax(-1)  # (batch, n_actions)
            log_prob = log_probs.gather(-1, actions.long()[:, None]).squeeze(-1)
            entropy = -(log_probs.exp() * log_probs).sum(-1)
        else:
            log_prob = self.log_prob_of_mean(out, actions)
            per_dim = 0.5 + 0.5 * math.log(2 * math.pi) + self.log_std
            entropy = per_dim.sum().expand(out.shape[0])
        return log_prob, entropy, self.value(obs_n)

    def log_prob_of_mean(self, mean: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Box actions: log-probabilities ``(batch,)`` of ``actions`` under the actor's ``mean``."""
        z = (actions - mean) / self.log_std.exp()
        return (-0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def act(self, obs_n: torch.Tensor, deterministic: bool) -> torch.Tensor:
        if deterministic:
            out = self.actor(obs_n)
            return out.argmax(-1) if self.discrete else out
        return self.sample(obs_n)[0]

    def env_actions(self, actions: torch.Tensor) -> np.ndarray:
        """What the envs receive: Discrete indices shifted by the space's start, Box clipped."""
        if self.discrete:
            return (actions + self.action_start).cpu().numpy()
        clipped = torch.clamp(actions, self.action_low, self.action_high)
        return clipped.reshape(-1, *self.action_space.shape).cpu().numpy()

    @torch.no_grad()
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """SB3's signature: actions for a batch (or one unbatched observation); no memory."""
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.shape == self.observation_space.shape
        obs = obs.reshape(1 if single else len(obs), self.obs_dim)
        obs_n = self.normalize(torch.as_tensor(obs, device=self.device))
        actions = self.env_actions(self.act(obs_n, deterministic))
        return (actions[0] if single else actions), state

    # files ----------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Weights, normalization statistics and what is needed to rebuild, in one file."""
        torch.save(
            {
                "format": FILE_FORMAT,
                "format_version": FILE_FORMAT_VERSION,
                "observation_space": describe_space(self.observation_space),
                "action_space": describe_space(self.action_space),
                "net_arch": list(self.net_arch),
                "normalize_obs": self.normalize_obs,
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
            raise ConfigError(
                f"{where} is not a loadable expert=ppo policy ({_first_line(e)})"
            ) from e
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
            normalize_obs=saved["normalize_obs"],
        )
        try:
            policy.load_state_dict(saved["state_dict"])
        except RuntimeError as e:
            raise ConfigError(f"{where} has weights that do not fit ({_first_line(e)})") from e
        return policy.to(device).eval()


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# ----------------------------------------------------------------------------------------------
# GAE
# ----------------------------------------------------------------------------------------------


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_value: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    valid: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(lambda) advantages and value targets for a NEXT_STEP-autoreset rollout.

    Args:
        rewards: ``(n_steps, n_envs)`` reward of step ``t``.
        values: ``(n_steps, n_envs)`` value of the observation step ``t`` acted on.
        next_value: ``(n_envs,)`` value of the observation after the last step.
        terminated: ``(n_steps, n_envs)`` bool, step ``t`` ended its episode in a terminal state.
        truncated: ``(n_steps, n_envs)`` bool, step ``t`` ended its episode at a time limit.
        valid: ``(n_steps, n_envs)`` bool, false for the reset steps that follow an episode end.
        gamma: discount factor.
        gae_lambda: GAE's lambda.

    The observation after step ``t`` is row ``t + 1``'s (after an episode end that row is the
    reset step holding the episode's final observation), so ``values[t + 1]`` is the bootstrap:
    kept for a truncation, dropped for a termination. Episode ends cut the lambda-return chain;
    reset steps get advantage 0.

    Returns:
        ``(advantages, returns)``, each ``(n_steps, n_envs)``; ``returns = advantages + values``.
    """
    next_values = torch.cat([values[1:], next_value[None]])  # (n_steps, n_envs): V(s_{t+1})
    deltas = rewards + gamma * next_values * (~terminated) - values  # (n_steps, n_envs)
    continues = (~(terminated | truncated)).float()  # (n_steps, n_envs)
    advantages = torch.zeros_like(rewards)  # (n_steps, n_envs)
    running = torch.zeros_like(next_value)  # (n_envs,)
    for t in reversed(range(rewards.shape[0])):
        running = (deltas[t] + gamma * gae_lambda * continues[t] * running) * valid[t]
        advantages[t] = running
    return advantages, advantages + values


def clipped_surrogate_loss(
    ratio: torch.Tensor, advantages: torch.Tensor, clip_range: float
) -> torch.Tensor:
    """PPO's clipped policy loss: minus the mean of ``min(r A, clip(r, 1 - eps, 1 + eps) A)``.

    Args:
        ratio: ``(n,)`` probability ratio of the new policy to the one that collected the data.
        advantages: ``(n,)``.
        clip_range: ``eps``.
    """
    clipped = ratio.clamp(1 - clip_range, 1 + clip_range)
    return -torch.min(advantages * ratio, advantages * clipped).mean()


# ----------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------


@dataclass
class Rollout:
    """One rollout, time-major; rows where ``valid`` is false are reset steps."""

    obs: torch.Tensor  # (n_steps, n_envs, obs_dim) normalized, as the policy saw them
    raw_obs: torch.Tensor  # (n_steps + 1, n_envs, obs_dim) raw; the last row follows the rollout
    actions: torch.Tensor  # (n_steps, n_envs) long, or (n_steps, n_envs, action_dim) unclipped
    log_probs: torch.Tensor  # (n_steps, n_envs)
    values: torch.Tensor  # (n_steps, n_envs)
    next_value: torch.Tensor  # (n_envs,) value of raw_obs[-1]
    rewards: torch.Tensor  # (n_steps, n_envs) the training reward (env's, or reward_fn's)
    terminated: torch.Tensor  # (n_steps, n_envs) bool
    truncated: torch.Tensor  # (n_steps, n_envs) bool
    valid: torch.Tensor  # (n_steps, n_envs) bool


class PPOTrainer:
    """The PPO loop, drivable in chunks: ``learn(n)`` trains ``n`` more env steps.

    The env state, the step counter and the schedules (measured against
    ``hyperparameters.total_env_steps``) carry over between calls. With ``reward_fn``, the
    training reward of each valid transition is ``reward_fn(obs, actions, next_obs)`` on raw
    observations and the actions the env executed (Box actions clipped), called once per
    rollout; ``rollout/ep_rew_mean`` still reports the env's own reward.

    Env steps count every ``step`` call of every env, reset steps included (about one per
    episode).
    """

    def __init__(
        self,
        hyperparameters: PPOHyperparameters,
        *,
        env: EnvSpec,
        seed: int,
        device: torch.device | str = "cpu",
        reward_fn: RewardFn | None = None,
        writer: SummaryWriter | None = None,
    ) -> None:
        self.hp = hp = hyperparameters
        self.env = env
        self.device = torch.device(device)
        self.reward_fn = reward_fn
        self.writer = writer
        self.venv = make_vector_env(env, hp.n_envs)
        self.policy = PPOPolicy(
            observation_space=self.venv.single_observation_space,
            action_space=self.venv.single_action_space,
            net_arch=hp.net_arch,
            normalize_obs=hp.normalize_obs,
            seed=seed,
        ).to(self.device)
        self.optimizer = torch.optim.Adam(
            self.policy.parameters(),
            lr=hp.learning_rate,
            eps=1e-5,
            fused=self.device.type in ("cpu", "cuda"),  # one kernel for all parameters
        )
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.num_timesteps = 0
        self.n_updates = 0  # gradient steps
        self._target_timesteps = 0
        self._train_seconds = 0.0

        obs, _ = self.venv.reset(seed=seed)
        self._obs = np.asarray(obs, dtype=np.float32).reshape(hp.n_envs, -1)  # (n_envs, obs_dim)
        if hp.normalize_obs:
            self.policy.update_obs_stats(torch.as_tensor(self._obs, device=self.device))
        self._reset_pending = np.zeros(hp.n_envs, dtype=bool)  # next step() resets these envs
        self._ep_return = np.zeros(hp.n_envs)  # true env reward of the running episodes
        self._ep_length = np.zeros(hp.n_envs, dtype=np.int64)
        self.episode_returns: deque[float] = deque(maxlen=EP_INFO_WINDOW)
        self.episode_lengths: deque[int] = deque(maxlen=EP_INFO_WINDOW)

    @property
    def rollout_size(self) -> int:
        return self.hp.n_envs * self.hp.n_steps

    def learn(self, n_env_steps: int, progress_bar: bool = False) -> None:
        """Train ``n_env_steps`` more env steps, in whole rollouts.

        The targets accumulate over calls, so chunked calls overshoot by less than one rollout
        in total.
        """
        self._target_timesteps += n_env_steps
        n_rollouts = max(
            0, math.ceil((self._target_timesteps - self.num_timesteps) / self.rollout_size)
        )
        bar = tqdm(
            total=n_rollouts * self.rollout_size,
            desc="PPO",
            unit="step",
            disable=not progress_bar,
            leave=False,
        )
        try:
            while self.num_timesteps < self._target_timesteps:
                started = time.perf_counter()
                rollout = self.collect_rollout()
                stats = self.update(rollout)
                self._train_seconds += time.perf_counter() - started
                bar.update(self.rollout_size)
                self._log(stats)
        finally:
            bar.close()

    def collect_rollout(self) -> Rollout:
        """Step every env ``n_steps`` times with the current policy."""
        hp, dev, policy = self.hp, self.device, self.policy
        n_steps, n_envs = hp.n_steps, hp.n_envs
        action_shape = () if policy.discrete else (int(np.prod(policy.action_space.shape)),)

        # collect rollout
        raw_obs = np.zeros((n_steps + 1, n_envs, policy.obs_dim), dtype=np.float32)
        obs = torch.zeros((n_steps, n_envs, policy.obs_dim), device=dev)
        actions = torch.zeros(
            (n_steps, n_envs, *action_shape),  # (n_steps, n_envs[, action_dim])
            dtype=torch.long if policy.discrete else torch.float32,
            device=dev,
        )
        log_probs = torch.zeros((n_steps, n_envs), device=dev)
        values = torch.zeros((n_steps, n_envs), device=dev)
        env_rewards = np.zeros((n_steps, n_envs), dtype=np.float32)
        terminated = np.zeros((n_steps, n_envs), dtype=bool)
        truncated = np.zeros((n_steps, n_envs), dtype=bool)
        valid = np.zeros((n_steps, n_envs), dtype=bool)
        exec_actions = np.zeros((n_steps, n_envs, *action_shape), dtype=np.float32)

        with torch.no_grad():
            for t in range(n_steps):
                raw_obs[t] = self._obs
                valid[t] = ~self._reset_pending
                obs[t] = policy.normalize(torch.as_tensor(self._obs, device=dev))
                actions[t], log_probs[t], values[t] = policy.sample(obs[t], self.generator)
                env_action = policy.env_actions(actions[t])
                next_obs, reward, term, trunc, _ = self.venv.step(env_action)
                self._obs = np.asarray(next_obs, dtype=np.float32).reshape(n_envs, -1)
                env_rewards[t], terminated[t], truncated[t] = reward, term, trunc
                exec_actions[t] = env_action.reshape(n_envs, *action_shape)
                self._track_episodes(reward, valid[t], term | trunc)
                self._reset_pending = term | trunc
            raw_obs[n_steps] = self._obs
            next_value = policy.value(policy.normalize(torch.as_tensor(self._obs, device=dev)))
        self.num_timesteps += n_steps * n_envs
        if hp.normalize_obs:  # the next rollout sees the updated statistics
            policy.update_obs_stats(torch.as_tensor(raw_obs[:n_steps], device=dev).flatten(0, 1))

        valid_t = torch.as_tensor(valid, device=dev)
        raw_obs_t = torch.as_tensor(raw_obs, device=dev)
        if self.reward_fn is None:
            rewards = torch.as_tensor(env_rewards, device=dev)
        else:
            rewards = torch.zeros((n_steps, n_envs), device=dev)  # (n_steps, n_envs)
            with torch.no_grad():
                executed = torch.as_tensor(exec_actions, device=dev)[valid_t]
                if policy.discrete:
                    executed = executed.long()
                rewards[valid_t] = self.reward_fn(
                    raw_obs_t[:-1][valid_t], executed, raw_obs_t[1:][valid_t]
                ).float()
        return Rollout(
            obs=obs,
            raw_obs=raw_obs_t,
            actions=actions,
            log_probs=log_probs,
            values=values,
            next_value=next_value,
            rewards=rewards,
            terminated=torch.as_tensor(terminated, device=dev),
            truncated=torch.as_tensor(truncated, device=dev),
            valid=valid_t,
        )

    def _track_episodes(self, reward: np.ndarray, valid: np.ndarray, done: np.ndarray) -> None:
        self._ep_return += reward * valid
        self._ep_length += valid
        if done.any():
            self.episode_returns.extend(self._ep_return[done].tolist())
            self.episode_lengths.extend(self._ep_length[done].tolist())
            self._ep_return[done] = 0.0
            self._ep_length[done] = 0

    def update(self, rollout: Rollout) -> dict[str, float]:
        """GAE, then ``n_epochs`` of shuffled minibatches over the rollout's valid steps."""
        hp, policy = self.hp, self.policy
        learning_rate, clip_range = hp.schedule(self.num_timesteps)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate

        # compute GAE
        advantages, returns = compute_gae(
            rollout.rewards,
            rollout.values,
            rollout.next_value,
            rollout.terminated,
            rollout.truncated,
            rollout.valid,
            hp.gamma,
            hp.gae_lambda,
        )

        # update
        keep = rollout.valid.flatten()  # (n_steps * n_envs,)
        b_obs = rollout.obs.flatten(0, 1)[keep]  # (n, obs_dim)
        b_actions = rollout.actions.flatten(0, 1)[keep]  # (n,) or (n, action_dim)
        b_log_probs = rollout.log_probs.flatten()[keep]  # (n,)
        b_values = rollout.values.flatten()[keep]  # (n,)
        b_advantages = advantages.flatten()[keep]  # (n,)
        b_returns = returns.flatten()[keep]  # (n,)
        n = b_obs.shape[0]
        n_minibatches = max(1, round(n / hp.batch_size))
        n_epochs = hp.n_epochs if n > 0 else 0  # a rollout of reset steps only teaches nothing
        pg_losses, value_losses, entropy_losses, approx_kls, clip_fractions = [], [], [], [], []
        loss = torch.tensor(float("nan"))
        for _ in range(n_epochs):
            order = torch.randperm(n, generator=self.generator, device=self.device)
            for idx in order.tensor_split(n_minibatches):
                log_prob, entropy, value = policy.evaluate(b_obs[idx], b_actions[idx])
                adv = b_advantages[idx]
                if len(idx) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                log_ratio = log_prob - b_log_probs[idx]
                ratio = log_ratio.exp()
                pg_loss = clipped_surrogate_loss(ratio, adv, clip_range)
                if hp.clip_range_vf is not None:
                    old = b_values[idx]
                    value = old + (value - old).clamp(-hp.clip_range_vf, hp.clip_range_vf)
                value_loss = F.mse_loss(value, b_returns[idx])
                entropy_loss = -entropy.mean()
                loss = pg_loss + hp.ent_coef * entropy_loss + hp.vf_coef * value_loss

                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(policy.parameters(), hp.max_grad_norm)
                self.optimizer.step()
                self.n_updates += 1

                with torch.no_grad():
                    pg_losses.append(pg_loss.detach())
                    value_losses.append(value_loss.detach())
                    entropy_losses.append(entropy_loss.detach())
                    approx_kls.append(((ratio - 1) - log_ratio).mean())
                    clip_fractions.append(((ratio - 1).abs() > clip_range).float().mean())

        return {
            "train/policy_gradient_loss": _mean(pg_losses),
            "train/value_loss": _mean(value_losses),
            "train/entropy_loss": _mean(entropy_losses),
            "train/approx_kl": _mean(approx_kls),
            "train/clip_fraction": _mean(clip_fractions),
            "train/explained_variance": explained_variance(b_values, b_returns),
            "train/learning_rate": learning_rate,
            "train/clip_range": clip_range,
            "train/loss": loss.item(),
        }

    def _log(self, stats: dict[str, float]) -> None:
        if self.episode_returns:
            stats["rollout/ep_rew_mean"] = float(np.mean(self.episode_returns))
            stats["rollout/ep_len_mean"] = float(np.mean(self.episode_lengths))
        stats["time/fps"] = int(self.fps)
        log.debug("PPO at %d env steps: %s", self.num_timesteps, stats)
        if self.writer is not None:
            for tag, value in stats.items():
                self.writer.add_scalar(tag, value, self.num_timesteps)

    @property
    def fps(self) -> float:
        """Env steps per second of training (collection and updates)."""
        return self.num_timesteps / max(self._train_seconds, 1e-9)

    def close(self) -> None:
        self.venv.close()


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """``1 - Var(target - predicted) / Var(target)``: 1 is perfect, 0 no better than a constant."""
    if target.numel() < 2 or target.var() == 0:
        return float("nan")
    return (1 - (target - predicted).var() / target.var()).item()


def _mean(values: list[torch.Tensor]) -> float:
    return torch.stack(values).mean().item() if values else float("nan")


# ----------------------------------------------------------------------------------------------
# The expert
# ----------------------------------------------------------------------------------------------


class PPOExpert:
    """``expert=ppo``: trains our PPO; same interface and config keys as ``SB3PPOExpert``."""

    file_suffix = ".pt"

    def __init__(
        self,
        *,
        total_env_steps: int,
        n_envs: int,
        n_steps: int,
        batch_size: int,
        n_epochs: int,
        gamma: float,
        gae_lambda: float,
        learning_rate: float,
        clip_range: float,
        linear_annealing: bool,
        ent_coef: float,
        vf_coef: float,
        max_grad_norm: float,
        net_arch: list[int],
        normalize_obs: bool = False,
        path: str | None = None,
    ) -> None:
        self.hyperparameters = PPOHyperparameters(
            total_env_steps=total_env_steps,
            n_envs=n_envs,
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            learning_rate=learning_rate,
            clip_range=clip_range,
            linear_annealing=linear_annealing,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            net_arch=tuple(net_arch),
            normalize_obs=normalize_obs,
        )
        self.total_env_steps = total_env_steps
        self.path = path

    def train(self, env: EnvSpec, *, seed: int, tb_dir: Path, device: torch.device) -> PPOPolicy:
        """Train for ``total_env_steps`` env steps, logging SB3's tags to ``tb_dir``."""
        writer = SummaryWriter(log_dir=str(tb_dir))
        trainer = PPOTrainer(self.hyperparameters, env=env, seed=seed, device=device, writer=writer)
        try:
            trainer.learn(self.total_env_steps, progress_bar=True)
        finally:
            trainer.close()
            writer.close()
        last = np.mean(trainer.episode_returns) if trainer.episode_returns else float("nan")
        log.info(
            "PPO: %d env steps, %d gradient steps, %.0f steps/s; last %d episodes return %.1f",
            trainer.num_timesteps,
            trainer.n_updates,
            trainer.fps,
            len(trainer.episode_returns),
            last,
        )
        return trainer.policy.eval()

    def save(self, policy: PPOPolicy, path: Path) -> None:
        policy.save(path)

    def load(
        self, path: str | Path, env: EnvSpec, device: torch.device, key: str = "expert.path"
    ) -> PPOPolicy:
        """Load a ``.pt`` written by ``save`` and check its spaces against ``env``."""
        return PPOPolicy.load(path, env, device, key=key)
