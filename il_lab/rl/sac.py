"""Our own SAC: Soft Actor-Critic (Haarnoja et al. 2018, arXiv:1801.01290 and arXiv:1812.05905).

Off-policy maximum-entropy actor-critic for Box actions. Every vector step goes into a replay
buffer; every ``train_freq`` vector steps, once ``learning_starts`` env steps are collected,
updates run until ``n_updates = updates_per_step * (env steps - learning_starts)``. An update
samples ``batch_size`` transitions and takes one Adam step on three losses, as in the paper's
algorithm (each loss reaches only its own parameters):
  - critics, towards ``r + gamma (1 - terminated) (min_k Q'_k(s', a') - alpha log pi(a'|s'))``
    with ``a' ~ pi(s')`` and ``Q'`` the Polyak-averaged target critics (``soft_td_target``);
  - actor: ``alpha log pi(a|s) - min_k Q_k(s, a)`` with ``a ~ pi(s)`` reparameterized;
  - temperature (``ent_coef="auto"``): ``log alpha``, so that the entropy tracks its target.
The actor is a squashed Gaussian, ``a = tanh(u)``, ``u ~ N(mu(s), sigma(s))``, scaled to the
action bounds; log-probabilities, the critics' action inputs and ``target_entropy`` live in the
``[-1, 1]`` space, as in SB3. The critics are one module whose layers are batched matmuls over
weights ``(n_critics, in, out)``. Hyperparameters carry SB3's names; ``updates_per_step`` is the
update-to-data ratio (SB3's ``gradient_steps`` per env step).

Episode ends as in ``il_lab.rl.trainer``: gymnasium 1.x vector envs reset on the *next* step, so
the step that ends an episode returns the final observation, stored as its ``next_obs``, and the
reset step after it is not stored: a truncation bootstraps from the final observation, a
termination does not (``tests/test_sac.py``). ``reward_fn`` (adversarial imitation) rewards each
sampled batch at update time, never stored; ``actor_regularizer`` adds a term to the actor's loss
(DAC's BC term). TensorBoard: ``SAC_TAGS``, x-axis env steps.
"""

import copy
import logging
import math
import pickle
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch
from gymnasium.utils import EzPickle
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from il_lab.config import schema
from il_lab.envs import EnvSpec
from il_lab.rl.sac_networks import CriticEnsemble, SACPolicy
from il_lab.rl.trainer import RewardFn, make_vector_env

# q (batch,) = min_k Q_k(s, a ~ pi(s)), detached -> (a scalar added to the actor's loss, the tags
# to log with the update's)
ActorRegularizer = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]

log = logging.getLogger(__name__)

EP_INFO_WINDOW = 100  # rollout/ep_rew_mean averages the last 100 episodes, as SB3 does
LOG_INTERVAL = 1000  # env steps between TensorBoard points
SAC_TAGS = {  # every tag the trainer logs, SB3's names
    "rollout/ep_rew_mean": "mean env return of the last 100 episodes",
    "rollout/ep_len_mean": "their mean length, in env steps",
    "time/fps": "env steps per second of training (collection and updates)",
    "train/actor_loss": "alpha log pi(a|s) - min_k Q_k(s, a), of the last update",
    "train/critic_loss": "half the sum over critics of the squared TD error, of the last update",
    "train/ent_coef": "the entropy coefficient alpha",
    "train/ent_coef_loss": "-log alpha (log pi + target_entropy); only when alpha is learned",
}
# what state_dict saves besides the optimizer, buffer, generator and envs
NETWORKS = ("policy", "critic", "critic_target")
COUNTERS = ("num_timesteps", "n_updates", "_target_timesteps", "_train_seconds")
ENV_PROGRESS = ("_obs", "_reset_pending", "_ep_return", "_ep_length")


