"""DAC, Discriminator-Actor-Critic (Kostrikov et al. 2019, arXiv:1809.02925).

Adversarial imitation with an off-policy generator: GAIL's discriminator (expert pairs 1, policy
pairs 0) and our SAC (``il_lab.rl.sac``) in place of PPO, so every env step is reused from the
replay buffer for many updates. The two alternate: SAC runs ``disc_update_interval`` env steps
(collecting and updating as it always does), then the discriminator takes ``n_disc_updates``
minibatch steps of binary cross-entropy on the expert's pairs against policy pairs drawn
UNIFORMLY from the whole replay buffer (as Kostrikov et al. do, without importance weights: the
policy's data is the mixture of every past policy's), or from its last ``disc_policy_window``
transitions, closer to the current policy's.

The generator's reward is never stored. SAC's ``reward_fn`` rewards each batch it samples, at
update time, with the CURRENT discriminator, so a transition collected long ago is judged as the
discriminator judges it now (``tests/test_dac.py`` checks that a discriminator update changes the
reward of the same batch).

Absorbing states (``absorbing``, on by default) as in GAIL, the same code
(``il_lab.learners.discriminator``): the discriminator learns the absorbing state's reward
``r_abs`` from one absorbing row per terminal episode end in each data set, the expert's (kept
terminal transitions of the demonstrations) and the policy's (terminal transitions in the
buffer), each drawn ``1 / (1 - gamma)`` times as often as a transition. For the generator, a
terminal transition's reward gains the absorbing state's discounted tail
``gamma * r_abs / (1 - gamma)``: SAC's target ``r + gamma (1 - terminated) V(s')`` stops at a
terminal transition, and the tail is exactly what bootstrapping into an absorbing state that
earns ``r_abs`` for ever would add. (Kostrikov et al. store absorbing transitions and let the
critic learn their value; the closed form needs no change to the buffer or the critic. The
absorbing state carries no entropy bonus: no policy acts there.) Time-limit truncations are never
absorbing: SAC bootstraps from the final observation, as everywhere else.

With ``absorbing_floor_quantile`` (off by default) the absorbing state's reward is raised to
at least that quantile of the current reward over the policy pairs (0: their minimum), recomputed
at each discriminator update: ending an episode then costs no more per step than the policy's
own worst (or q-th worst) pairs. A learned absorbing reward far below every policy pair (Hopper:
-8 to -10 per step for ever against -2 to -0.4 for the pairs) makes any risk of falling outweigh
what moving like the expert earns, and SAC settles on standing still (experiments/results/dac.md).

With ``normalize_reward`` the generator's reward (the absorbing tail included) is divided by
the standard deviation of the current discriminator's reward over its policy pairs, recomputed
after each discriminator update and fixed until the next. A discriminator held flat by its
gradient penalty can rank the policy's pairs usefully but within a few hundredths (Hopper's
probe: experiments/results/dac.md), far below the scale SAC's entropy bonus and critic work
at; PPO's advantage normalization gives GAIL that scale, SAC has no such step. The sign is kept,
so with ``reward: gail`` (positive, 0 at the absorbing state) the tail stays 0. Off by default:
on Hopper it scaled the survival term with the rest and did not change what SAC learned.

An optional BC warm start (``bc_warm_start_steps``) fits the actor's deterministic action to the
demonstrations' actions before the first env step, as GAIL's does for its PPO actor; the critics
start untrained either way, so the warm start gives SAC's first updates a policy near the
expert's states rather than a value estimate.

A BC term in the actor's loss (``bc_weight``, off by default) keeps pulling towards the
demonstrations for the whole run, as TD3+BC (Fujimoto & Gu 2021, arXiv:2106.06860) does offline:
each SAC update adds ``bc_weight * mean|Q(s, pi(s))| * mean squared error`` of the actor's
deterministic action on a minibatch of demonstration pairs, the ``mean|Q|`` (detached) keeping
the two terms' ratio fixed as the critics' scale changes; ``bc_weight=0.4`` is their alpha of
2.5. The error is logged as ``train/bc_loss`` with SAC's tags.

Reads ``obs`` and ``acts`` of the demonstrations' kept transitions (``kept_states``,
``kept_actions``); with ``pairs=state_next_state`` (DAC from observation, as GAIfO is GAIL's) it
reads ``obs`` alone. The rewards in the file are never read. Box actions only (SAC's). Its
x-axis is env steps (reset steps included, as SAC counts them) for every tag: SAC's own
(``SAC_TAGS``, every 1000 env steps) and the discriminator's after each update.
"""

import logging
import math
from typing import Annotated

import torch
from torch.utils.tensorboard import SummaryWriter

