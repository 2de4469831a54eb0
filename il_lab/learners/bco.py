"""BCO(alpha), behavioural cloning from observation (Torabi, Warnell & Stone 2018).

The demonstrations' actions are never read: the learner interacts with the env under a random
exploration policy, fits an inverse-dynamics model p(a | s, s') on its own transitions, infers the
actions behind each demonstrated (s, s') pair, and trains BC on them. With alpha > 0 it then
iterates: roll out the current policy for alpha times the pre-demonstration steps, add those
transitions to the inverse-dynamics data, refit, relabel, retrain BC.

Reads ``obs`` of the demonstrations only (``acts`` solely for a diagnostic tag that never
reaches training: ``data/inferred_action_agreement`` for Discrete actions, ``data/
inferred_action_mse`` for Box). Its x-axis is env steps for the rollout and data tags, gradient
steps for the losses.

The inverse-dynamics model is a ``StackedObsPolicy`` over one frame ``[s, s' - s]``: with
small-timestep physics the action shows in the change of state, which is small beside the state
itself, so the change is an input of its own, normalized per dimension (the model's data, the
learner's own interaction, is broad, so no dimension's scale is degenerate). It shares BC's
networks, heads and training loop: cross-entropy over Discrete actions, a Gaussian
log-likelihood over Box actions (the mean, clipped to the bounds, is the inferred action).
Exploration draws actions uniformly from the action space, so a Box space is covered to its
bounds; later iterations roll out the BC policy stochastically, or, with ``exploration_noise``,
its deterministic action perturbed by noise that may decay over the iterations.

The model is only as good as its data is close to the expert's transitions: fitted on uniform
exploration of Hopper, it infers the expert's actions little better than a constant guess; fitted
on the expert's own states under noisy actions, tens of times better
(``experiments/results/bco.md``). So the iterations' rollouts are what make BCO work on gait
envs, and ``idm_buffer_size`` lets the newest of them replace the early exploration.
"""

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from il_lab.config.schema import AtLeast, Fraction, NonNegative, Null, Positive, Size
from il_lab.datasets.trajectories import Trajectory, windows_and_actions
from il_lab.envs import EnvSpec
from il_lab.interaction import Actor, EnvStepper
from il_lab.interfaces import LearnerInputs
from il_lab.learners.bc import BC
from il_lab.learners.supervised import FitTags, fit
from il_lab.policies import StackedObsPolicy
from il_lab.runtime.checkpoint import Checkpoint

log = logging.getLogger(__name__)

IDM_TAGS = FitTags(
    train_loss="train/idm_loss",
    train_accuracy=None,
    val_loss="val/idm_loss",  # on held-out interaction data
    val_accuracy="train/idm_accuracy",  # on held-out interaction data (Discrete actions)
)


