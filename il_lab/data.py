"""Demonstration data: whole trajectories, stored as ``.npz``, and the views learners derive.

Trajectories are what is stored; (obs, acts) pairs, (s, s') pairs and stacked windows are derived
by functions, so one data set serves every learner.
"""

import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from il_lab.envs import EnvSpec, describe_space, descriptions_match
from il_lab.errors import ConfigError

FORMAT_VERSION = 1
# demos.path=minari:<dataset id> names a dataset in Minari's local datasets root.
MINARI_PREFIX = "minari:"
# A run folder's record of the demonstrations file it used (read by python -m il_lab.demos).
SOURCE_RECORD = "demonstrations.json"


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


def _read_npz(path: Path, refuse: Callable[[str], ConfigError]) -> tuple[dict, dict]:
    """The arrays of an ``.npz`` written by ``save_trajectories``, and its metadata."""
    if not path.is_file():
        raise refuse(
            f"does not exist; allowed: an .npz file written by il_lab, {MINARI_PREFIX}<dataset id> "
            "or a Minari dataset folder"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise refuse(
            f"is not a readable il_lab demonstrations file ({type(e).__name__}: {e})"
        ) from e
    return arrays, meta


def stored_env_id(path: str | Path, key: str) -> str:
    """The env id an ``.npz`` of demonstrations was recorded in (before it can be loaded)."""
    _, meta = _read_npz(Path(path), lambda why: ConfigError(f"{key}={str(path)!r} {why}"))
    return str(meta.get("env_id"))


def load_trajectories(path: str | Path, env: EnvSpec, key: str = "demos.path") -> list[Trajectory]:
    """Read and validate demonstrations against ``env``: our ``.npz``, or a Minari dataset.

    ``minari:<dataset id>`` (in Minari's local datasets root) or a folder is read as a Minari
    dataset (``il_lab.minari_io``); anything else as an ``.npz`` written by ``save_trajectories``.

    Raises:
        ConfigError: naming ``key`` and the source when it is missing, corrupt, or made for
            another env (id, observation shape or action space).
    """
    if str(path).startswith(MINARI_PREFIX) or Path(path).is_dir():
        from il_lab.minari_io import load_minari  # lazily: Minari is an optional dependency

        return load_minari(str(path), env, key=key)
    path = Path(path)

    def refuse(why: str) -> ConfigError:
        return ConfigError(f"{key}={str(path)!r} {why}")

    arrays, meta = _read_npz(path, refuse)
    missing = {"obs", "acts", "rews", "lengths", "terminated", "truncated"} - set(arrays)
    if missing:
        raise refuse(f"lacks the arrays {sorted(missing)}")
    lengths = arrays["lengths"]
    n = len(lengths)
    if n == 0 or np.any(lengths < 1):
        raise refuse("holds no episodes, or an empty one")
    expected = {"obs": lengths.sum() + n, "acts": lengths.sum(), "rews": lengths.sum()}
    for name, size in expected.items():
        if len(arrays[name]) != size:
            raise refuse(f"is inconsistent: {len(arrays[name])} rows of {name!r}, expected {size}")
    if len(arrays["terminated"]) != n or len(arrays["truncated"]) != n:
        raise refuse("is inconsistent: episode-end flags do not match the episode count")
    check_spaces(
        env,
        refuse,
        env_id=meta.get("env_id"),
        obs_shape=arrays["obs"].shape[1:],
        action_space=meta.get("action_space", {}),
    )
    acts = arrays["acts"]
    check_actions(env, refuse, acts)

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


def record_source(
    run_dir: Path,
    source: str | Path,
    *,
    env: EnvSpec,
    demo_transitions: int | None,
    by_expert: bool,
) -> None:
    """Write into ``run_dir`` which demonstrations it trained on, for ``python -m il_lab.demos``.

    Args:
        source: the file (recorded as an absolute path) or ``minari:<id>`` they came from.
        demo_transitions: the cap the run applied (``cap_transitions``), None for none.
        by_expert: they are the run's expert's (else the user's own).
    """
    if not str(source).startswith(MINARI_PREFIX):
        source = Path(source).resolve()
    record = {
        "path": str(source),
        "env_id": env.id,
        "max_episode_steps": env.max_episode_steps,
        "demo_transitions": demo_transitions,
        "by_expert": by_expert,
    }
    (run_dir / SOURCE_RECORD).write_text(json.dumps(record, indent=2) + "\n")


def recorded_source(run_dir: Path) -> dict | None:
    """What ``record_source`` wrote for ``run_dir``; None if it wrote nothing (an older run)."""
    record = run_dir / SOURCE_RECORD
    return json.loads(record.read_text()) if record.is_file() else None
