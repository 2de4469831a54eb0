"""DAgger (Ross, Gordon & Bagnell 2011): the expert labels the states the learner itself visits.

Round 0 is BC on the expert's demonstrations. Each later round rolls out a mixture of expert and
learner (the expert acts with probability beta, per step or per episode) for ``round_env_steps``
env steps, asks the expert for the action in every visited state, adds those pairs to the data
set and retrains BC on all of it.

Reads ``obs`` and ``acts`` of the demonstrations. Its x-axis is env steps for the rollout tags and
gradient steps for the BC losses. The expert sees raw observations; the learner keeps its own
observation history, so either BC network (MLP or Transformer) works.
"""

import logging
import math
import typing
from collections.abc import Callable
from typing import Annotated, Literal

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from il_lab.config.schema import AtLeast, Size, Unit
from il_lab.datasets.trajectories import windows_and_actions
from il_lab.errors import ConfigError
from il_lab.evaluation import evaluate
from il_lab.interaction import Actor, EnvStepper
from il_lab.interfaces import LearnerInputs
from il_lab.learners.bc import BC
from il_lab.runtime.checkpoint import Checkpoint

log = logging.getLogger(__name__)

DIAGNOSTIC_SEED = 2_000_000
BetaSchedule = Literal["constant", "linear", "exponential"]


def beta_for_round(
    round_index: int, schedule: BetaSchedule, beta0: float, rampdown_rounds: int, decay: float
) -> float:
    """The probability that the expert acts in round ``round_index`` (1, 2, ...).

    constant: ``beta0``; linear: from ``beta0`` down to 0 over ``rampdown_rounds`` rounds;
    exponential: ``beta0 * decay ** (round_index - 1)``.
    """
    k = round_index - 1
    if schedule == "constant":
        return beta0
    if schedule == "linear":
        return max(0.0, beta0 * (1 - k / rampdown_rounds))
    if schedule == "exponential":
        return beta0 * decay**k
    raise ValueError(
        f"beta schedule {schedule!r}: the schema allows only {typing.get_args(BetaSchedule)}"
    )