def idm_inputs(obs: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """The inverse-dynamics model's windows ``(N, 1, 2 obs_dim)``: one frame ``[s, s' - s]``."""
    obs = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
    next_obs = np.asarray(next_obs, dtype=np.float32).reshape(len(next_obs), -1)
    return np.concatenate([obs, next_obs - obs], axis=1)[:, None, :]


def perturbed(
    action: np.ndarray, noise: float, space: gym.spaces.Box, rng: np.random.Generator
) -> np.ndarray:
    """``action`` plus Gaussian noise of ``noise`` times each dimension's half range, clipped to
    the bounds: the exploration of BCO's rounds around a deterministic action."""
    half_range = (space.high - space.low) / 2
    action = action + noise * half_range * rng.standard_normal(np.shape(action))
    return np.clip(action, space.low, space.high).astype(space.dtype)


def build_idm(
    network: Callable[..., nn.Module], env: EnvSpec, device: torch.device | str = "cpu"
) -> StackedObsPolicy:
    """A fresh inverse-dynamics model for ``env``: ``p(a | s, s' - s)`` (``idm_inputs``)."""
    kwargs = {"obs_dim": 2 * env.obs_dim, "context_len": 1}
    return StackedObsPolicy(
        network=network(**kwargs),
        network_kwargs={**getattr(network, "keywords", {}), **kwargs},
        observation_space=gym.spaces.Box(-np.inf, np.inf, (2 * env.obs_dim,), np.float32),
        action_space=env.action_space,
        context_len=1,
        obs_norm="per_dim",
    ).to(device)


class BCO:
    def __init__(
        self,
        *,
        bc: Callable[..., BC],
        idm_network: Callable[..., nn.Module],
        idm_learning_rate: Annotated[float, Positive],
        idm_batch_size: Size,
        idm_gradient_steps: Size,
        idm_val_fraction: Annotated[float, Fraction],
        total_env_steps: Size,
        alpha: Annotated[float, NonNegative],
        n_iterations: Annotated[int, AtLeast(0)],
        warm_start: bool = False,
        exploration_noise: Annotated[
            float | None, NonNegative, Null("sample the policy's own action distribution")
        ] = None,
        exploration_noise_final: Annotated[
            float | None, NonNegative, Null("exploration_noise in every iteration")
        ] = None,
        idm_buffer_size: Annotated[int | None, AtLeast(1), Null("every transition so far")] = None,
        inputs: LearnerInputs,
    ) -> None:
        """``exploration_noise`` in the iterations' rollouts: for Box actions the standard
        deviation of Gaussian noise, as a fraction of each dimension's half range, added to the
        policy's deterministic action (then clipped to the bounds); for Discrete actions the
        probability of a uniformly random action instead of the policy's most likely one. It
        moves linearly to ``exploration_noise_final`` by the last iteration. ``idm_buffer_size``
        keeps only the newest interaction transitions for the inverse-dynamics model."""
        self.idm_network = idm_network
        self.idm_fit = dict(
            learning_rate=idm_learning_rate,
            batch_size=idm_batch_size,
            gradient_steps=idm_gradient_steps,
            weight_decay=0.0,
            val_fraction=idm_val_fraction,
            val_interval=max(1, idm_gradient_steps // 5),
            patience=idm_gradient_steps,  # fixed budget: validation only measures accuracy
        )
        env, demonstrations = inputs.env, inputs.demonstrations
        self.env = env
        self.warm_start = warm_start
        self.exploration_noise = exploration_noise
        self.exploration_noise_final = exploration_noise_final
        self.idm_buffer_size = idm_buffer_size
        self.rng = inputs.rng
        self.device = inputs.device
        # State-only demonstrations: the actions are not kept for training.
        self.demo_obs = [
            np.asarray(t.obs, dtype=np.float32).reshape(len(t.obs), -1) for t in demonstrations
        ]
        self.demo_ends = [(t.terminated, t.truncated, t.kept) for t in demonstrations]
        self._diagnostic_acts = [t.acts for t in demonstrations]
        # Split the budget exactly: n_iterations rounds of alpha x the pre-demonstration steps.
        self.post_demo_env_steps = int(alpha * total_env_steps / (1 + alpha * n_iterations))
        self.n_iterations = n_iterations if self.post_demo_env_steps > 0 else 0
        self.pre_demo_env_steps = total_env_steps - self.n_iterations * self.post_demo_env_steps
        # BC starts on the state-only demonstrations with placeholder actions (zeros), which it
        # never trains on: every BC round first replaces them with the inferred ones.
        placeholder = [
            Trajectory(
                obs,
                np.zeros((len(obs) - 1, *env.action_space.shape), env.action_space.dtype),
                np.zeros(len(obs) - 1, np.float32),
                terminated,
                truncated,
                kept,
            )
            for obs, (terminated, truncated, kept) in zip(
                self.demo_obs, self.demo_ends, strict=True
            )
        ]
        # BC never sees the expert nor the demonstrations' actions.
        self.bc = bc(inputs=replace(inputs, demonstrations=placeholder, expert=None))
        self.idm: StackedObsPolicy | None = None
        self._idm_steps = 0
        self._env_steps = 0
        self.pairs = np.zeros((0, 2, env.obs_dim), dtype=np.float32)  # (N, [s, s'], obs_dim)
        self.pair_actions: np.ndarray | None = None

    def _add_interaction(self, windows: np.ndarray, actions: np.ndarray) -> None:
        self.pairs = np.concatenate([self.pairs, windows])
        self.pair_actions = (
            actions if self.pair_actions is None else np.concatenate([self.pair_actions, actions])
        )
        if self.idm_buffer_size is not None:
            self.pairs = self.pairs[-self.idm_buffer_size :]
            self.pair_actions = self.pair_actions[-self.idm_buffer_size :]

    def noise_at(self, iteration: int) -> float | None:
        """The exploration noise of ``iteration`` (1 to ``n_iterations``)."""
        start, final = self.exploration_noise, self.exploration_noise_final
        if start is None or final is None or self.n_iterations <= 1:
            return start
        return start + (final - start) * (iteration - 1) / (self.n_iterations - 1)

    def _rollout_actor(self, actor: Actor, iteration: int, logger: SummaryWriter | None):
        """What acts in ``iteration``'s rollouts: the policy, sampled or with added noise."""
        noise = self.noise_at(iteration)
        actor.deterministic = noise is not None
        if noise is None:
            return actor
        if logger is not None:
            logger.add_scalar("rollout/exploration_noise", noise, self._env_steps)
        space = self.env.action_space
        if isinstance(space, gym.spaces.Discrete):

            def act(obs: np.ndarray, episode_start: bool) -> np.ndarray:
                action = actor(obs, episode_start)  # the history advances whoever acts
                if self.rng.random() < noise:
                    return np.asarray(space.start + self.rng.integers(space.n), dtype=action.dtype)
                return action

            return act
        return lambda obs, episode_start: perturbed(
            actor(obs, episode_start), noise, space, self.rng
        )

    def _build_idm(self) -> StackedObsPolicy:
        return build_idm(self.idm_network, self.env, self.device)

    def _fit_idm(self, logger: SummaryWriter | None) -> None:
        inputs = idm_inputs(self.pairs[:, 0], self.pairs[:, 1])
        if self.idm is None:
            self.idm = self._build_idm()
            self.idm.fit_normalization(inputs[:, 0])
        result = fit(
            self.idm,
            inputs,
            self.pair_actions,
            rng=self.rng,
            logger=logger,
            step_offset=self._idm_steps,
            tags=IDM_TAGS,
            desc="BCO inverse dynamics",
            **self.idm_fit,
        )
        self._idm_steps += result.gradient_steps

    def _infer_demonstrations(self, logger: SummaryWriter | None) -> list[Trajectory]:
        inferred, true, guessed = [], [], []
        for obs, (terminated, truncated, kept), true_acts in zip(
            self.demo_obs, self.demo_ends, self._diagnostic_acts, strict=True
        ):
            acts = self.idm.act_on_windows(idm_inputs(obs[:-1], obs[1:]))
            episode = Trajectory(
                obs, acts, np.zeros(len(acts), np.float32), terminated, truncated, kept
            )
            inferred.append(episode)  # BC trains on its kept transitions only
            if true_acts is not None and np.shape(true_acts) == acts.shape:
                true.append(np.asarray(true_acts)[episode.kept_index])
                guessed.append(acts[episode.kept_index])
        if logger is not None and true:
            # Diagnosis only, never trained on: how close the inferred actions are to the file's.
            true, guessed = np.concatenate(true), np.concatenate(guessed)
            if isinstance(self.env.action_space, gym.spaces.Discrete):
                tag, value = "data/inferred_action_agreement", np.mean(true == guessed)
            else:
                tag, value = "data/inferred_action_mse", np.mean((true - guessed) ** 2)
            logger.add_scalar(tag, float(value), self._env_steps)
        return inferred

    def _train_bc(self, logger: SummaryWriter | None) -> None:
        self.bc.demonstrations = self._infer_demonstrations(logger)
        if not self.warm_start and self.bc.gradient_steps:
            self.bc.reset_policy()
        # BC.learn would log the (fixed) number of demonstrated windows at step 0 every round.
        self.bc.train_on(*windows_and_actions(self.bc.demonstrations, self.bc.context_len), logger)

    def learn(
        self, logger: SummaryWriter | None = None, checkpoint: Checkpoint | None = None
    ) -> None:
        """Exploration, then ``n_iterations`` rounds; with ``checkpoint``, save after each and
        continue after the last saved one if there is one."""
        stepper = EnvStepper(self.env, self.rng, context_len=1)
        action_space = self.env.action_space
        action_space.seed(int(self.rng.integers(2**31)))
        # One actor for the whole run: an episode that outlives a round keeps its history.
        policy_actor = Actor(self.bc.policy, deterministic=False)

        def explore(obs: np.ndarray, episode_start: bool) -> np.ndarray:
            policy_actor.observe(obs, episode_start)  # the policy may take over mid-episode
            return action_space.sample()

        saved = checkpoint.resume() if checkpoint is not None else None
        try:
            if saved is None:
                # pre-demonstration phase: random exploration
                steps = stepper.step(self.pre_demo_env_steps, explore)
                self._record(steps, logger)
                self._fit_idm(logger)
                self._train_bc(logger)
                self._save(checkpoint, stepper, policy_actor, 0)
                done = 0
            else:
                done = self._restore(saved, stepper, policy_actor)
            for iteration in range(done + 1, self.n_iterations + 1):
                policy_actor.policy = self.bc.policy  # retrained, or rebuilt (warm_start false)
                act = self._rollout_actor(policy_actor, iteration, logger)
                steps = stepper.step(self.post_demo_env_steps, act)
                self._record(steps, logger)
                self._fit_idm(logger)
                self._train_bc(logger)
                self._save(checkpoint, stepper, policy_actor, iteration)
        finally:
            stepper.close()

    def _save(
        self, checkpoint: Checkpoint | None, stepper: EnvStepper, actor: Actor, iteration: int
    ) -> None:
        """Everything the iterations after ``iteration`` (0: exploration) depend on."""
        if checkpoint is None:
            return
        state = {
            "iteration": iteration,
            "pairs": self.pairs,
            "pair_actions": self.pair_actions,
            "idm": self.idm.state_dict(),
            "idm_steps": self._idm_steps,
            "env_steps": self._env_steps,
            "bc": self.bc.state_dict(),
            "rng": self.rng.bit_generator.state,
            "stepper": stepper.state_dict(),
            "policy_memory": actor.state,
        }
        checkpoint.save(state, f"BCO iteration {iteration}, {self._env_steps} env steps")

    def _restore(self, saved: dict, stepper: EnvStepper, actor: Actor) -> int:
        """Put back what ``_save`` wrote; returns the iteration it was saved after."""
        self.pairs, self.pair_actions = saved["pairs"], saved["pair_actions"]
        # Building draws initial weights, which the run drew long before this checkpoint: keep
        # them off the restored generator.
        with torch.random.fork_rng(devices=[]):
            self.idm = self._build_idm()
        self.idm.load_state_dict(saved["idm"])
        self._idm_steps, self._env_steps = saved["idm_steps"], saved["env_steps"]
        # The policy's observation statistics come from the demonstrations' observations, the
        # same whatever actions were inferred; the inferred actions are redone every round.
        self.bc.load_state_dict(saved["bc"])
        self.rng.bit_generator.state = saved["rng"]
        stepper.load_state_dict(saved["stepper"])
        if stepper.episode_obs:
            actor.state = saved["policy_memory"]
        return saved["iteration"]

    def _record(self, steps, logger: SummaryWriter | None) -> None:
        self._add_interaction(np.stack([steps.obs, steps.next_obs], axis=1), steps.acts)
        self._env_steps += len(steps.obs)
        if logger is not None:
            logger.add_scalar("data/n_transitions", len(self.pairs), self._env_steps)
            if steps.episode_returns:
                logger.add_scalar(
                    "rollout/ep_rew_mean", float(np.mean(steps.episode_returns)), self._env_steps
                )

    @property
    def policy(self):
        return self.bc.policy

    @property
    def env_steps(self) -> int:
        return self._env_steps

    @property
    def expert_queries(self) -> int:
        return 0

    @property
    def gradient_steps(self) -> int:
        return self._idm_steps + self.bc.gradient_steps
