"""Our own PPO's trainer: Proximal Policy Optimization (Schulman et al. 2017, arXiv:1707.06347).

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
frozen everywhere else: saved with the weights and applied by ``predict``. Reward normalization
(``normalize_reward``, SB3's ``VecNormalize(norm_reward=True)``) divides the training reward by
the running standard deviation of the discounted return (clipped to +-10); it only shapes
training, so nothing of it is needed to act.

``PPOTrainer`` owns the loop and can be driven in chunks (``learn(n_env_steps)``) with an
optional ``reward_fn`` that replaces the env reward for training (GAIL's generator);
``il_lab.experts.ppo.PPOExpert`` is the pipeline's expert built on it. ``state_dict`` and
``load_state_dict`` carry everything but the envs' own state, for checkpoints.
"""

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from il_lab.config.schema import (
    Activation,
    HiddenSizes,
    NonEmpty,
    NonNegative,
    Null,
    Positive,
    Size,
    Unit,
    check_fields,
)
from il_lab.envs import EnvSpec
from il_lab.errors import ConfigError
from il_lab.networks.normalization import RunningMeanStd
from il_lab.rl.losses import clipped_surrogate_loss, compute_gae, explained_variance
from il_lab.rl.policy import PPOPolicy

log = logging.getLogger(__name__)

# reward_fn(obs (n, obs_dim), actions (n,) or (n, action_dim), next_obs (n, obs_dim),
#           terminated (n,) bool: the step ended its episode in a terminal state, not a time limit)
#   -> (n,)
RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

REWARD_CLIP = 10.0  # normalized rewards are clipped to [-REWARD_CLIP, REWARD_CLIP], as SB3 does
EP_INFO_WINDOW = 100  # rollout/ep_rew_mean averages the last 100 episodes, as SB3 does