def parse_ent_coef(value: Any) -> tuple[bool, float] | None:
    """``(learned, initial alpha)`` of ``auto``, ``auto_<init>`` or a number >= 0; else None."""
    if isinstance(value, str) and (value == "auto" or value.startswith("auto_")):
        try:
            init = float(value.removeprefix("auto").removeprefix("_") or 1.0)
        except ValueError:
            return None
        return (True, init) if init > 0 else None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return (False, float(value)) if number and value >= 0 else None


ENT_COEF = schema.Check(lambda v: parse_ent_coef(v) is not None, "(>= 0), auto or auto_<init > 0>")


@dataclass(frozen=True, kw_only=True)
class SACHyperparameters:
    """SAC's hyperparameters: SB3's names and defaults, and ``updates_per_step``.

    ``train_freq`` counts vector steps; the buffer holds ``min(buffer_size, total_env_steps)``
    transitions; ``ent_coef`` is ``auto`` (learned from 1), ``auto_<init>`` or a fixed number.
    """

    total_env_steps: schema.Size
    n_envs: schema.Size = 1
    buffer_size: schema.Size = 1_000_000
    learning_starts: Annotated[int, schema.AtLeast(0)] = 100
    batch_size: schema.Size = 256
    tau: Annotated[float, schema.Range(low=0, high=1, low_open=True)] = 0.005
    gamma: Annotated[float, schema.Unit] = 0.99
    learning_rate: Annotated[float, schema.Positive] = 3e-4
    train_freq: schema.Size = 1
    updates_per_step: Annotated[float, schema.Positive] = 1.0
    ent_coef: Annotated[float | str, ENT_COEF] = "auto"
    target_entropy: Annotated[float | None, schema.Null("-action_dim")] = None
    net_arch: schema.HiddenSizes = (256, 256)
    activation: schema.Activation = "relu"

    def __post_init__(self) -> None:
        schema.check_fields(self)
        object.__setattr__(self, "net_arch", tuple(self.net_arch))


def soft_td_target(
    rews: torch.Tensor,  # (batch,)
    terminated: torch.Tensor,  # (batch,) bool; false at the last step of a truncated episode
    next_q: torch.Tensor,  # (n_critics, batch): the target critics at (s', a'), a' ~ pi(s')
    next_log_prob: torch.Tensor,  # (batch,) log pi(a' | s')
    ent_coef: torch.Tensor | float,
    gamma: float,
) -> torch.Tensor:
    """The critics' target ``r + gamma (1 - terminated) (min_k Q'_k - alpha log pi)``."""
    soft_value = next_q.min(0).values - ent_coef * next_log_prob  # (batch,)
    return rews + gamma * (~terminated) * soft_value


