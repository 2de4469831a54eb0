"""Minari datasets (the Farama Foundation's successor to D4RL) in and out of our trajectories.

A Minari episode is what ``Trajectory`` holds: ``T + 1`` observations (the last included), ``T``
actions and rewards, and per-step ``terminations`` / ``truncations`` flags, of which only the last
step's may be set; they become ``Trajectory.terminated`` / ``.truncated`` and back, so a terminal
state and a time-limit cut stay apart (``tests/test_minari.py`` round-trips both).

Reading never downloads: ``minari:<id>`` must already be in Minari's local datasets root
(``MINARI_DATASETS_PATH``, else Minari's default ``~/.minari/datasets``); a user fetches it first
with ``minari download <id>``. Writing uses ``minari.create_dataset_from_buffers``, which works
offline (Minari's ``DataCollector`` would need jax). Minari is an optional dependency
(``pip install -e ".[minari]"``), imported only here and only when used.
"""

import dataclasses
import logging
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np

from il_lab.datasets.trajectories import Trajectory, check_actions, check_spaces
from il_lab.envs import EnvSpec, describe_space
from il_lab.errors import ConfigError

log = logging.getLogger(__name__)

# demos.path=minari:<dataset id> names a dataset in Minari's local datasets root.
MINARI_PREFIX = "minari:"

ID_FORM = f"{MINARI_PREFIX}(namespace/)name-v<version>, e.g. {MINARI_PREFIX}il_lab/cartpole-v0"


def _minari(key: str, value: str):
    try:
        import minari
    except ImportError as e:
        raise ConfigError(
            f'{key}={value!r} needs Minari: pip install -e ".[minari]" (minari[hdf5]==0.5.4)'
        ) from e
    return minari


def _dataset_id(value: str, key: str) -> str:
    """The id in ``minari:<id>``, checked against Minari's own id grammar."""
    from minari.dataset.minari_dataset import DATASET_ID_RE

    dataset_id = value.removeprefix(MINARI_PREFIX)
    match = DATASET_ID_RE.fullmatch(dataset_id)
    if match is None or match.group("version") is None:
        raise ConfigError(f"{key}={value!r} is not a Minari dataset id; allowed: {ID_FORM}")
    return dataset_id


def dataset_folder(dataset_id: str) -> Path:
    """Where Minari keeps ``dataset_id`` locally (the folder holding ``data/``)."""
    from minari.storage.datasets_root_dir import get_dataset_path

    return Path(get_dataset_path(dataset_id))


def datasets_root() -> Path:
    """Minari's local datasets root: ``MINARI_DATASETS_PATH``, else Minari's own default."""
    return dataset_folder("")


def load_minari(source: str, env: EnvSpec, key: str = "demos.path") -> list[Trajectory]:
    """Read a local Minari dataset as trajectories, with the checks an ``.npz`` gets.

    Args:
        source: ``minari:<dataset id>`` in the local datasets root, or a dataset's folder (the
            one holding ``data/``, or ``data/`` itself).

    Raises:
        ConfigError: naming ``key`` when the dataset is not local, unreadable, made for another
            env, or has spaces the learners do not support (Box observations; Discrete or Box
            actions).
    """
    minari = _minari(key, source)

    def refuse(why: str) -> ConfigError:
        return ConfigError(f"{key}={source!r} {why}")

    if source.startswith(MINARI_PREFIX):
        dataset_id = _dataset_id(source, key)
        folder = dataset_folder(dataset_id)
        if not (folder / "data").is_dir():
            raise refuse(
                f"is not in the local Minari datasets root {datasets_root()}; nothing is "
                f"downloaded at run time: fetch it first with `minari download {dataset_id}`"
            )
    else:
        folder = Path(source)
    data = folder / "data" if (folder / "data").is_dir() else folder
    try:
        dataset = minari.MinariDataset(data)
    except (ValueError, OSError, KeyError, TypeError, AssertionError) as e:
        raise refuse(f"is not a readable Minari dataset ({type(e).__name__}: {e})") from e

    obs_space, act_space = dataset.observation_space, dataset.action_space
    if not isinstance(obs_space, gym.spaces.Box):
        raise refuse(f"has observation space {obs_space}; allowed: Box observations")
    if not isinstance(act_space, gym.spaces.Discrete | gym.spaces.Box):
        raise refuse(f"has action space {act_space}; allowed: Discrete or Box actions")
    if dataset.total_episodes == 0:
        raise refuse("holds no episodes")
    if dataset.env_spec is None:
        # Minari allows datasets described by their spaces alone: the spaces are still checked.
        log.warning(
            "%s=%r names no env; checking its spaces against env.id=%r", key, source, env.id
        )
    check_spaces(
        env,
        refuse,
        env_id=env.id if dataset.env_spec is None else dataset.env_spec.id,
        obs_shape=obs_space.shape,
        action_space=describe_space(act_space),
    )

    trajectories = []
    try:
        for episode in dataset.iterate_episodes():
            trajectories.append(_trajectory(episode, obs_space.shape, refuse))
    except (OSError, KeyError) as e:
        raise refuse(f"is not a readable Minari dataset ({type(e).__name__}: {e})") from e
    check_actions(env, refuse, np.concatenate([t.acts for t in trajectories]))
    return trajectories


