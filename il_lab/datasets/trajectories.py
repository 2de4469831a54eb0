"""Demonstration data: whole trajectories, and the views learners derive from them.

Trajectories are what is stored; (obs, acts) pairs, (s, s') pairs and stacked windows are derived
by functions, so one data set serves every learner. Every source (``.npz``, Minari) checks what it
reads against the env with ``check_spaces`` and ``check_actions``.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from il_lab.envs import EnvSpec, describe_space, descriptions_match
from il_lab.errors import ConfigError


@dataclass(frozen=True)
class Trajectory:
    """One episode.

    Attributes:
        obs: ``(T + 1, *obs_shape)`` every observation, the last one included.
        acts: ``(T, *action_shape)`` the action taken after each of the first T observations.
        rews: ``(T,)`` rewards.
        terminated: the episode ended in a terminal state (no bootstrapping past it).
        truncated: the episode was cut by a time limit.
    """

    obs: np.ndarray
    acts: np.ndarray
    rews: np.ndarray
    terminated: bool
    truncated: bool

    def __post_init__(self) -> None:
        if len(self.obs) != len(self.acts) + 1:
            raise ValueError(
                f"a trajectory needs one more observation than actions: "
                f"{len(self.obs)} observations, {len(self.acts)} actions"
            )
        if len(self.rews) != len(self.acts):
            raise ValueError(f"{len(self.rews)} rewards for {len(self.acts)} actions")
        if len(self.acts) < 1:
            raise ValueError("a trajectory needs at least one action")

    def __len__(self) -> int:
        return len(self.acts)

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rews))


def cap_transitions(
    trajectories: Sequence[Trajectory], max_transitions: int | None
) -> list[Trajectory]:
    """Keep only the first ``max_transitions`` transitions; a cut episode is marked truncated."""
    if max_transitions is None:
        return list(trajectories)
    kept, left = [], max_transitions
    for traj in trajectories:
        if left <= 0:
            break
        if len(traj) <= left:
            kept.append(traj)
        else:
            kept.append(
                Trajectory(traj.obs[: left + 1], traj.acts[:left], traj.rews[:left], False, True)
            )
        left -= len(kept[-1])
    return kept


def stack_windows(obs: np.ndarray, context_len: int) -> np.ndarray:
    """Windows of the last ``context_len`` observations of one episode, padded at its start.

    Args:
        obs: ``(T, obs_dim)`` consecutive observations of one episode, starting at its reset.

    Returns:
        ``(T, context_len, obs_dim)``: row t is ``[obs[t-K+1], ..., obs[t]]`` with indices below 0
        replaced by ``obs[0]``, exactly the history ``StackedObsPolicy`` keeps while acting.
    """
    offsets = np.arange(-context_len + 1, 1)  # (K,)
    index = np.clip(np.arange(len(obs))[:, None] + offsets[None, :], 0, None)  # (T, K)
    return obs[index]


def windows_and_actions(
    trajectories: Sequence[Trajectory], context_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """BC training pairs: windows ``(N, context_len, obs_dim)``, actions ``(N, *action_shape)``."""
    windows = [
        stack_windows(t.obs[:-1].reshape(len(t), -1).astype(np.float32), context_len)
        for t in trajectories
    ]
    return np.concatenate(windows), np.concatenate([t.acts for t in trajectories])


def check_spaces(
    env: EnvSpec,
    refuse: Callable[[str], ConfigError],
    *,
    env_id: str | None,
    obs_shape: tuple[int, ...],
    action_space: dict,
) -> None:
    """Demonstrations (of any source) were recorded in ``env``: same id, shapes and actions.

    Args:
        refuse: turns a reason into the ``ConfigError`` to raise (it names the key and source).
        env_id: the env the demonstrations were recorded in.
        obs_shape: the shape of one stored observation.
        action_space: ``describe_space`` of the stored action space.
    """
    obs_space, act_space = env.observation_space, env.action_space
    if env_id != env.id:
        raise refuse(f"holds demonstrations of env {env_id!r}, not env.id={env.id!r}")
    if tuple(obs_shape) != obs_space.shape:
        raise refuse(
            f"has observations of shape {tuple(obs_shape)}, the env's are {obs_space.shape}"
        )
    if not descriptions_match(action_space, describe_space(act_space)):
        raise refuse(f"was made for action space {action_space}, the env has {act_space}")


def check_actions(env: EnvSpec, refuse: Callable[[str], ConfigError], acts: np.ndarray) -> None:
    """Every stored action ``(N, *action_shape)`` is finite and in ``env``'s action space."""
    act_space = env.action_space
    if acts.shape[1:] != act_space.shape or not np.all(np.isfinite(acts)):
        raise refuse(f"holds actions of shape {acts.shape[1:]}, the env's are {act_space.shape}")
    if isinstance(act_space, gym.spaces.Discrete) and (
        acts.min() < act_space.start or acts.max() >= act_space.start + act_space.n
    ):
        raise refuse(f"holds actions outside the env's action space {act_space}")