class DAgger:
    def __init__(
        self,
        *,
        bc: Callable[..., BC],
        total_env_steps: Annotated[int, AtLeast(0)],
        round_env_steps: Size,
        beta_schedule: BetaSchedule = "constant",
        beta0: Annotated[float, Unit] = 0.0,
        rampdown_rounds: Size = 5,
        beta_decay: Annotated[float, Unit] = 0.5,
        mixture: Literal["per_step", "per_episode"] = "per_step",
        warm_start: bool = True,
        eval_episodes_per_round: Annotated[int, AtLeast(0)] = 3,
        inputs: LearnerInputs,
    ) -> None:
        if inputs.expert is None:
            raise ConfigError("DAgger queries an expert; none was given (LearnerInputs.expert)")
        self.bc = bc(inputs=inputs)
        self.env = inputs.env
        self.expert = inputs.expert
        self.rng = inputs.rng
        self.total_env_steps = total_env_steps
        self.round_env_steps = round_env_steps
        self.schedule = (beta_schedule, beta0, rampdown_rounds, beta_decay)
        self.mixture = mixture
        self.warm_start = warm_start
        self.eval_episodes_per_round = eval_episodes_per_round
        self.windows, self.actions = windows_and_actions(inputs.demonstrations, self.bc.context_len)
        self._env_steps = 0
        self._expert_queries = 0
        self.expert_acted = 0  # steps on which the expert's action was executed
        self.draws: list[bool] = []  # every expert-or-learner draw (per step or per episode)
        self.round_sizes: list[int] = []
        # Acting state that lives as long as an episode, across round boundaries: both actors'
        # memories and the current draw (per_episode: the draw of the episode's first step).
        self._expert_actor = Actor(inputs.expert)
        self._learner_actor = Actor(self.bc.policy)
        self._use_expert = False
        self._beta = 0.0
        self._labels: list[np.ndarray] = []

    @property
    def n_rounds(self) -> int:
        return math.ceil(self.total_env_steps / self.round_env_steps)

    def _act(self, obs: np.ndarray, episode_start: bool) -> np.ndarray:
        """Expert with probability beta, else the learner (an ``ActFn`` for the stepper).

        Both are queried every step: the expert's answer is the label, and the learner must see
        every observation to keep its history. Under ``per_episode`` an episode that outlives
        its round keeps its draw; the new round's beta applies from the next episode.
        """
        expert_action = self._expert_actor(obs, episode_start)
        learner_action = self._learner_actor(obs, episode_start)
        if self.mixture == "per_step" or episode_start:
            self._use_expert = bool(self.rng.random() < self._beta)
            self.draws.append(self._use_expert)
        self.expert_acted += self._use_expert
        self._labels.append(expert_action)
        return expert_action if self._use_expert else learner_action

    def learn(
        self, logger: SummaryWriter | None = None, checkpoint: Checkpoint | None = None
    ) -> None:
        """Round 0, then the mixture rounds; with ``checkpoint``, save after every round and
        continue after the last saved one if there is one."""
        stepper = EnvStepper(self.env, self.rng, self.bc.context_len)
        saved = checkpoint.resume() if checkpoint is not None else None
        try:
            if saved is None:
                if logger is not None:
                    logger.add_scalar("data/n_transitions", len(self.windows), 0)
                self.bc.train_on(self.windows, self.actions, logger, desc="DAgger round 0")
                self._save(checkpoint, stepper, 0)
                first_round = 1
            else:
                first_round = self._restore(saved, stepper) + 1
            for round_index in range(first_round, self.n_rounds + 1):
                beta = beta_for_round(round_index, *self.schedule)
                n_steps = min(self.round_env_steps, self.total_env_steps - self._env_steps)
                self._beta, self._labels = beta, []
                self._learner_actor.policy = self.bc.policy  # the weights trained so far
                steps = stepper.step(n_steps, self._act)
                labels = np.asarray(self._labels)
                self._env_steps += n_steps
                self._expert_queries += len(labels)
                self.windows = np.concatenate([self.windows, steps.windows])
                self.actions = np.concatenate([self.actions, labels.astype(self.actions.dtype)])
                self.round_sizes.append(len(labels))
                if not self.warm_start:
                    self.bc.reset_policy()
                # Statistics of the few first demonstrations would make the states the learner
                # drifts into look like huge outliers; normalize by everything gathered so far.
                self.bc.policy.fit_normalization(self.windows[:, -1])
                desc = f"DAgger round {round_index}"
                self.bc.train_on(self.windows, self.actions, logger, desc=desc)
                self._log_round(logger, beta)
                self._save(checkpoint, stepper, round_index)
        finally:
            stepper.close()

    def _save(self, checkpoint: Checkpoint | None, stepper: EnvStepper, round_index: int) -> None:
        """Everything the rounds after ``round_index`` depend on, into ``checkpoint``."""
        if checkpoint is None:
            return
        state = {
            "round": round_index,
            "bc": self.bc.state_dict(),
            "windows": self.windows,
            "actions": self.actions,
            "env_steps": self._env_steps,
            "expert_queries": self._expert_queries,
            "expert_acted": self.expert_acted,
            "draws": self.draws,
            "round_sizes": self.round_sizes,
            "rng": self.rng.bit_generator.state,
            "stepper": stepper.state_dict(),
            "expert_memory": self._expert_actor.state,
            "learner_memory": self._learner_actor.state,
            "use_expert": self._use_expert,
        }
        checkpoint.save(state, f"DAgger round {round_index}, {self._env_steps} env steps")

    def _restore(self, saved: dict, stepper: EnvStepper) -> int:
        """Put back what ``_save`` wrote; returns the round it was saved after."""
        self.bc.load_state_dict(saved["bc"])
        self.windows, self.actions = saved["windows"], saved["actions"]
        self._env_steps, self._expert_queries = saved["env_steps"], saved["expert_queries"]
        self.expert_acted, self.draws = saved["expert_acted"], saved["draws"]
        self.round_sizes = saved["round_sizes"]
        self.rng.bit_generator.state = saved["rng"]
        stepper.load_state_dict(saved["stepper"])
        if stepper.episode_obs:  # the episode goes on: so do the memories and the draw
            self._expert_actor.state = saved["expert_memory"]
            self._learner_actor.state = saved["learner_memory"]
            self._use_expert = saved["use_expert"]
        return saved["round"]

    def _log_round(self, logger: SummaryWriter | None, beta: float) -> None:
        if logger is None:
            return
        logger.add_scalar("train/beta", beta, self._env_steps)
        logger.add_scalar("data/n_transitions", len(self.windows), self._env_steps)
        if self.eval_episodes_per_round:
            # Diagnostic episodes of the learner alone, on fixed seeds of their own: they add no
            # data, are not counted as env steps, and leave the training randomness untouched.
            seeds = list(range(DIAGNOSTIC_SEED, DIAGNOSTIC_SEED + self.eval_episodes_per_round))
            ret = evaluate(self.bc.policy, self.env, seeds).mean
            logger.add_scalar("rollout/ep_rew_mean", ret, self._env_steps)
            log.info(
                "DAgger round: %d env steps, beta %.2f, learner return %.1f",
                self._env_steps,
                beta,
                ret,
            )

    @property
    def policy(self):
        return self.bc.policy

    @property
    def env_steps(self) -> int:
        return self._env_steps

    @property
    def expert_queries(self) -> int:
        return self._expert_queries

    @property
    def gradient_steps(self) -> int:
        return self.bc.gradient_steps