class ReplayBuffer:
    """The last ``capacity`` transitions in a ring; ``acts`` in ``[-1, 1]``, ``rews`` the env's."""

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, device: torch.device) -> None:
        self.capacity, self.pos, self.size = capacity, 0, 0
        self.data = {
            "obs": torch.zeros((capacity, obs_dim), device=device),  # (capacity, obs_dim)
            "acts": torch.zeros((capacity, action_dim), device=device),  # (capacity, action_dim)
            "rews": torch.zeros(capacity, device=device),  # (capacity,)
            "next_obs": torch.zeros((capacity, obs_dim), device=device),  # final obs at an end
            "terminated": torch.zeros(capacity, dtype=torch.bool, device=device),  # (capacity,)
        }

    def add(self, rows: dict[str, np.ndarray]) -> None:
        """Append ``k`` rows of every field."""
        idx = (self.pos + torch.arange(len(rows["obs"]))) % self.capacity  # (k,)
        for key, column in self.data.items():
            column[idx] = torch.as_tensor(rows[key], device=column.device, dtype=column.dtype)
        self.pos = (self.pos + len(idx)) % self.capacity
        self.size = min(self.size + len(idx), self.capacity)

    def recent(self, n: int | None = None) -> dict[str, torch.Tensor]:
        """The last ``n`` transitions added (all held if ``n`` is None), oldest first."""
        n = self.size if n is None else min(n, self.size)
        idx = (self.pos - n + torch.arange(n, device=self.data["obs"].device)) % self.capacity
        return {key: column[idx] for key, column in self.data.items()}

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(self.size, (batch_size,), generator=generator, device=generator.device)
        return {key: column[idx] for key, column in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"pos": self.pos, **{k: v[: self.size].clone() for k, v in self.data.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos, self.size = state["pos"], len(state["obs"])
        for key, column in self.data.items():
            column[: self.size] = state[key]


class SACTrainer:
    """The SAC loop, drivable in chunks: ``learn(n)`` trains ``n`` more env steps.

    Env steps count every ``step`` call of every env, reset steps included (one per episode).
    ``reward_fn(obs, acts, next_obs, terminated) -> (batch,)`` receives raw observations and
    actions in the env's bounds, and replaces the env reward in every sampled batch.
    ``actor_regularizer(q)`` receives each update's ``min_k Q_k(s, pi(s))`` (detached) and returns
    a term added to the actor's loss and the tags to log with it.
    """

    def __init__(
        self,
        hyperparameters: SACHyperparameters,
        *,
        env: EnvSpec,
        seed: int,
        device: torch.device | str = "cpu",
        writer: SummaryWriter | None = None,
        reward_fn: RewardFn | None = None,
        actor_regularizer: ActorRegularizer | None = None,
    ) -> None:
        self.hp = hp = hyperparameters
        self.device, self.writer, self.reward_fn = torch.device(device), writer, reward_fn
        self.actor_regularizer = actor_regularizer
        self.progress: tqdm | None = None  # a bar its caller owns, advanced by every env step
        self.venv = make_vector_env(env, hp.n_envs)
        self.policy = SACPolicy(
            observation_space=self.venv.single_observation_space,
            action_space=self.venv.single_action_space,
            net_arch=hp.net_arch,
            activation=hp.activation,
            seed=seed,
        ).to(self.device)
        obs_dim, action_dim = self.policy.obs_dim, self.policy.action_dim
        self.critic = CriticEnsemble(obs_dim + action_dim, hp.net_arch, hp.activation, seed + 1)
        self.critic = self.critic.to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.learn_ent_coef, init = parse_ent_coef(hp.ent_coef)
        log_init = math.log(init) if init > 0 else -math.inf  # a fixed alpha may be 0
        self.log_ent_coef = torch.tensor(log_init, device=self.device)
        self.log_ent_coef.requires_grad_(self.learn_ent_coef)
        self.target_entropy = -action_dim if hp.target_entropy is None else hp.target_entropy
        self._actor_params = list(self.policy.parameters())
        params = self._actor_params + list(self.critic.parameters())
        params += [self.log_ent_coef] if self.learn_ent_coef else []
        fused = self.device.type in ("cpu", "cuda")  # one kernel for all parameters
        self.optimizer = torch.optim.Adam(params, lr=hp.learning_rate, fused=fused)
        capacity = min(hp.buffer_size, hp.total_env_steps)
        self.buffer = ReplayBuffer(capacity, obs_dim, action_dim, self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.num_timesteps = self.n_updates = self._target_timesteps = 0
        self._train_seconds = 0.0
        self._stats: dict[str, torch.Tensor] = {}  # the last update's, logged every LOG_INTERVAL

        obs, _ = self.venv.reset(seed=seed)
        self._obs = np.asarray(obs, dtype=np.float32).reshape(hp.n_envs, -1)  # (n_envs, obs_dim)
        self._reset_pending = np.zeros(hp.n_envs, dtype=bool)  # next step() resets these envs
        self._ep_return = np.zeros(hp.n_envs)  # env reward of the running episodes
        self._ep_length = np.zeros(hp.n_envs, dtype=np.int64)
        self.episode_returns: deque[float] = deque(maxlen=EP_INFO_WINDOW)
        self.episode_lengths: deque[int] = deque(maxlen=EP_INFO_WINDOW)

    def learn(self, n_env_steps: int) -> None:
        """Train ``n_env_steps`` more env steps, in whole vector steps (the targets accumulate)."""
        hp = self.hp
        self._target_timesteps += n_env_steps
        while self.num_timesteps < self._target_timesteps:
            started = time.perf_counter()
            # collect
            self.collect_step()
            # update
            if (self.num_timesteps // hp.n_envs) % hp.train_freq == 0:
                due = int(hp.updates_per_step * (self.num_timesteps - hp.learning_starts))
                for _ in range(due - self.n_updates):
                    self._stats = self.update()
            self._train_seconds += time.perf_counter() - started
            if self.progress is not None:
                self.progress.update(hp.n_envs)
            if self.num_timesteps % LOG_INTERVAL < hp.n_envs:
                self._log()

    def collect_step(self) -> None:
        """Step every env once; store the transitions of all but the reset steps."""
        hp, gen, shape = self.hp, self.generator, (self.hp.n_envs, self.policy.action_dim)
        obs = torch.as_tensor(self._obs, device=self.device)  # (n_envs, obs_dim)
        if self.num_timesteps < hp.learning_starts:  # uniform random actions, as SB3 warms up
            acts = torch.rand(shape, generator=gen, device=self.device) * 2 - 1
        else:
            with torch.no_grad():
                acts, _ = self.policy.sample(obs, gen)  # (n_envs, action_dim) in [-1, 1]
        env_acts = self.policy.to_env(acts).cpu().numpy()  # (n_envs, action_dim)
        next_obs, rews, terminated, truncated, _ = self.venv.step(
            env_acts.reshape(hp.n_envs, *self.policy.action_space.shape)
        )
        next_obs = np.asarray(next_obs, dtype=np.float32).reshape(hp.n_envs, -1)  # final at an end

        # store: not the reset steps, which only carry a final observation to a first one
        valid = ~self._reset_pending  # (n_envs,)
        rows = dict(obs=self._obs, acts=acts.cpu().numpy(), rews=rews, next_obs=next_obs)
        self.buffer.add({k: v[valid] for k, v in (rows | {"terminated": terminated}).items()})

        # episode statistics (env reward)
        done = terminated | truncated
        self._ep_return += rews * valid
        self._ep_length += valid
        self.episode_returns.extend(self._ep_return[done].tolist())
        self.episode_lengths.extend(self._ep_length[done].tolist())
        self._ep_return[done], self._ep_length[done] = 0.0, 0
        self._obs, self._reset_pending = next_obs, done
        self.num_timesteps += hp.n_envs

    def update(self) -> dict[str, torch.Tensor]:
        """One Adam step on the critic, actor and temperature losses, then the target critics."""
        batch = self.buffer.sample(self.hp.batch_size, self.generator)
        obs, acts = batch["obs"], batch["acts"]  # (batch, obs_dim), (batch, action_dim)
        ent_coef = self.log_ent_coef.detach().exp()

        # update critics: their loss, towards the soft TD target
        target = self.td_target(batch, ent_coef)  # (batch,)
        q = self.critic(obs, acts)  # (n_critics, batch)
        critic_loss = 0.5 * ((q - target) ** 2).mean(1).sum()  # SB3's: half the sum of the MSEs

        # update the actor: its loss, reparameterized actions scored by the critics
        acts_pi, log_prob = self.policy.sample(obs, self.generator)  # (batch, action_dim), (batch,)
        q_pi = self.critic(obs, acts_pi).min(0).values  # (batch,)
        actor_loss = (ent_coef * log_prob - q_pi).mean()
        stats = {"train/actor_loss": actor_loss, "train/critic_loss": critic_loss}
        if self.actor_regularizer is not None:
            extra, extra_stats = self.actor_regularizer(q_pi.detach())
            actor_loss = actor_loss + extra
            stats |= extra_stats
        loss, stats["train/ent_coef"] = critic_loss, ent_coef

        # update the temperature: its loss raises alpha while the entropy is below its target
        if self.learn_ent_coef:
            ent_coef_loss = -(self.log_ent_coef * (log_prob.detach() + self.target_entropy)).mean()
            loss, stats["train/ent_coef_loss"] = loss + ent_coef_loss, ent_coef_loss

        # one Adam step on the three losses, each reaching only its own parameters
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # the critics' and the temperature's gradients
        actor_loss.backward(inputs=self._actor_params)  # the actor's; none into the critics
        self.optimizer.step()

        # update target critics: theta' <- (1 - tau) theta' + tau theta
        with torch.no_grad():
            for target_param, param in zip(
                self.critic_target.parameters(), self.critic.parameters(), strict=True
            ):
                target_param.lerp_(param, self.hp.tau)
        self.n_updates += 1
        return {tag: value.detach() for tag, value in stats.items()}

    @torch.no_grad()
    def td_target(self, batch: dict[str, torch.Tensor], ent_coef: torch.Tensor) -> torch.Tensor:
        """Soft TD targets ``(batch,)`` of a batch, rewarded by ``reward_fn`` if there is one."""
        next_obs, terminated, rews = batch["next_obs"], batch["terminated"], batch["rews"]
        if self.reward_fn is not None:
            env_acts = self.policy.to_env(batch["acts"])
            rews = self.reward_fn(batch["obs"], env_acts, next_obs, terminated).float().flatten()
        next_acts, next_log_prob = self.policy.sample(next_obs, self.generator)
        next_q = self.critic_target(next_obs, next_acts)  # (n_critics, batch)
        return soft_td_target(rews, terminated, next_q, next_log_prob, ent_coef, self.hp.gamma)

    def _log(self) -> None:
        stats = {tag: value.item() for tag, value in self._stats.items()}
        if self.episode_returns:
            stats["rollout/ep_rew_mean"] = float(np.mean(self.episode_returns))
            stats["rollout/ep_len_mean"] = float(np.mean(self.episode_lengths))
        stats["time/fps"] = int(self.fps)
        log.debug("SAC at %d env steps: %s", self.num_timesteps, stats)
        for tag, value in stats.items() if self.writer is not None else ():
            self.writer.add_scalar(tag, value, self.num_timesteps)

    @property
    def fps(self) -> float:
        """Env steps per second of training so far (collection and updates)."""
        return self.num_timesteps / max(self._train_seconds, 1e-9)

    def close(self) -> None:
        self.venv.close()

    # checkpoints -------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything that continues training; the envs mid-episode where they pickle their
        attributes (classic control), else (MuJoCo, Box2D: ``EzPickle``) they restart."""
        envs = getattr(self.venv, "envs", None)  # a SyncVectorEnv's
        picklable = envs is not None and not any(isinstance(e.unwrapped, EzPickle) for e in envs)
        return {
            "networks": {k: getattr(self, k).state_dict() for k in NETWORKS},
            "log_ent_coef": self.log_ent_coef.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
            "buffer": self.buffer.state_dict(),
            "generator": self.generator.get_state(),
            "envs": [pickle.dumps(e) for e in envs] if picklable else None,
            "env_progress": {k: getattr(self, k).copy() for k in ENV_PROGRESS},
            "counters": {k: getattr(self, k) for k in COUNTERS},
            "episodes": (list(self.episode_returns), list(self.episode_lengths)),
            "stats": dict(self._stats),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, saved in state["networks"].items():
            getattr(self, key).load_state_dict(saved)
        with torch.no_grad():
            self.log_ent_coef.copy_(state["log_ent_coef"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.generator.set_state(state["generator"])
        if state["envs"] is not None:
            for env in self.venv.envs:
                env.close()
            self.venv.envs = [pickle.loads(e) for e in state["envs"]]
            for key, value in state["env_progress"].items():
                setattr(self, key, value.copy())
            self.venv._autoreset_envs = self._reset_pending.copy()  # gymnasium's NEXT_STEP flags
        for key, value in state["counters"].items():
            setattr(self, key, value)
        self.episode_returns.extend(state["episodes"][0])
        self.episode_lengths.extend(state["episodes"][1])
        self._stats = dict(state["stats"])