def _trajectory(episode, obs_shape: tuple[int, ...], refuse) -> Trajectory:
    """One Minari ``EpisodeData`` as a ``Trajectory``; refuses an end flag before the last step."""
    terminations = np.asarray(episode.terminations, dtype=bool)
    truncations = np.asarray(episode.truncations, dtype=bool)
    if len(episode.rewards) < 1:
        raise refuse(f"holds an empty episode (id {episode.id})")
    if terminations[:-1].any() or truncations[:-1].any():
        raise refuse(f"holds an episode (id {episode.id}) that ends before its last step")
    obs, acts = episode.observations, episode.actions
    if not isinstance(obs, np.ndarray) or not isinstance(acts, np.ndarray):
        raise refuse(f"holds episode {episode.id} without array observations and actions")
    if obs.shape[1:] != obs_shape:
        raise refuse(f"holds observations of shape {obs.shape[1:]}, its space's are {obs_shape}")
    try:
        return Trajectory(
            obs=obs,
            acts=acts,
            # float32 as in our .npz files: one data set, whichever file it came from
            rews=np.asarray(episode.rewards, dtype=np.float32),
            terminated=bool(terminations[-1]),
            truncated=bool(truncations[-1]),
        )
    except ValueError as e:
        raise refuse(f"holds an inconsistent episode (id {episode.id}: {e})") from e


def export_minari(
    trajectories: Sequence[Trajectory],
    env: EnvSpec,
    target: str,
    *,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    ref_episodes: int | None = None,
    algorithm_name: str = "il_lab",
    description: str | None = None,
    author: str | None = None,
    author_email: str | None = None,
    code_permalink: str | None = None,
    key: str = "--to",
) -> Path:
    """Write ``trajectories`` as the Minari dataset ``target`` (``minari:<id>``) in Minari's root.

    The dataset carries ``env``'s gymnasium spec (its episode cap included) and, when both are
    given, ``ref_min_score`` / ``ref_max_score``: with our random and expert evaluation returns,
    ``minari.get_normalized_score`` is our ``evaluation.normalized_score``.

    Args:
        ref_episodes: episodes behind the reference scores (Minari records it; default 100).

    Returns:
        The dataset's folder.

    Raises:
        ConfigError: naming ``key`` for a malformed or existing id; for one reference score
            without the other.
    """
    minari = _minari(key, target)
    from minari.data_collector import EpisodeBuffer

    dataset_id = _dataset_id(target, key)
    if (ref_min_score is None) != (ref_max_score is None):
        raise ConfigError(
            "--ref-min and --ref-max go together: Minari normalizes with both or neither"
        )
    folder = dataset_folder(dataset_id)
    if folder.exists():
        raise ConfigError(
            f"{key}={target!r} already exists in {datasets_root()}; allowed: a new id or version "
            f"(or remove it first: minari delete {dataset_id})"
        )
    buffers = [
        EpisodeBuffer(
            id=i,
            observations=traj.obs,
            actions=traj.acts,
            rewards=traj.rews,
            terminations=_last_step_flag(len(traj), traj.terminated),
            truncations=_last_step_flag(len(traj), traj.truncated),
        )
        for i, traj in enumerate(trajectories)
    ]
    # The registered spec with the run's episode cap: what gym.make(spec) rebuilds elsewhere.
    spec = gym.spec(env.id)
    if env.max_episode_steps is not None:
        spec = dataclasses.replace(spec, max_episode_steps=env.max_episode_steps)
    try:
        with warnings.catch_warnings():
            # Minari nags about every optional field left empty (author, permalink, ...).
            warnings.filterwarnings("ignore", message=".*is set to None", category=UserWarning)
            minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                env=spec,
                eval_env=spec,
                algorithm_name=algorithm_name,
                author=author,
                author_email=author_email,
                code_permalink=code_permalink,
                ref_min_score=ref_min_score,
                ref_max_score=ref_max_score,
                num_episodes_average_score=ref_episodes or 100,
                description=description,
                data_format="hdf5",
                jpeg_encoding=False,  # lossless: image-like Box spaces are stored as they are
            )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # never leave half a dataset behind
        raise
    return folder


def _last_step_flag(length: int, flag: bool) -> np.ndarray:
    flags = np.zeros(length, dtype=bool)
    flags[-1] = flag
    return flags
