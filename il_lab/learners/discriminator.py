"""The adversarial imitators' discriminator (GAIL, GAIfO, DAC): its inputs, its reward forms.

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

The discriminator's input is the observation normalized by the demonstrations' mean and standard
deviation (clipped to +-10; raw with ``normalize_obs=false``), concatenated with the action: one-hot
for Discrete actions, rescaled to [-1, 1] by the space's bounds for Box actions with finite bounds
(raw otherwise). A gradient penalty (``grad_penalty``; Gulrajani et al. 2017, at 10 as in Kostrikov
et al.'s Discriminator-Actor-Critic) pushes the norm of the logit's gradient towards 1 on random
interpolations of expert and policy inputs. Without it a ReLU discriminator's logits grow without
bound on states far from the demonstrations (-35 to -59 per step on LunarLander's generator pairs),
the generator's per-step cost dwarfs everything else and it learns to flee the episode: normalized
score -0.98 on LunarLander (5 seeds) against 0.965 with it. On CartPole the penalty hurts (0.631
against 1.000), so it is off by default and on in every other env preset.
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

from il_lab.config.schema import Activation, HiddenSizes, NonNegative, Positive, Size, check_fields
from il_lab.envs import EnvSpec
from il_lab.errors import ConfigError
from il_lab.networks import MLPNet
from il_lab.rl.progress import budget_bar

log = logging.getLogger(__name__)

RewardForm = Literal["gail", "airl", "log_d"]
# What the discriminator compares: (s, a) pairs (GAIL, DAC) or (s, s') pairs (GAIfO, state-only)
Pairs = Literal["state_action", "state_next_state"]
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
    ``batch_size`` policy pairs; ``grad_penalty`` is the gradient penalty's coefficient (0: off)
    and ``grad_penalty_target`` the gradient norm it pulls towards: 1 as in Gulrajani et al. and
    Kostrikov et al., or 0, a zero-centred penalty that flattens the logit between the two sets
    instead of letting it rise by up to one per unit of input distance.
    ``normalize_obs`` standardizes observations by the demonstrations' mean and standard
    deviation; without it they enter raw, as in Kostrikov et al.'s code.
    """

    hidden_sizes: HiddenSizes
    activation: Activation = "relu"
    learning_rate: Annotated[float, Positive]
    batch_size: Size
    grad_penalty: Annotated[float, NonNegative] = 0.0
    grad_penalty_target: Annotated[float, NonNegative] = 1.0
    normalize_obs: bool = True

    def obs_statistics(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``(obs_dim,)`` mean and standard deviation the discriminator standardizes
        observations with: the demonstrations' ``obs (n, ...)``, or 0 and 1 (raw inputs)."""
        flat = np.asarray(obs).reshape(len(obs), -1)
        if not self.normalize_obs:
            return np.zeros(flat.shape[1]), np.ones(flat.shape[1])
        return flat.mean(0), flat.std(0) + 1e-6

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
        pairs: Pairs = "state_action",
    ) -> None:
        super().__init__()
        self.obs_dim = int(np.prod(observation_space.shape))
        self.absorbing = absorbing
        self.state_only = pairs == "state_next_state"
        self.discrete = isinstance(action_space, gym.spaces.Discrete) and not self.state_only
        if self.state_only:  # the second input is the next observation, normalized alike
            action_dim = self.obs_dim
        elif self.discrete:
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

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observations ``(n, ...)`` to ``(n, obs_dim)``, standardized and clipped."""
        return ((obs.reshape(len(obs), -1) - self.obs_mean) / self.obs_std).clamp(
            -INPUT_CLIP, INPUT_CLIP
        )

    def encode(self, obs: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Raw ``obs (n, obs_dim)`` and the pair's second part to inputs ``(n, in_dim)``: env
        actions ``(n,)`` or ``(n, action_dim)``, or (state-only) raw next observations."""
        obs_n, acts = self.normalize(obs), second
        if self.state_only:
            acts_in = self.normalize(second)
        elif self.discrete:
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


