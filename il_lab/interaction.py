"""Step one env for a given number of steps at a time, across calls: the online learners' loop.

DAgger and BCO interact in rounds that need not end with an episode, so the env, its current
episode and the episode's observations persist between calls, and so does what acts on it: an
``Actor`` keeps its policy's ``state`` (a Transformer's observation history) for as long as the
episode lasts, across round boundaries, even when the learner swaps in retrained weights.
Episodes are reset with seeds drawn from the learner's generator.
"""

import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from gymnasium.utils import EzPickle

from il_lab.datasets.trajectories import stack_windows
from il_lab.envs import EnvSpec
from il_lab.interfaces import Policy

log = logging.getLogger(__name__)

# act(obs (obs_dim,), episode_start) -> action for that single observation
ActFn = Callable[[np.ndarray, bool], np.ndarray]


class Actor:
    """An ``ActFn`` for one env that keeps the policy's ``state`` from step to step.

    Make one per env and keep it across rounds: the state is the policy's memory of the current
    episode, reset only by ``episode_start``. ``policy`` may be replaced between rounds by a
    retrained one of the same kind (its state, the raw observation history, stays valid).
    """

    def __init__(self, policy: Policy, deterministic: bool = True) -> None:
        self.policy = policy
        self.deterministic = deterministic
        self.state = None

    def __call__(self, obs: np.ndarray, episode_start: bool) -> np.ndarray:
        actions, self.state = self.policy.predict(
            obs[None], self.state, np.array([episode_start]), self.deterministic
        )
        return actions[0]

    def observe(self, obs: np.ndarray, episode_start: bool) -> None:
        """Remember ``obs`` while something else acts, so the history stays the episode's."""
        if hasattr(self.policy, "advance"):  # a StackedObsPolicy: the history, no forward pass
            self.state = self.policy.advance(self.state, obs[None], np.array([episode_start]))
        else:
            self(obs, episode_start)


@dataclass(frozen=True)
class Steps:
    """What ``EnvStepper.step`` saw, one row per env step.

    Attributes:
        obs: ``(n, obs_dim)`` the observation acted on.
        windows: ``(n, context_len, obs_dim)`` its episode's history, padded as in training.
        acts: ``(n, *action_shape)`` the action taken.
        next_obs: ``(n, obs_dim)`` the observation that followed (the final one at an episode end).
        episode_returns: returns of the episodes that ended during these steps.
    """

    obs: np.ndarray
    windows: np.ndarray
    acts: np.ndarray
    next_obs: np.ndarray
    episode_returns: list[float]


class EnvStepper:
    def __init__(self, env: EnvSpec, rng: np.random.Generator, context_len: int = 1) -> None:
        self.env = env.make()
        self.rng = rng
        self.context_len = context_len
        self.episode_obs: list[np.ndarray] = []
        self.episode_return = 0.0
        self.total_steps = 0

    def _reset(self) -> None:
        obs, _ = self.env.reset(seed=int(self.rng.integers(2**31)))
        self.episode_obs = [np.asarray(obs, dtype=np.float32).ravel()]
        self.episode_return = 0.0

    def step(self, n_steps: int, act: ActFn) -> Steps:
        rows: dict[str, list] = {"obs": [], "windows": [], "acts": [], "next_obs": []}
        returns = []
        for _ in range(n_steps):
            if not self.episode_obs:
                self._reset()
            obs = self.episode_obs[-1]
            recent = np.asarray(self.episode_obs[-self.context_len :])
            window = stack_windows(recent, self.context_len)
            action = act(obs, len(self.episode_obs) == 1)
            next_obs, reward, terminated, truncated, _ = self.env.step(
                action.item() if np.ndim(action) == 0 else action
            )
            next_obs = np.asarray(next_obs, dtype=np.float32).ravel()
            rows["obs"].append(obs)
            rows["windows"].append(window[-1])
            rows["acts"].append(action)
            rows["next_obs"].append(next_obs)
            self.episode_return += float(reward)
            self.total_steps += 1
            if terminated or truncated:
                returns.append(self.episode_return)
                self.episode_obs = []
            else:
                self.episode_obs.append(next_obs)
        return Steps(**{k: np.asarray(v) for k, v in rows.items()}, episode_returns=returns)

    def state_dict(self) -> dict:
        """The episode in progress, for a checkpoint: the env itself only where it can be saved.

        Envs that pickle their attributes (classic control) come back mid-episode. Envs that
        pickle their constructor arguments instead (``EzPickle``: MuJoCo, Box2D) would come
        back reset, so they are not saved and a resumed stepper starts a new episode.
        """
        env = None
        if not isinstance(self.env.unwrapped, EzPickle):
            try:
                env = pickle.dumps(self.env)
            except Exception as error:  # an env holding an unpicklable resource
                log.debug("env %s not saved (%s): resuming starts a new episode", self.env, error)
        return {
            "env": env,
            "episode_obs": list(self.episode_obs) if env is not None else [],
            "episode_return": self.episode_return,
            "total_steps": self.total_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["env"] is not None:
            self.env.close()
            self.env = pickle.loads(state["env"])
        self.episode_obs = list(state["episode_obs"])  # empty: the next step resets
        self.episode_return = state["episode_return"]
        self.total_steps = state["total_steps"]

    def close(self) -> None:
        self.env.close()
