"""Demonstration data: whole trajectories, stored as ``.npz``, and the views learners derive.

Trajectories are what is stored; (obs, acts) pairs, (s, s') pairs and stacked windows are derived
by functions, so one data set serves every learner.
"""

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from il_lab.envs import EnvSpec, describe_space, descriptions_match
from il_lab.errors import ConfigError

FORMAT_VERSION = 1


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


def save_trajectories(path: Path, trajectories: Sequence[Trajectory], env: EnvSpec) -> None:
    """Write trajectories and the env they belong to into one ``.npz`` (path used as given)."""
    meta = {
        "format_version": FORMAT_VERSION,
        "env_id": env.id,
        "observation_space": describe_space(env.observation_space),
        "action_space": describe_space(env.action_space),
    }
    with open(path, "wb") as f:
        np.savez_compressed(
            f,
            obs=np.concatenate([t.obs for t in trajectories]),
            acts=np.concatenate([t.acts for t in trajectories]),
            rews=np.concatenate([t.rews for t in trajectories]).astype(np.float32),
            lengths=np.array([len(t) for t in trajectories], dtype=np.int64),
            terminated=np.array([t.terminated for t in trajectories]),
            truncated=np.array([t.truncated for t in trajectories]),
            meta=np.array(json.dumps(meta)),
        )


def load_trajectories(path: str | Path, env: EnvSpec, key: str = "demos.path") -> list[Trajectory]:
    """Read and validate a demonstrations file against ``env``.

    Raises:
        ConfigError: naming ``key`` and the file when it is missing, corrupt, or made for another
            env (id, observation shape or action space).
    """
    path = Path(path)

    def refuse(why: str) -> ConfigError:
        return ConfigError(f"{key}={str(path)!r} {why}")

    if not path.is_file():
        raise refuse("does not exist; allowed: an .npz file written by il_lab")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise refuse(
            f"is not a readable il_lab demonstrations file ({type(e).__name__}: {e})"
        ) from e
    missing = {"obs", "acts", "rews", "lengths", "terminated", "truncated"} - set(arrays)
    if missing:
        raise refuse(f"lacks the arrays {sorted(missing)}")
    if meta.get("env_id") != env.id:
        raise refuse(f"holds demonstrations of env {meta.get('env_id')!r}, not env.id={env.id!r}")
    obs_space, act_space = env.observation_space, env.action_space
    lengths = arrays["lengths"]
    n = len(lengths)
    if n == 0 or np.any(lengths < 1):
        raise refuse("holds no episodes, or an empty one")
    if arrays["obs"].shape[1:] != obs_space.shape:
        raise refuse(
            f"has observations of shape {arrays['obs'].shape[1:]}, the env's are {obs_space.shape}"
        )
    if not descriptions_match(meta.get("action_space", {}), describe_space(act_space)):
        raise refuse(
            f"was made for action space {meta.get('action_space')}, the env has {act_space}"
        )
    expected = {"obs": lengths.sum() + n, "acts": lengths.sum(), "rews": lengths.sum()}
    for name, size in expected.items():
        if len(arrays[name]) != size:
            raise refuse(f"is inconsistent: {len(arrays[name])} rows of {name!r}, expected {size}")
    if len(arrays["terminated"]) != n or len(arrays["truncated"]) != n:
        raise refuse("is inconsistent: episode-end flags do not match the episode count")
    acts = arrays["acts"]
    if acts.shape[1:] != act_space.shape or not np.all(np.isfinite(acts)):
        raise refuse(f"holds actions of shape {acts.shape[1:]}, the env's are {act_space.shape}")
    if isinstance(act_space, gym.spaces.Discrete) and (
        acts.min() < act_space.start or acts.max() >= act_space.start + act_space.n
    ):
        raise refuse(f"holds actions outside the env's action space {act_space}")

    obs_ends = np.cumsum(lengths + 1)
    act_ends = np.cumsum(lengths)
    return [
        Trajectory(
            obs=arrays["obs"][oe - length - 1 : oe],
            acts=acts[ae - length : ae],
            rews=arrays["rews"][ae - length : ae],
            terminated=bool(arrays["terminated"][i]),
            truncated=bool(arrays["truncated"][i]),
        )
        for i, (length, oe, ae) in enumerate(zip(lengths, obs_ends, act_ends, strict=True))
    ]
