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

The discriminator, its reward forms, absorbing states and gradient penalty are
``il_lab.learners.discriminator``'s (shared with GAIfO and DAC).

With ``normalize_reward`` the generator receives the reward divided by a running standard
deviation of all rewards so far (the mean is not subtracted, so each form keeps its sign and
its episode-length bias); ``train/disc_reward_mean`` is the mean of the raw reward.

``train_on_true_reward`` is a debugging switch: PPO then trains on the env's own reward, the
discriminator is never trained, and the run is plain PPO under GAIL's budget and logging. The
env's own return reaches TensorBoard (``rollout/ep_rew_mean``) in either case, but never
training unless that switch is set.
"""

import logging
from typing import Annotated

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from il_lab.config.schema import (
    AtLeast,
    Null,
    Positive,
    Size,
)
from il_lab.datasets.trajectories import kept_actions, kept_states
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
from il_lab.learners.supervised import fit
from il_lab.networks.normalization import RunningMeanStd
from il_lab.rl import PPOHyperparameters, PPOPolicy, PPOTrainer
from il_lab.runtime.checkpoint import Checkpoint

log = logging.getLogger(__name__)


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
        bc_warm_start_steps: log-likelihood steps on the demonstrations before any env step
            (it reads their actions, so state-only imitation cannot have one).
        bc_warm_start_learning_rate: the warm start's learning rate (None: the generator's, which
            on some presets is too small for a few thousand supervised steps).
        pairs: ``state_action`` (GAIL) or ``state_next_state`` (GAIfO, Torabi et al. 2018,
            arXiv:1807.06158: the discriminator compares (s, s') pairs and the demonstrations'
            actions are never read).
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
        pairs: Pairs = "state_action",
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
        # one absorbing sample per expert episode whose kept transitions end in a terminal state
        self.n_expert_terminals = sum(t.ends_in_kept_terminal for t in demonstrations)
        self.normalize_reward = normalize_reward
        self.train_on_true_reward = train_on_true_reward
        self.bc_warm_start_steps = bc_warm_start_steps
        self.bc_warm_start_learning_rate = bc_warm_start_learning_rate or ppo.learning_rate
        self.disc_hp = discriminator

        # the expert's pairs: (s, a), or (s, s') without reading an action
        self.state_only = pairs == "state_next_state"
        obs, next_obs = kept_states(demonstrations)
        second = next_obs if self.state_only else kept_actions(demonstrations)
        self.expert_obs = torch.as_tensor(obs, device=self.device)
        # (n,) or (n, action_dim) actions, or (n, obs_dim) next observations
        self.expert_second = torch.as_tensor(second.reshape(len(second), -1) if self.state_only
                                             else second, device=self.device)  # fmt: skip

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
        self.discriminator, self.disc_optimizer = build_discriminator(
            discriminator, env, obs, absorbing=absorbing, pairs=pairs, device=self.device
        )
        self.generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.reward_scale = RunningMeanStd()
        self._policy_obs: list[torch.Tensor] = []  # the generator's pairs since the last update
        self._policy_second: list[torch.Tensor] = []
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

    @staticmethod
    def check_config(values: dict, prefix: str) -> None:
        """A BC warm start fits the demonstrations' actions, which state-only imitation never
        reads."""
        check_bc_reads_actions(values, prefix)

    def absorbing_reward(self) -> float:
        """The configured reward form of the absorbing state, per step spent in it."""
        return absorbing_reward(self.discriminator, self.reward_form)

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
        second = next_obs if self.state_only else acts
        self._policy_second.append(second)
        rewards = self.reward(obs, second)
        self._reward_sum += rewards.sum().item()
        self._reward_count += rewards.numel()
        if self.absorbing:
            self._policy_terminals += int(terminated.sum())
            gamma = self.trainer.hp.gamma
            rewards = add_absorbing_tail(rewards, terminated, self.absorbing_reward(), gamma)
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
        policy_second = torch.cat(self._policy_second)
        self._policy_obs, self._policy_second = [], []
        disc = self.discriminator
        stats = train_discriminator(
            disc,
            self.disc_optimizer,
            self.disc_hp,
            expert_in=disc.encode(self.expert_obs, self.expert_second),  # (n_expert, in_dim)
            policy_in=disc.encode(policy_obs, policy_second),  # (n_policy, in_dim)
            n_expert_terminals=self.n_expert_terminals,
            n_policy_terminals=self._policy_terminals,
            gamma=self.trainer.hp.gamma,
            n_updates=self.n_disc_updates,
            reward_form=self.reward_form,
            generator=self.generator,
        )
        self._policy_terminals = 0
        self._disc_steps += self.n_disc_updates
        return stats

    # BC warm start ---------------------------------------------------------------------------

    def _bc_warm_start(self) -> float:
        """Fit the generator policy's actor to the demonstrations with BC's own loop."""
        policy = self.trainer.policy
        if policy.normalize_obs:  # the demonstrations seed the running observation statistics
            policy.update_obs_stats(self.expert_obs)
        result = fit(
            _ActorAsBCPolicy(policy),
            self.expert_obs[:, None].cpu().numpy(),  # windows of one frame
            self.expert_second.cpu().numpy(),  # actions: no warm start is state-only
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
        learn_in_rounds(self, logger, checkpoint, "GAIL")

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
            stats = {}  # with train_on_true_reward the discriminator stays untrained
            if not self.train_on_true_reward:
                stats = self.update_discriminator()
                stats["train/disc_reward_mean"] = self._reward_sum / max(1, self._reward_count)
                self._reward_sum, self._reward_count = 0.0, 0
            end_round(self, stats, "GAIL")

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
