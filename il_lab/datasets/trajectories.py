"""Demonstration data: whole trajectories, and the views learners derive from them.

Trajectories are what is stored; (obs, acts) pairs, (s, s') pairs and stacked windows are derived
by functions, so one data set serves every learner. Every source (``.npz``, Minari) checks what it
reads against the env with ``check_spaces`` and ``check_actions``.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

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
        kept: ``(k,)`` increasing indices of the transitions a learner may use (``subsample``);
            None: all of them. The episode's other steps stay in ``obs`` only so that a kept
            transition keeps its place (its ``s'``, its stacked window, whether it ends the
            episode); learners read kept transitions alone (``kept_index``).
    """

    obs: np.ndarray
    acts: np.ndarray
    rews: np.ndarray
    terminated: bool
    truncated: bool
    kept: np.ndarray | None = None

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
        if (
            self.kept is not None
            and len(self.kept)
            and (
                np.any(np.diff(self.kept) <= 0)
                or self.kept[0] < 0
                or self.kept[-1] >= len(self.acts)
            )
        ):
            raise ValueError(f"kept transitions must increase within [0, {len(self.acts)})")

    def __len__(self) -> int:
        return len(self.acts)

    @property
    def kept_index(self) -> np.ndarray:
        """``(k,)`` the transitions a learner may use."""
        return np.arange(len(self.acts)) if self.kept is None else self.kept

    @property
    def n_kept(self) -> int:
        return len(self.kept_index)

    @property
    def ends_in_kept_terminal(self) -> bool:
        """The episode terminated and its last, terminal transition is kept."""
        return self.terminated and (self.kept is None or len(self.acts) - 1 in self.kept)

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


def subsample(
    trajectories: Sequence[Trajectory], every: int, rng: np.random.Generator
) -> list[Trajectory]:
    """Keep one transition every ``every`` steps of each episode, from a random offset in
    ``[0, every)`` drawn per episode (GAIL's and DAC's protocol); 1 keeps them all.

    A kept transition is unchanged: its s, a, s' and whether it ends the episode.
    """
    if every == 1:
        return list(trajectories)
    return [
        replace(t, kept=np.arange(int(rng.integers(every)), len(t), every)) for t in trajectories
    ]


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
    """BC training pairs of the kept transitions: windows ``(N, context_len, obs_dim)``, actions
    ``(N, *action_shape)``. A kept step's window holds the observations before it, as the policy's
    history does while acting."""
    windows = [
        stack_windows(t.obs[:-1].reshape(len(t), -1).astype(np.float32), context_len)[t.kept_index]
        for t in trajectories
    ]
    return np.concatenate(windows), kept_actions(trajectories)


def kept_states(trajectories: Sequence[Trajectory]) -> tuple[np.ndarray, np.ndarray]:
    """The kept transitions' ``obs (N, obs_dim)`` and ``next_obs (N, obs_dim)``, float32."""
    obs = [t.obs.reshape(len(t.obs), -1).astype(np.float32) for t in trajectories]
    index = [t.kept_index for t in trajectories]
    return (
        np.concatenate([o[:-1][i] for o, i in zip(obs, index, strict=True)]),
        np.concatenate([o[1:][i] for o, i in zip(obs, index, strict=True)]),
    )


def kept_actions(trajectories: Sequence[Trajectory]) -> np.ndarray:
    """The kept transitions' actions ``(N, *action_shape)``."""
    return np.concatenate([t.acts[t.kept_index] for t in trajectories])


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