from il_lab.config.schema import AtLeast, Null, Positive, Size, Unit
from il_lab.datasets.trajectories import kept_actions, kept_states
from il_lab.envs import EnvSpec, check_box_actions
from il_lab.errors import ConfigError
from il_lab.interfaces import LearnerInputs
from il_lab.learners.discriminator import (
    DiscriminatorHyperparameters,
    Pairs,
    RewardForm,
    absorbing_reward,
    add_absorbing_tail,
    build_discriminator,
    check_bc_reads_actions,
    end_round,
    learn_in_rounds,
    reward_from_logits,
    train_discriminator,
)
from il_lab.rl.sac import SACHyperparameters, SACPolicy, SACTrainer
from il_lab.runtime.checkpoint import Checkpoint

log = logging.getLogger(__name__)

REWARD_STD_FLOOR = 1e-3


class DAC:
    """DAC around our SAC; see the module docstring.

    Args:
        sac: the generator's SAC settings (``total_env_steps`` there caps the buffer).
        discriminator: the discriminator's network and optimizer.
        total_env_steps: the generator's env-step budget.
        disc_update_interval: generator env steps between discriminator updates.
        n_disc_updates: discriminator minibatch steps at each update.
        reward: ``gail`` | ``airl`` | ``log_d`` (``il_lab.learners.discriminator``).
        absorbing: terminal states lead to a learned absorbing state (module docstring).
        pairs: ``state_action`` (DAC) or ``state_next_state`` (from observation only: the
            demonstrations' actions are never read).
        bc_warm_start_steps: steps fitting the actor's mean action to the demonstrations'
            actions (squared error in SAC's ``[-1, 1]`` space) before any env step; it reads
            their actions, so DAC from observation cannot have one.
        bc_warm_start_learning_rate: its learning rate (None: SAC's).
        bc_weight: the BC term's weight in the actor's loss (module docstring; 0: none). It
            reads the demonstrations' actions too.
        disc_policy_window: the discriminator's policy pairs are the replay buffer's last this
            many transitions (None: the whole buffer, as Kostrikov et al.).
        normalize_reward: divide the reward by its standard deviation over the policy pairs at
            the last discriminator update (module docstring).
        absorbing_floor_quantile: raise the absorbing state's reward to at least this quantile
            of the policy pairs' rewards at the last discriminator update (None: no floor).
        inputs: the runtime objects every learner receives; the expert is never queried.
    """

    @staticmethod
    def check_env(env: EnvSpec, prefix: str) -> None:
        """SAC acts in Box action spaces only (the gate calls this before any work)."""
        check_box_actions(env, "learner=dac")

    def __init__(
        self,
        *,
        sac: SACHyperparameters,
        discriminator: DiscriminatorHyperparameters,
        total_env_steps: Size,
        disc_update_interval: Size,
        n_disc_updates: Size,
        reward: RewardForm = "airl",
        absorbing: bool = True,
        pairs: Pairs = "state_action",
        bc_warm_start_steps: Annotated[int, AtLeast(0)] = 0,
        bc_warm_start_learning_rate: Annotated[
            float | None, Positive, Null("SAC's learning rate")
        ] = None,
        disc_policy_window: Annotated[int | None, AtLeast(1), Null("the whole buffer")] = None,
        normalize_reward: bool = False,
        bc_weight: Annotated[float, AtLeast(0)] = 0.0,
        absorbing_floor_quantile: Annotated[float | None, Unit, Null("no floor")] = None,
        inputs: LearnerInputs,
    ) -> None:
        env, demonstrations, rng = inputs.env, inputs.demonstrations, inputs.rng
        if not demonstrations:
            raise ConfigError("DAC needs demonstrations; allowed: budget.demo_episodes >= 1")
        self.check_env(env, "learner.")
        self.env = env
        self.rng = rng
        self.device = inputs.device
        self.total_env_steps = total_env_steps
        self.disc_update_interval = disc_update_interval
        self.n_disc_updates = n_disc_updates
        self.reward_form = reward
        self.absorbing = absorbing
        self.disc_hp = discriminator
        self.bc_warm_start_steps = bc_warm_start_steps
        self.disc_policy_window = disc_policy_window
        self.normalize_reward = normalize_reward
        self.bc_weight = bc_weight
        self.absorbing_floor_quantile = absorbing_floor_quantile
        self.bc_warm_start_learning_rate = bc_warm_start_learning_rate or sac.learning_rate
        # one absorbing sample per expert episode whose kept transitions end in a terminal state
        self.n_expert_terminals = sum(t.ends_in_kept_terminal for t in demonstrations)

        # the expert's pairs: (s, a), or (s, s') without reading an action
        self.state_only = pairs == "state_next_state"
        obs, next_obs = kept_states(demonstrations)  # (n, obs_dim) each
        second = next_obs if self.state_only else kept_actions(demonstrations)
        self.expert_obs = torch.as_tensor(obs, device=self.device)  # (n, obs_dim)
        # (n, action_dim) actions or (n, obs_dim) next observations
        self.expert_second = torch.as_tensor(
            second.reshape(len(second), -1), dtype=torch.float32, device=self.device
        )

        # the generator
        seed = int(rng.integers(2**31))
        self.trainer = SACTrainer(
            sac,
            env=env,
            seed=seed,
            device=self.device,
            reward_fn=self._reward_fn,
            actor_regularizer=self._bc_term if bc_weight > 0 else None,
        )
        # (n, action_dim) the demonstrations' actions in SAC's [-1, 1] space (BC's targets),
        # clipped so an action at a bound stays reachable by tanh; None from observation
        policy = self.trainer.policy
        self.expert_targets = (
            None
            if self.state_only
            else ((self.expert_second - policy.action_bias) / policy.action_scale).clamp(-1, 1)
        )

        # the discriminator
        self.discriminator, self.disc_optimizer = build_discriminator(
            discriminator, env, obs, absorbing=absorbing, pairs=pairs, device=self.device
        )
        self.generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        self._disc_steps = self._bc_steps = 0
        self._reward_sum, self._reward_count = 0.0, 0  # raw rewards given since the last update
        self._reward_std = 1.0  # the divisor with normalize_reward, set at each D update
        self._absorbing_floor = -math.inf  # with absorbing_floor_quantile, set at each D update
        self._checkpoint: Checkpoint | None = None

    @staticmethod
    def check_config(values: dict, prefix: str) -> None:
        """A BC warm start or BC term reads the demonstrations' actions (the gate calls this)."""
        check_bc_reads_actions(values, prefix)

    # the generator's reward -------------------------------------------------------------------

    @torch.no_grad()
    def reward(self, obs: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """The configured reward form of the current discriminator, ``(n,)``."""
        return reward_from_logits(self.discriminator(obs, second), self.reward_form)

    def absorbing_reward(self) -> float:
        """The configured reward form of the absorbing state, per step spent in it, raised to
        the floor if there is one."""
        return max(absorbing_reward(self.discriminator, self.reward_form), self._absorbing_floor)

    def _reward_fn(
        self,
        obs: torch.Tensor,
        acts: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
    ) -> torch.Tensor:
        """``SACTrainer``'s ``reward_fn``: the reward of one sampled batch ``(batch,)`` under the
        current discriminator, a terminal transition's with the absorbing state's tail added."""
        rewards = self.reward(obs, next_obs if self.state_only else acts)
        self._reward_sum += rewards.sum().item()
        self._reward_count += rewards.numel()
        if self.absorbing:
            gamma = self.trainer.hp.gamma
            rewards = add_absorbing_tail(rewards, terminated, self.absorbing_reward(), gamma)
        return rewards / self._reward_std if self.normalize_reward else rewards

    # the discriminator -----------------------------------------------------------------------

    def policy_pairs(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The replay buffer (its last ``disc_policy_window`` transitions, or all) as the
        discriminator's policy data: raw ``obs (n, obs_dim)``, env actions ``(n, action_dim)`` or
        next observations, and the number of terminals among them."""
        data = self.trainer.buffer.recent(self.disc_policy_window)
        if self.state_only:
            second = data["next_obs"]
        else:
            with torch.no_grad():
                second = self.trainer.policy.to_env(data["acts"])  # stored in [-1, 1]
        return data["obs"], second, int(data["terminated"].sum())

    def update_discriminator(self) -> dict[str, float]:
        """``n_disc_updates`` steps on the expert's pairs against the replay buffer's."""
        if self.trainer.buffer.size == 0:
            return {}
        policy_obs, policy_second, n_policy_terminals = self.policy_pairs()
        disc = self.discriminator
        policy_in = disc.encode(policy_obs, policy_second)  # (buffer size, in_dim)
        stats = train_discriminator(
            disc,
            self.disc_optimizer,
            self.disc_hp,
            expert_in=disc.encode(self.expert_obs, self.expert_second),  # (n_expert, in_dim)
            policy_in=policy_in,
            n_expert_terminals=self.n_expert_terminals,
            n_policy_terminals=n_policy_terminals,
            gamma=self.trainer.hp.gamma,
            n_updates=self.n_disc_updates,
            reward_form=self.reward_form,
            generator=self.generator,
        )
        self._disc_steps += self.n_disc_updates
        if not self.normalize_reward and self.absorbing_floor_quantile is None:
            return stats
        with torch.no_grad():
            rewards = reward_from_logits(disc.logits(policy_in), self.reward_form)  # (n,)
        if self.normalize_reward:
            # the floor keeps a discriminator that has not yet told the sets apart (all rewards
            # equal) from multiplying its noise a thousandfold
            self._reward_std = max(rewards.std().item(), REWARD_STD_FLOOR)
            stats["train/disc_reward_std"] = self._reward_std
        if self.absorbing_floor_quantile is not None:
            self._absorbing_floor = rewards.quantile(self.absorbing_floor_quantile).item()
            stats["train/disc_absorbing_floor"] = self._absorbing_floor
        return stats

    # BC: the warm start and the actor's BC term -------------------------------------------------

    def _bc_error(self) -> torch.Tensor:
        """The mean squared error of the actor's deterministic action ``tanh(mean(s))`` against
        the demonstrations' actions, on a minibatch of SAC's size (or all pairs, if fewer)."""
        n = len(self.expert_targets)
        batch = min(self.trainer.hp.batch_size, n)
        idx = torch.randint(n, (batch,), generator=self.generator, device=self.device)
        actions = torch.tanh(self.policy(self.expert_obs[idx])[0])  # (batch, action_dim)
        return ((actions - self.expert_targets[idx]) ** 2).mean()

    def _bc_term(self, q_pi: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """SAC's ``actor_regularizer``: ``bc_weight * mean|Q| * BC error`` (module docstring)."""
        error = self._bc_error()
        return self.bc_weight * q_pi.abs().mean() * error, {"train/bc_loss": error.detach()}

    def _bc_warm_start(self) -> float:
        """Fit the actor's deterministic action to the demonstrations' actions for
        ``bc_warm_start_steps`` steps; the last step's loss."""
        optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.bc_warm_start_learning_rate)
        loss = torch.zeros(())
        for _ in range(self.bc_warm_start_steps):
            loss = self._bc_error()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            self._bc_steps += 1
        return loss.item()

    # the loop ----------------------------------------------------------------------------------

    def learn(
        self, logger: SummaryWriter | None = None, checkpoint: Checkpoint | None = None
    ) -> None:
        """Train for ``total_env_steps`` generator env steps, logging to ``logger``.

        With ``checkpoint``, save after every discriminator update and continue from the last
        saved one if there is one.
        """
        learn_in_rounds(self, logger, checkpoint, "DAC")

    def run_rounds(self, n_env_steps: int) -> None:
        """Alternate SAC's env steps and discriminator updates for ``n_env_steps`` more steps.

        ``learn`` runs the whole budget at once; a benchmark may call this in pieces and
        evaluate ``policy`` between them.
        """
        trainer = self.trainer
        if self.bc_warm_start_steps and not self._bc_steps:
            bc_loss = self._bc_warm_start()
            log.info("DAC: BC warm start, %d steps, loss %.4f", self._bc_steps, bc_loss)
            if trainer.writer is not None:
                trainer.writer.add_scalar("train/bc_loss", bc_loss, 0)
        target = trainer.num_timesteps + n_env_steps
        while trainer.num_timesteps < target:
            trainer.learn(min(self.disc_update_interval, target - trainer.num_timesteps))
            stats = self.update_discriminator()
            if self._reward_count:
                stats["train/disc_reward_mean"] = self._reward_sum / self._reward_count
            self._reward_sum, self._reward_count = 0.0, 0
            end_round(self, stats, "DAC")

    def state_dict(self) -> dict:
        """Everything the next rounds depend on, taken between rounds.

        The generator's part is ``SACTrainer.state_dict``: networks, optimizer, temperature,
        replay buffer, generator, counters and recent episodes, and the envs mid-episode where
        they pickle (classic control; MuJoCo and Box2D envs start new episodes on resume). The
        buffer makes the file large (tens of MB at 300k transitions): ``checkpoint.min_interval_s``
        spaces the saves.
        """
        return {
            "sac": self.trainer.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "disc_optimizer": self.disc_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "disc_steps": self._disc_steps,
            "bc_steps": self._bc_steps,
            "reward_std": self._reward_std,
            "absorbing_floor": self._absorbing_floor,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        self.trainer.load_state_dict(state["sac"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.disc_optimizer.load_state_dict(state["disc_optimizer"])
        self.generator.set_state(state["generator"])
        self._disc_steps, self._bc_steps = state["disc_steps"], state["bc_steps"]
        self._reward_std = state["reward_std"]
        self._absorbing_floor = state["absorbing_floor"]
        self.rng.bit_generator.state = state["rng"]

    def close(self) -> None:
        """Close the generator's envs."""
        self.trainer.close()

    @property
    def policy(self) -> SACPolicy:
        return self.trainer.policy

    @property
    def env_steps(self) -> int:
        """The generator's env steps (reset steps included, as SAC counts them)."""
        return self.trainer.num_timesteps

    @property
    def expert_queries(self) -> int:
        return 0

    @property
    def gradient_steps(self) -> int:
        """Discriminator steps + SAC updates + BC warm-start steps."""
        return self._disc_steps + self.trainer.n_updates + self._bc_steps
