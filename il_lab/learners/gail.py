"""GAIL, generative adversarial imitation learning (Ho & Ermon 2016, arXiv:1606.03476).

A discriminator learns to tell the expert's (state, action) pairs from the policy's; the policy
(the generator, our ``PPOTrainer``) is trained by PPO on a reward that grows as its own pairs
look more like the expert's. The two alternate: the generator runs ``round_env_steps`` env
steps (whole PPO rollouts, driven in chunks through ``PPOTrainer.learn``) on the reward of the
current discriminator, then the discriminator takes ``n_disc_updates`` minibatch steps of
binary cross-entropy on the expert's pairs against the pairs the generator just produced.

Reads ``obs`` and ``acts`` of the demonstrations (``obs[:-1]`` paired with ``acts``); the
rewards in the file are never read. Its x-axis is env steps (the generator's, reset steps
included) for every tag; only the optional BC warm start's ``train/bc_loss`` is logged once, at
step 0.

Label convention, the one place it is defined. ``D(s, a) = sigmoid(logit(s, a))`` is the
probability that ``(s, a)`` is the EXPERT's: expert pairs carry label 1, policy pairs label 0.
Ho & Ermon's paper and the CartPole write-up use the opposite convention, ``D_learner = 1 - D``
(expert 0, learner 1) with the reward ``-log D_learner``; in ours that is ``-log(1 - D)``,
exactly ``reward="gail"`` below. (Taking ``-log D`` in our convention would reward looking like
the policy: the sign test in ``tests/test_gail.py`` guards against that slip.)

Reward forms (``reward``), each increasing in D, computed stably from the logit:

- ``gail``: ``-log(1 - D) = softplus(logit)``, in ``[0, inf)``: Ho & Ermon's and the
  write-up's reward. Always positive, so it also pays for merely staying alive (a survival
  bonus that suits CartPole and any env whose episodes end on failure).
- ``airl`` (the default): ``log D - log(1 - D) = logit``, in ``(-inf, inf)``: the AIRL-style
  reward (Fu et al. 2018) that Kostrikov et al. use. Zero-centred, so with absorbing states ending
  an episode can cost as well as pay: with the always-positive ``gail`` form the absorbing state
  pays whatever it looks like, and on LunarLanderContinuous the generator learned to crash at once
  for it (return -433 against random's -225, two seeds). Without absorbing states it is negative
  wherever the policy's pairs look unlike the expert's (D < 1/2), which at the start is
  everywhere, so ending episodes early pays: on CartPole it collapsed to ~9-step episodes.
- ``log_d``: ``log D = -softplus(-logit)``, in ``(-inf, 0]``: the "minimax" GAN form. Always
  negative, so without absorbing states it pays for ending episodes early.

Absorbing states (``absorbing``, on by default; Kostrikov et al. 2019, "Discriminator-Actor-
Critic", arXiv:1809.02925). Each reward form alone carries a bias in episode length: an episode
that ends earns nothing after its end, so a positive reward pays for surviving (a lander that
hovers instead of landing) and a negative one for ending early (a hopper that falls at once).
With absorbing states an episode that ends in a terminal state does not stop earning: it moves
to an absorbing state that it never leaves, whose reward the discriminator learns like any
other, from one absorbing sample per terminal episode end in each data set (the expert's and the
policy's), drawn ``1 / (1 - gamma)`` times as often as a transition because the generator's
return counts the absorbing state that many times (without that weight the discriminator learned
the absorbing state too slowly: on CartPole the generator first learned to fall at once for the
early, untrained absorbing reward). So the discriminator itself says whether ending is expert-
like: where the expert never terminates (Hopper's falls) the absorbing state looks like the
policy's and is penalized; where the expert's episodes end in success (LunarLander's landing) it
looks like the expert's and is paid. The discriminator's input gains a flag that is 1 only for
the absorbing state (observation and action inputs zero there). For the generator the absorbing
state's endless reward ``r_abs`` is exact: the terminal step's reward gains its discounted tail
``gamma * r_abs / (1 - gamma)``, so PPO's returns and reward normalization need no change. Time-
limit truncations are never absorbing: PPO bootstraps from the value of the state reached, as
everywhere else.

With ``normalize_reward`` the generator receives the reward divided by a running standard
deviation of all rewards so far (the mean is not subtracted, so each form keeps its sign and
its episode-length bias); ``train/disc_reward_mean`` is the mean of the raw reward.

The discriminator's input is the observation normalized by the demonstrations' mean and
standard deviation (clipped to +-10), concatenated with the action: one-hot for Discrete
actions, rescaled to [-1, 1] by the space's bounds for Box actions with finite bounds (raw
otherwise). A gradient penalty (``grad_penalty``; Gulrajani et al. 2017, at 10 as in Kostrikov
et al.'s Discriminator-Actor-Critic) pushes the norm of the logit's gradient towards 1 on random
interpolations of expert and policy inputs. Without it a ReLU discriminator's logits grow without
bound on states far from the demonstrations (-35 to -59 per step on LunarLander's generator
pairs), the generator's per-step cost dwarfs everything else and it learns to flee the episode:
normalized score -0.98 on LunarLander (5 seeds) against 0.965 with it. On CartPole the penalty
hurts (0.631 against 1.000), so it is off by default and on in every other env preset.

``train_on_true_reward`` is a debugging switch: PPO then trains on the env's own reward, the
discriminator is never trained, and the run is plain PPO under GAIL's budget and logging. The
env's own return reaches TensorBoard (``rollout/ep_rew_mean``) in either case, but never
training unless that switch is set.
"""

