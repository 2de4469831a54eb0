"""Evaluate any ``Policy`` on fixed env seeds; the random baseline; the normalized score."""

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from il_lab.envs import EnvSpec
from il_lab.interfaces import Policy
from il_lab.rollout import rollout


@dataclass(frozen=True)
class EvalResult:
    returns: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))


def eval_seeds(first_seed: int, n_episodes: int) -> list[int]:
    """The env seeds every policy of a run (and of every run) is evaluated on."""
    return list(range(first_seed, first_seed + n_episodes))


def evaluate(policy: Policy, env: EnvSpec, seeds: list[int], desc: str | None = None) -> EvalResult:
    """Deterministic actions, one episode per seed."""
    trajectories = rollout(policy, env, seeds, deterministic=True, desc=desc)
    return EvalResult([t.episode_return for t in trajectories])


def normalized_score(learner: float, random: float, expert: float) -> float:
    """``(R - R_random) / (R_expert - R_random)``: 0 is random, 1 is the expert."""
    gap = expert - random
    if abs(gap) < 1e-8:
        return float("nan")
    return (learner - random) / gap


class RandomPolicy:
    """Uniform random actions from the env's action space, seeded."""

    def __init__(self, action_space: gym.Space, seed: int) -> None:
        self.action_space = action_space
        self.action_space.seed(seed)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        actions = np.stack([self.action_space.sample() for _ in range(len(observation))])
        return actions, state