def build_discriminator(
    hp: DiscriminatorHyperparameters,
    env: EnvSpec,
    expert_obs: np.ndarray,
    *,
    absorbing: bool,
    pairs: Pairs,
    device: torch.device,
) -> tuple[Discriminator, torch.optim.Adam]:
    """GAIL's and DAC's discriminator for ``env`` with its Adam optimizer, observations
    standardized by the demonstrations' ``expert_obs (n, ...)`` unless ``hp`` says raw."""
    obs_mean, obs_std = hp.obs_statistics(expert_obs)
    discriminator = Discriminator(
        observation_space=env.observation_space,
        action_space=env.action_space,
        hidden_sizes=hp.hidden_sizes,
        activation=hp.activation,
        obs_mean=obs_mean,
        obs_std=obs_std,
        absorbing=absorbing,
        pairs=pairs,
    ).to(device)
    return discriminator, torch.optim.Adam(discriminator.parameters(), lr=hp.learning_rate)


# what GAIL and DAC share: the absorbing state's reward, and the discriminator's update ----------


@torch.no_grad()
def absorbing_reward(disc: Discriminator, form: str) -> float:
    """The reward form ``form`` of the absorbing state, per step spent in it."""
    return reward_from_logits(disc.logits(disc.absorbing_inputs(1)), form).item()


def add_absorbing_tail(
    rewards: torch.Tensor, terminated: torch.Tensor, r_abs: float, gamma: float
) -> torch.Tensor:
    """``rewards (n,)`` with a terminal transition's gaining ``gamma * r_abs / (1 - gamma)``.

    The exact return of the absorbing state reached after it, ``sum_{k>=1} gamma^k r_abs``: the
    generator's value targets stop at a terminal transition, so its reward carries the tail.
    """
    tail = gamma * r_abs / (1 - gamma)
    return rewards + terminated.float() * tail