import logging
import typing
from dataclasses import dataclass
from typing import Annotated, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.tensorboard import SummaryWriter

from il_lab.config.schema import (
    Activation,
    AtLeast,
    HiddenSizes,
    NonNegative,
    Null,
    Positive,
    Size,
    check_fields,
)
from il_lab.errors import ConfigError
from il_lab.interfaces import LearnerInputs
from il_lab.learners.supervised import fit
from il_lab.networks import MLPNet
from il_lab.networks.normalization import RunningMeanStd
from il_lab.rl import PPOHyperparameters, PPOPolicy, PPOTrainer
from il_lab.runtime.checkpoint import Checkpoint

log = logging.getLogger(__name__)

RewardForm = Literal["gail", "airl", "log_d"]
REWARD_FORMS: tuple[str, ...] = typing.get_args(RewardForm)
INPUT_CLIP = 10.0  # normalized observations are clipped to [-INPUT_CLIP, INPUT_CLIP]


def reward_from_logits(logits: torch.Tensor, form: str) -> torch.Tensor:
    """The generator's reward for discriminator logits (``D = sigmoid(logits)``, expert = 1).

    Every form increases with D and stays finite for any finite logit (no ``log(0)``).
    """
    if form == "gail":
        return F.softplus(logits)  # -log(1 - D)
    if form == "airl":
        return logits  # log D - log(1 - D)
    if form == "log_d":
        return -F.softplus(-logits)  # log D
    raise ValueError(f"reward form {form!r}: the schema allows only {REWARD_FORMS}")


@dataclass(frozen=True, kw_only=True)
class DiscriminatorHyperparameters:
    """The discriminator's network and optimizer.

    ``hidden_sizes`` and ``activation`` shape an ``MLPNet`` with a linear logit on top; each of
    GAIL's ``n_disc_updates`` steps is one Adam step on ``batch_size`` expert pairs against
    ``batch_size`` policy pairs; ``grad_penalty`` is the gradient penalty's coefficient (0: off).
    """

    hidden_sizes: HiddenSizes
    activation: Activation = "relu"
    learning_rate: Annotated[float, Positive]
    batch_size: Size
    grad_penalty: Annotated[float, NonNegative] = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        check_fields(self, "discriminator.")