@dataclass(frozen=True, kw_only=True)
class PPOHyperparameters:
    """PPO's hyperparameters, with SB3's names and meanings: the one place they are declared.

    ``n_envs * n_steps`` env steps make one rollout; ``batch_size`` is the minibatch size;
    ``net_arch`` gives the hidden sizes of the actor, and of the critic (a separate MLP) unless
    ``vf_net_arch`` is set; ``activation``, ``ortho_init`` and ``log_std_init`` are SB3's
    ``policy_kwargs`` of the same names. The experts (``PPOExpert``, ``SB3PPOExpert``) extend
    this class, and GAIL's generator is one, so every PPO config node is checked against it.
    """

    total_env_steps: Size
    n_envs: Size
    n_steps: Size
    batch_size: Size
    n_epochs: Size
    gamma: Annotated[float, Unit]
    gae_lambda: Annotated[float, Unit]
    learning_rate: Annotated[float, Positive]
    clip_range: Annotated[float, Positive]
    linear_annealing: bool
    ent_coef: Annotated[float, NonNegative]
    vf_coef: Annotated[float, NonNegative]
    max_grad_norm: Annotated[float, Positive]
    net_arch: HiddenSizes
    vf_net_arch: Annotated[list[int] | None, NonEmpty, Null("as net_arch")] = None
    normalize_obs: bool = False
    normalize_reward: bool = False
    activation: Activation = "tanh"
    ortho_init: bool = True
    log_std_init: float = 0.0
    clip_range_vf: Annotated[float | None, Positive, Null("the value loss is not clipped")] = None

    def __post_init__(self) -> None:
        check_fields(self)
        object.__setattr__(self, "net_arch", tuple(self.net_arch))
        if self.vf_net_arch is not None:
            object.__setattr__(self, "vf_net_arch", tuple(self.vf_net_arch))
        self.check_config(dataclasses.asdict(self), "")

    @staticmethod
    def check_config(values: Mapping, prefix: str) -> None:
        """A minibatch must fit in one rollout of ``n_envs x n_steps`` transitions."""
        rollout = values["n_envs"] * values["n_steps"]
        if values["batch_size"] > rollout:
            raise ConfigError(
                f"{prefix}batch_size={values['batch_size']} is not allowed; allowed: an integer "
                f"<= {prefix}n_envs x {prefix}n_steps = {rollout} (one rollout)"
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
    training reward of each valid transition is ``reward_fn(obs, actions, next_obs, terminated)``
    on raw observations, the actions the env executed (Box actions clipped) and whether the
    step ended its episode in a terminal state (time-limit truncations are not terminal),
    called once per rollout; ``rollout/ep_rew_mean`` still reports the env's own reward.

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
        self.progress: tqdm | None = None  # a bar its caller owns, advanced by every env step
        self.venv = make_vector_env(env, hp.n_envs)
        self.policy = PPOPolicy(
            observation_space=self.venv.single_observation_space,
            action_space=self.venv.single_action_space,
            net_arch=hp.net_arch,
            vf_net_arch=hp.vf_net_arch,
            normalize_obs=hp.normalize_obs,
            activation=hp.activation,
            ortho_init=hp.ortho_init,
            log_std_init=hp.log_std_init,
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
        # Reward normalization: the running discounted return of each env and its statistics.
        self.return_rms = RunningMeanStd()
        self._discounted_return = np.zeros(hp.n_envs)
        self.episode_returns: deque[float] = deque(maxlen=EP_INFO_WINDOW)
        self.episode_lengths: deque[int] = deque(maxlen=EP_INFO_WINDOW)

    @property
    def target_env_steps(self) -> int:
        """The env steps all ``learn`` calls so far have asked for."""
        return self._target_timesteps

    @property
    def rollout_size(self) -> int:
        return self.hp.n_envs * self.hp.n_steps

    def learn(self, n_env_steps: int) -> None:
        """Train ``n_env_steps`` more env steps, in whole rollouts.

        The targets accumulate over calls, so chunked calls overshoot by less than one rollout
        in total.
        """
        self._target_timesteps += n_env_steps
        while self.num_timesteps < self._target_timesteps:
            started = time.perf_counter()
            rollout = self.collect_rollout()
            stats = self.update(rollout)
            self._train_seconds += time.perf_counter() - started
            if self.progress is not None:
                self.progress.update(self.rollout_size)
            self._log(stats)

    def collect_rollout(self) -> Rollout:
        """Step every env ``n_steps`` times with the current policy."""
        hp, dev, policy = self.hp, self.device, self.policy
        n_steps, n_envs = hp.n_steps, hp.n_envs
        action_shape = () if policy.discrete else (int(np.prod(policy.action_space.shape)),)
        done = np.zeros((n_steps, n_envs), dtype=bool)

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
                done[t] = term | trunc
                self._track_episodes(reward, valid[t], done[t])
                self._reset_pending = done[t]
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
                    raw_obs_t[:-1][valid_t],
                    executed,
                    raw_obs_t[1:][valid_t],
                    torch.as_tensor(terminated, device=dev)[valid_t],
                ).float()
        if hp.normalize_reward:
            rewards = self._normalize_rewards(rewards, valid, done)
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

    def _normalize_rewards(
        self, rewards: torch.Tensor, valid: np.ndarray, done: np.ndarray
    ) -> torch.Tensor:
        """Divide by the running std of the discounted return (SB3's ``VecNormalize``)."""
        raw = rewards.cpu().numpy().astype(np.float64)  # (n_steps, n_envs)
        returns = np.zeros_like(raw)
        for t in range(raw.shape[0]):
            self._discounted_return = self._discounted_return * self.hp.gamma + raw[t] * valid[t]
            returns[t] = self._discounted_return
            self._discounted_return[done[t]] = 0.0
        self.return_rms.update(torch.as_tensor(returns[valid]))
        return self.return_rms.scale(rewards, REWARD_CLIP)

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

    # checkpoints -------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything that continues training except the envs' own state (they restart)."""
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "return_rms": self.return_rms.state_dict(),
            "num_timesteps": self.num_timesteps,
            "n_updates": self.n_updates,
            "target_timesteps": self._target_timesteps,
            "train_seconds": self._train_seconds,
            "episode_returns": list(self.episode_returns),
            "episode_lengths": list(self.episode_lengths),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.return_rms.load_state_dict(state["return_rms"])
        self.num_timesteps = state["num_timesteps"]
        self.n_updates = state["n_updates"]
        self._target_timesteps = state["target_timesteps"]
        self._train_seconds = state["train_seconds"]
        self.episode_returns.extend(state["episode_returns"])
        self.episode_lengths.extend(state["episode_lengths"])


def _mean(values: list[torch.Tensor]) -> float:
    return torch.stack(values).mean().item() if values else float("nan")