def with_absorbing(
    disc: Discriminator, inputs: torch.Tensor, n_terminals: int, gamma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``inputs (n, in_dim)`` and one absorbing row per terminal episode end, with sampling
    weights ``(n + n_terminals,)``.

    An episode that ends in a terminal state stays in the absorbing state for ever, and the
    generator's return counts it ``1 / (1 - gamma)`` times (the discounted tail). So an
    absorbing row is drawn ``1 / (1 - gamma)`` times as often as a transition, and the
    discriminator sees the absorbing state in the proportion the return weighs it.
    """
    weights = torch.ones(len(inputs) + n_terminals, device=inputs.device)
    weights[len(inputs) :] = 1.0 / (1.0 - gamma)
    absorbing = disc.absorbing_inputs(n_terminals)
    return torch.cat([inputs, absorbing]), weights


def draw(
    n_rows: int, n: int, generator: torch.Generator, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """``n`` row indices drawn with replacement from ``n_rows``: uniformly, or in proportion
    to ``weights``."""
    if weights is None:
        return torch.randint(n_rows, (n,), generator=generator, device=generator.device)
    return torch.multinomial(weights, n, replacement=True, generator=generator)


def gradient_penalty(
    disc: Discriminator,
    x_e: torch.Tensor,
    x_p: torch.Tensor,
    generator: torch.Generator,
    target: float = 1.0,
) -> torch.Tensor:
    """``(|grad logit| - target)^2`` on random interpolations of expert and policy inputs.

    With absorbing states only pairs of two real transitions are interpolated, and only
    the observation and action inputs count: the flag is an indicator, not a direction to
    be smooth along, and a penalty across it would tie the absorbing state's reward to its
    neighbours' (on CartPole the generator then learned to fall at once).
    """
    mix = torch.rand(len(x_e), 1, generator=generator, device=generator.device)
    if disc.absorbing:
        real = (x_e[:, -1] == 0) & (x_p[:, -1] == 0)
        x_e, x_p, mix = x_e[real], x_p[real], mix[real]
        if len(mix) == 0:
            return torch.zeros((), device=x_e.device)
    x = (mix * x_e + (1 - mix) * x_p).requires_grad_(True)
    (grad,) = torch.autograd.grad(disc.logits(x).sum(), x, create_graph=True)
    if disc.absorbing:
        grad = grad[:, :-1]
    return ((grad.norm(dim=1) - target) ** 2).mean()


def train_discriminator(
    disc: Discriminator,
    optimizer: torch.optim.Optimizer,
    hp: DiscriminatorHyperparameters,
    *,
    expert_in: torch.Tensor,
    policy_in: torch.Tensor,
    n_expert_terminals: int,
    n_policy_terminals: int,
    gamma: float,
    n_updates: int,
    reward_form: str,
    generator: torch.Generator,
) -> dict[str, float]:
    """``n_updates`` Adam steps of binary cross-entropy, expert 1 against policy 0.

    Each step draws ``hp.batch_size`` rows of each data set with replacement. With absorbing
    states (``disc.absorbing``) each set gains one absorbing row per terminal episode end in it
    (``with_absorbing``), drawn in proportion to its weight.

    Args:
        expert_in: the expert's encoded pairs ``(n_expert, in_dim)``.
        policy_in: the generator's encoded pairs ``(n_policy, in_dim)``.
        n_expert_terminals: the expert's episodes whose (kept) transitions end in a terminal.
        n_policy_terminals: the generator's terminal transitions among ``policy_in``.
        gamma: the generator's discount, which weighs the absorbing rows.

    Returns:
        The last step's ``train/disc_loss``, ``train/disc_acc_expert`` and
        ``train/disc_acc_policy``, and with absorbing states ``train/disc_absorbing_reward``.
    """
    expert_weights = policy_weights = None
    if disc.absorbing:
        expert_in, expert_weights = with_absorbing(disc, expert_in, n_expert_terminals, gamma)
        policy_in, policy_weights = with_absorbing(disc, policy_in, n_policy_terminals, gamma)
    n = hp.batch_size
    labels = torch.cat([torch.ones(n), torch.zeros(n)]).to(expert_in.device)  # expert 1, policy 0
    disc.train()
    for _ in range(n_updates):
        x_e = expert_in[draw(len(expert_in), n, generator, expert_weights)]  # (n, in_dim)
        x_p = policy_in[draw(len(policy_in), n, generator, policy_weights)]  # (n, in_dim)
        logits = disc.logits(torch.cat([x_e, x_p]))  # (2n,)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        if hp.grad_penalty > 0:
            loss = loss + hp.grad_penalty * gradient_penalty(
                disc, x_e, x_p, generator, hp.grad_penalty_target
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        stats = {
            "train/disc_loss": loss.item(),
            "train/disc_acc_expert": (logits[:n] > 0).float().mean().item(),
            "train/disc_acc_policy": (logits[n:] < 0).float().mean().item(),
        }
    if disc.absorbing:
        stats["train/disc_absorbing_reward"] = absorbing_reward(disc, reward_form)
    return stats


# the loop GAIL and DAC share: the generator (PPO or SAC) runs rounds, the discriminator follows


def check_bc_reads_actions(values: dict, prefix: str) -> None:
    """A BC warm start or BC term fits the demonstrations' actions, which imitation from
    observation (``pairs=state_next_state``) never reads: refuse the two together."""
    if values.get("pairs") != "state_next_state":
        return
    for key in ("bc_warm_start_steps", "bc_weight"):  # bc_weight: DAC's only
        if values.get(key):
            raise ConfigError(
                f"{prefix}{key}={values[key]} is not allowed with "
                f"{prefix}pairs=state_next_state; allowed: 0 (it would read the actions)"
            )


def learn_in_rounds(learner, logger, checkpoint, name: str) -> None:
    """``learner.learn``: resume from ``checkpoint`` if it holds a state, run the rest of the
    budget in rounds (``learner.run_rounds``), close the envs, log a summary line."""
    trainer = learner.trainer
    trainer.writer = logger  # the generator's own tags and rollout/ep_rew_mean, vs env steps
    learner._checkpoint = checkpoint
    saved = checkpoint.resume() if checkpoint is not None else None
    if saved is not None:
        learner.load_state_dict(saved)
    trainer.progress = budget_bar(trainer, learner.total_env_steps, name)
    try:
        learner.run_rounds(learner.total_env_steps - trainer.num_timesteps)
    finally:
        trainer.progress.close()
        learner.close()
    ret = np.mean(trainer.episode_returns) if trainer.episode_returns else float("nan")
    log.info(
        "%s: %d env steps, %d discriminator + %d generator gradient steps; env return %.1f",
        name, trainer.num_timesteps, learner._disc_steps, trainer.n_updates, ret,
    )  # fmt: skip


def end_round(learner, stats: dict[str, float], name: str) -> None:
    """After a round: the discriminator's statistics to TensorBoard, then a checkpoint."""
    trainer = learner.trainer
    log.debug("%s at %d env steps: %s", name, trainer.num_timesteps, stats)
    if trainer.progress is not None and trainer.episode_returns:
        trainer.progress.set_postfix(env_return=f"{np.mean(trainer.episode_returns):.1f}")
    if trainer.writer is not None:
        for tag, value in stats.items():
            trainer.writer.add_scalar(tag, value, trainer.num_timesteps)
    if learner._checkpoint is not None:
        learner._checkpoint.save(
            learner.state_dict(), f"{name} at {trainer.num_timesteps} env steps"
        )
