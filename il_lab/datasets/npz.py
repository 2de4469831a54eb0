"""Trajectories in one ``.npz`` file with the env they belong to: il_lab's own format."""

import json
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from il_lab.datasets.minari_io import MINARI_PREFIX
from il_lab.datasets.trajectories import Trajectory, check_actions, check_spaces
from il_lab.envs import EnvSpec, describe_space
from il_lab.errors import ConfigError

FORMAT_VERSION = 1


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


def load_npz(path: str | Path, env: EnvSpec, key: str) -> list[Trajectory]:
    """Read and validate an ``.npz`` written by ``save_trajectories`` against ``env``."""
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