class Discriminator(nn.Module):
    """``logit(s, a)``: large for pairs that look like the expert's (see the module docstring)."""

    def __init__(
        self,
        *,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Discrete | gym.spaces.Box,
        hidden_sizes: tuple[int, ...],
        activation: str,
        obs_mean: np.ndarray,
        obs_std: np.ndarray,
        absorbing: bool = False,
    ) -> None:
        super().__init__()
        self.obs_dim = int(np.prod(observation_space.shape))
        self.absorbing = absorbing
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if self.discrete:
            self.n_actions = int(action_space.n)
            self.action_start = int(action_space.start)
            action_dim = self.n_actions
        else:
            action_dim = int(np.prod(action_space.shape))
            low = np.asarray(action_space.low, dtype=np.float64).ravel()
            high = np.asarray(action_space.high, dtype=np.float64).ravel()
            bounded = np.isfinite(low) & np.isfinite(high) & (high > low)
            # a -> 2 (a - low) / (high - low) - 1 where the bounds are finite, a elsewhere
            scale = np.where(bounded, 2.0 / np.where(bounded, high - low, 1.0), 1.0)
            shift = np.where(bounded, -1.0 - low * scale, 0.0)
            self.register_buffer("action_scale", torch.as_tensor(scale, dtype=torch.float32))
            self.register_buffer("action_shift", torch.as_tensor(shift, dtype=torch.float32))
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean, dtype=torch.float32).ravel())
        self.register_buffer("obs_std", torch.as_tensor(obs_std, dtype=torch.float32).ravel())
        self.in_dim = self.obs_dim + action_dim + int(absorbing)  # [obs, action, absorbing flag]
        self.body = MLPNet(
            obs_dim=self.in_dim,
            context_len=1,
            hidden_sizes=list(hidden_sizes),
            activation=activation,
        )
        self.head = nn.Linear(self.body.out_dim, 1)

    def encode(self, obs: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        """Raw ``obs (n, obs_dim)`` and env actions ``(n,)`` or ``(n, action_dim)`` to inputs."""
        obs_n = ((obs.reshape(len(obs), -1) - self.obs_mean) / self.obs_std).clamp(
            -INPUT_CLIP, INPUT_CLIP
        )
        if self.discrete:
            index = acts.reshape(len(acts)).long() - self.action_start
            acts_in = F.one_hot(index, self.n_actions).float()  # (n, n_actions)
        else:
            acts_in = acts.reshape(len(acts), -1).float() * self.action_scale + self.action_shift
        parts = [obs_n, acts_in]
        if self.absorbing:  # a flag of 0: not the absorbing state
            parts.append(torch.zeros(len(obs), 1, device=obs_n.device))
        return torch.cat(parts, dim=1)  # (n, in_dim)

    def absorbing_inputs(self, n: int) -> torch.Tensor:
        """``n`` encoded absorbing states ``(n, in_dim)``: zero inputs, the flag 1."""
        inputs = torch.zeros(n, self.in_dim, device=self.obs_mean.device)
        inputs[:, -1] = 1.0
        return inputs

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``(n,)`` for encoded inputs ``(n, in_dim)``."""
        return self.head(self.body(inputs)).squeeze(-1)

    def forward(self, obs: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        return self.logits(self.encode(obs, acts))


class _ActorAsBCPolicy(nn.Module):
    """A ``PPOPolicy``'s actor as ``supervised.fit`` sees a policy: windows of one raw frame
    in, the action distribution's parameters out, ``head.loss`` the negative log-likelihood."""

    def __init__(self, policy: PPOPolicy) -> None:
        super().__init__()
        self.policy = policy
        self.head = policy.head

    @property
    def device(self) -> torch.device:
        return self.policy.device

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.policy.action_params(self.policy.normalize(windows[:, -1]))


class GAIL:
    """GAIL around our PPO; see the module docstring.

    Args:
        ppo: the generator's PPO settings (``total_env_steps`` there is the annealing horizon).
        discriminator: the discriminator's network and optimizer.
        total_env_steps: the generator's env-step budget.
        round_env_steps: generator env steps between discriminator updates (PPO runs whole
            rollouts, so a round is at least one rollout).
        n_disc_updates: discriminator minibatch steps after each round.
        reward: ``gail`` | ``airl`` | ``log_d`` (module docstring).
        absorbing: terminal states lead to a learned absorbing state (module docstring).
        normalize_reward: divide the reward by its running standard deviation.
        train_on_true_reward: debugging: PPO trains on the env's reward.
        bc_warm_start_steps: log-likelihood steps on the demonstrations before any env step.
        bc_warm_start_learning_rate: the warm start's learning rate (None: the generator's, which
            on some presets is too small for a few thousand supervised steps).
        inputs: the runtime objects every learner receives; the expert is never queried.
    """

    def __init__(
        self,
        *,
        ppo: PPOHyperparameters,
        discriminator: DiscriminatorHyperparameters,
        total_env_steps: Size,
        round_env_steps: Size,
        n_disc_updates: Size,
        reward: RewardForm = "airl",
        absorbing: bool = True,
        normalize_reward: bool = False,
        train_on_true_reward: bool = False,
        bc_warm_start_steps: Annotated[int, AtLeast(0)] = 0,
        bc_warm_start_learning_rate: Annotated[
            float | None, Positive, Null("the generator's learning rate")
        ] = None,
        inputs: LearnerInputs,
    ) -> None:
        env, demonstrations, rng = inputs.env, inputs.demonstrations, inputs.rng
        if not demonstrations:
            raise ConfigError("GAIL needs demonstrations; allowed: budget.demo_episodes >= 1")
        self.env = env
        self.rng = rng
        self.device = inputs.device
        self.total_env_steps = total_env_steps
        self.round_env_steps = round_env_steps
        self.n_disc_updates = n_disc_updates
        self.reward_form = reward
        self.absorbing = absorbing
        # one absorbing sample per expert episode that ended in a terminal state
        self.n_expert_terminals = sum(bool(t.terminated) for t in demonstrations)
        self.normalize_reward = normalize_reward
        self.train_on_true_reward = train_on_true_reward
        self.bc_warm_start_steps = bc_warm_start_steps
        self.bc_warm_start_learning_rate = bc_warm_start_learning_rate or ppo.learning_rate
        self.disc_hp = discriminator

        # the expert's (s, a) pairs
        obs = np.concatenate([np.asarray(t.obs[:-1], np.float32) for t in demonstrations])
        acts = np.concatenate([np.asarray(t.acts) for t in demonstrations])
        self.expert_obs = torch.as_tensor(obs.reshape(len(obs), -1), device=self.device)
        self.expert_acts = torch.as_tensor(acts, device=self.device)  # (n,) or (n, action_dim)

        # the generator
        seed = int(rng.integers(2**31))
        self.trainer = PPOTrainer(
            ppo,
            env=env,
            seed=seed,
            device=self.device,
            reward_fn=None if train_on_true_reward else self._reward_fn,
        )

        # the discriminator
        self.discriminator = Discriminator(
            observation_space=env.observation_space,
            action_space=env.action_space,
            hidden_sizes=discriminator.hidden_sizes,
            activation=discriminator.activation,
            obs_mean=obs.reshape(len(obs), -1).mean(0),
            obs_std=obs.reshape(len(obs), -1).std(0) + 1e-6,
            absorbing=absorbing,
        ).to(self.device)
        self.disc_optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=discriminator.learning_rate
        )
        self.generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.reward_scale = RunningMeanStd()
        self._policy_obs: list[torch.Tensor] = []  # the generator's pairs since the last update
        self._policy_acts: list[torch.Tensor] = []
        self._policy_terminals = 0  # the generator's terminal steps since the last update
        self._disc_steps = 0
        self._bc_steps = 0
        self._reward_sum, self._reward_count = 0.0, 0
        self._checkpoint: Checkpoint | None = None

    # the generator's reward -------------------------------------------------------------------

    @torch.no_grad()
    def reward(self, obs: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        """The configured reward form of the current discriminator, ``(n,)``, unnormalized."""
        return reward_from_logits(self.discriminator(obs, acts), self.reward_form)

    @torch.no_grad()
    def absorbing_reward(self) -> float:
        """The configured reward form of the absorbing state, per step spent in it."""
        logit = self.discriminator.logits(self.discriminator.absorbing_inputs(1))
        return reward_from_logits(logit, self.reward_form).item()

    def _reward_fn(
        self,
        obs: torch.Tensor,
        acts: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
    ) -> torch.Tensor:
        """``PPOTrainer``'s ``reward_fn``: called once per rollout with its valid transitions.

        Keeps the pairs (and, with absorbing states, the number of terminal steps) for the next
        discriminator update and returns their reward, a terminal step's with the absorbing
        state's discounted tail added.
        """
        self._policy_obs.append(obs)
        self._policy_acts.append(acts)
        rewards = self.reward(obs, acts)
        self._reward_sum += rewards.sum().item()
        self._reward_count += rewards.numel()
        if self.absorbing:
            self._policy_terminals += int(terminated.sum())
            gamma = self.trainer.hp.gamma
            tail = gamma * self.absorbing_reward() / (1 - gamma)
            rewards = rewards + terminated.float() * tail
        if not self.normalize_reward:
            return rewards
        self.reward_scale.update(rewards)
        return self.reward_scale.scale(rewards)

    # the discriminator -----------------------------------------------------------------------

    def update_discriminator(self) -> dict[str, float]:
        """``n_disc_updates`` steps on the expert's pairs against the generator's latest ones."""
        if not self._policy_obs:
            return {}
        policy_obs = torch.cat(self._policy_obs)
        policy_acts = torch.cat(self._policy_acts)
        self._policy_obs, self._policy_acts = [], []
        disc, hp = self.discriminator, self.disc_hp
        expert_in = disc.encode(self.expert_obs, self.expert_acts)  # (n_expert, in_dim)
        policy_in = disc.encode(policy_obs, policy_acts)  # (n_policy, in_dim)
        expert_weights = policy_weights = None
        if self.absorbing:
            expert_in, expert_weights = self._with_absorbing(expert_in, self.n_expert_terminals)
            policy_in, policy_weights = self._with_absorbing(policy_in, self._policy_terminals)
            self._policy_terminals = 0
        n = hp.batch_size
        labels = torch.cat([torch.ones(n), torch.zeros(n)]).to(self.device)  # expert 1, policy 0
        disc.train()
        for _ in range(self.n_disc_updates):
            x_e = expert_in[self._draw(len(expert_in), n, expert_weights)]  # (n, in_dim)
            x_p = policy_in[self._draw(len(policy_in), n, policy_weights)]  # (n, in_dim)
            logits = disc.logits(torch.cat([x_e, x_p]))  # (2n,)
            loss = F.binary_cross_entropy_with_logits(logits, labels)
            if hp.grad_penalty > 0:
                loss = loss + hp.grad_penalty * self._gradient_penalty(x_e, x_p)
            self.disc_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.disc_optimizer.step()
            self._disc_steps += 1
        with torch.no_grad():
            stats = {
                "train/disc_loss": loss.item(),
                "train/disc_acc_expert": (logits[:n] > 0).float().mean().item(),
                "train/disc_acc_policy": (logits[n:] < 0).float().mean().item(),
            }
        if self.absorbing:
            stats["train/disc_absorbing_reward"] = self.absorbing_reward()
        return stats

    def _with_absorbing(
        self, inputs: torch.Tensor, n_terminals: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs`` and one absorbing row per terminal episode end, with sampling weights.

        An episode that ends in a terminal state stays in the absorbing state for ever, and the
        generator's return counts it ``1 / (1 - gamma)`` times (the discounted tail). So an
        absorbing row is drawn ``1 / (1 - gamma)`` times as often as a transition, and the
        discriminator sees the absorbing state in the proportion the return weighs it.
        """
        weights = torch.ones(len(inputs) + n_terminals, device=self.device)
        weights[len(inputs) :] = 1.0 / (1.0 - self.trainer.hp.gamma)
        absorbing = self.discriminator.absorbing_inputs(n_terminals)
        return torch.cat([inputs, absorbing]), weights

    def _draw(self, n_rows: int, n: int, weights: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` row indices drawn with replacement from ``n_rows``: uniformly, or in
        proportion to ``weights``."""
        if weights is None:
            return torch.randint(n_rows, (n,), generator=self.generator, device=self.device)
        return torch.multinomial(weights, n, replacement=True, generator=self.generator)

    def _gradient_penalty(self, x_e: torch.Tensor, x_p: torch.Tensor) -> torch.Tensor:
        """``(|grad logit| - 1)^2`` on random interpolations of expert and policy inputs.

        With absorbing states only pairs of two real transitions are interpolated, and only
        the observation and action inputs count: the flag is an indicator, not a direction to
        be smooth along, and a penalty across it would tie the absorbing state's reward to its
        neighbours' (on CartPole the generator then learned to fall at once).
        """
        mix = torch.rand(len(x_e), 1, generator=self.generator, device=self.device)
        if self.absorbing:
            real = (x_e[:, -1] == 0) & (x_p[:, -1] == 0)
            x_e, x_p, mix = x_e[real], x_p[real], mix[real]
            if len(mix) == 0:
                return torch.zeros((), device=self.device)
        x = (mix * x_e + (1 - mix) * x_p).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.discriminator.logits(x).sum(), x, create_graph=True)
        if self.absorbing:
            grad = grad[:, :-1]
        return ((grad.norm(dim=1) - 1) ** 2).mean()

    # BC warm start ---------------------------------------------------------------------------

    def _bc_warm_start(self) -> float:
        """Fit the generator policy's actor to the demonstrations with BC's own loop."""
        policy = self.trainer.policy
        if policy.normalize_obs:  # the demonstrations seed the running observation statistics
            policy.update_obs_stats(self.expert_obs)
        result = fit(
            _ActorAsBCPolicy(policy),
            self.expert_obs[:, None].cpu().numpy(),  # windows of one frame
            self.expert_acts.cpu().numpy(),
            gradient_steps=self.bc_warm_start_steps,
            batch_size=self.trainer.hp.batch_size,
            learning_rate=self.bc_warm_start_learning_rate,
            weight_decay=0.0,
            val_fraction=0.0,
            val_interval=self.bc_warm_start_steps,
            patience=1,
            rng=self.rng,
            logger=None,  # GAIL's x-axis is env steps: the final loss is logged at step 0
            desc="GAIL BC warm start",
        )
        self._bc_steps += result.gradient_steps
        return result.train_loss

    # the loop ----------------------------------------------------------------------------------

    def learn(
        self, logger: SummaryWriter | None = None, checkpoint: Checkpoint | None = None
    ) -> None:
        """Train for ``total_env_steps`` generator env steps, logging to ``logger``.

        With ``checkpoint``, save after every round and continue from the last saved one if
        there is one (see ``state_dict`` for what a resumed run does not get back).
        """
        trainer = self.trainer
        trainer.writer = logger  # PPO's own tags and rollout/ep_rew_mean, against env steps
        self._checkpoint = checkpoint
        saved = checkpoint.resume() if checkpoint is not None else None
        if saved is not None:
            self.load_state_dict(saved)
        try:
            self.run_rounds(self.total_env_steps - trainer.num_timesteps)
        finally:
            self.close()
        ret = np.mean(trainer.episode_returns) if trainer.episode_returns else float("nan")
        log.info(
            "GAIL: %d env steps, %d discriminator + %d PPO gradient steps; env return %.1f",
            trainer.num_timesteps,
            self._disc_steps,
            trainer.n_updates,
            ret,
        )

    def run_rounds(self, n_env_steps: int) -> None:
        """Alternate generator rounds and discriminator updates for ``n_env_steps`` more steps.

        ``learn`` runs the whole budget at once; a benchmark may call this in pieces and
        evaluate ``policy`` between them.
        """
        trainer = self.trainer
        if self.bc_warm_start_steps and not self._bc_steps:
            bc_loss = self._bc_warm_start()
            log.info("GAIL: BC warm start, %d steps, loss %.4f", self._bc_steps, bc_loss)
            if trainer.writer is not None:
                trainer.writer.add_scalar("train/bc_loss", bc_loss, 0)
        target = trainer.num_timesteps + n_env_steps
        while trainer.num_timesteps < target:
            trainer.learn(min(self.round_env_steps, target - trainer.num_timesteps))
            if not self.train_on_true_reward:
                stats = self.update_discriminator()
                stats["train/disc_reward_mean"] = self._reward_sum / max(1, self._reward_count)
                self._reward_sum, self._reward_count = 0.0, 0
                log.debug("GAIL at %d env steps: %s", trainer.num_timesteps, stats)
                if trainer.writer is not None:
                    for tag, value in stats.items():
                        trainer.writer.add_scalar(tag, value, trainer.num_timesteps)
            if self._checkpoint is not None:
                self._checkpoint.save(
                    self.state_dict(), f"GAIL at {trainer.num_timesteps} env steps"
                )

    def state_dict(self) -> dict:
        """Everything the next rounds depend on, taken between rounds.

        The generator's part is ``PPOTrainer.state_dict``: its policy (with the running
        observation statistics), optimizer, counters and target, generator, return statistics
        and recent episodes. Its vectorized envs are not saved: a resumed run starts new
        episodes where the uninterrupted one would have continued its running ones.
        """
        return {
            "ppo": self.trainer.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "disc_optimizer": self.disc_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "reward_scale": self.reward_scale.state_dict(),
            "disc_steps": self._disc_steps,
            "bc_steps": self._bc_steps,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        self.trainer.load_state_dict(state["ppo"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.disc_optimizer.load_state_dict(state["disc_optimizer"])
        self.generator.set_state(state["generator"])
        self.reward_scale.load_state_dict(state["reward_scale"])
        self._disc_steps, self._bc_steps = state["disc_steps"], state["bc_steps"]
        self.rng.bit_generator.state = state["rng"]

    def close(self) -> None:
        """Close the generator's envs."""
        self.trainer.close()

    @property
    def policy(self) -> PPOPolicy:
        return self.trainer.policy

    @property
    def env_steps(self) -> int:
        """The generator's env steps (reset steps included, as PPO counts them)."""
        return self.trainer.num_timesteps

    @property
    def expert_queries(self) -> int:
        return 0

    @property
    def gradient_steps(self) -> int:
        """Discriminator steps + PPO minibatch steps + BC warm-start steps."""
        return self._disc_steps + self.trainer.n_updates + self._bc_steps
