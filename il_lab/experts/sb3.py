"""Stable-Baselines3 models as experts: train, save with normalization, load any algorithm.

What the SB3 experts (``sb3_ppo``, ``sb3_sac``) share:

- ``train_model`` runs SB3's ``learn`` with SB3's own TensorBoard logger pointed at the stage
  folder, on a ``VecEnv`` that is wrapped in ``VecNormalize`` when the config asks for
  observation or reward normalization (rl-zoo's ``normalize: true``).
- ``save_model`` writes SB3's own ``.zip`` and, when observations were normalized, adds the
  frozen statistics to the same archive as ``il_lab_obs_normalization.json``; SB3's loader
  ignores that entry, so the file stays a plain SB3 model for SB3's tools.
- ``load_model`` reads the algorithm from the archive (the policy class's module names it:
  ``stable_baselines3.sac.policies`` is SAC), so ``expert.path`` takes a model of any SB3
  algorithm (PPO, A2C, DQN, SAC, TD3, DDPG; sb3-contrib's TQC), checks its spaces against the
  env, and wraps it in ``NormalizedPolicy`` when the archive carries statistics.
"""

import importlib
import io
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from il_lab.envs import EnvSpec, spaces_match
from il_lab.errors import ConfigError
from il_lab.runtime.checkpoint import Checkpoint

NORMALIZATION_ENTRY = "il_lab_obs_normalization.json"
# The algorithm behind each policy module a model file names. PPO and A2C share SB3's
# ActorCriticPolicy (told apart by PPO's n_epochs); DDPG is TD3 with other settings and
# acts through the same policy class, so TD3 loads it.
POLICY_MODULES = {
    "stable_baselines3.dqn.policies": ("stable_baselines3", "DQN"),
    "stable_baselines3.sac.policies": ("stable_baselines3", "SAC"),
    "stable_baselines3.td3.policies": ("stable_baselines3", "TD3"),
    "sb3_contrib.tqc.policies": ("sb3_contrib", "TQC"),
}
ALLOWED = "PPO, A2C, DQN, SAC, TD3, DDPG (stable-baselines3) or TQC (sb3-contrib)"


def linear_schedule(initial: float):
    """SB3 schedules get the progress remaining, 1 at the start and 0 at the end."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


class NormalizedPolicy:
    """An SB3 model that acts on observations normalized with frozen statistics; a ``Policy``.

    The statistics are ``VecNormalize``'s at the end of training, applied exactly as
    ``VecNormalize.normalize_obs`` does, so the env stays the plain env.
    """

    def __init__(
        self, model: BaseAlgorithm, mean: np.ndarray, var: np.ndarray, clip: float, epsilon: float
    ) -> None:
        self.model = model
        self.mean = np.asarray(mean, dtype=np.float64)
        self.var = np.asarray(var, dtype=np.float64)
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        self.observation_space = model.observation_space
        self.action_space = model.action_space

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        scaled = (np.asarray(obs, dtype=np.float64) - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        return self.model.predict(self.normalize(observation), state, episode_start, deterministic)

    def statistics(self) -> dict:
        return {
            "mean": self.mean.tolist(),
            "var": self.var.tolist(),
            "clip": self.clip,
            "epsilon": self.epsilon,
        }


def make_training_env(
    env: EnvSpec, n_envs: int, seed: int, normalize_obs: bool, normalize_reward: bool, gamma: float
) -> VecEnv:
    venv = make_vec_env(env.id, n_envs=n_envs, seed=seed, env_kwargs=env.make_kwargs)
    if normalize_obs or normalize_reward:
        venv = VecNormalize(venv, norm_obs=normalize_obs, norm_reward=normalize_reward, gamma=gamma)
    return venv


def training_state(model: BaseAlgorithm, venv: VecEnv) -> dict:
    """What continues ``model``'s training: the model (SB3's zip, optimizers included), an
    off-policy algorithm's replay buffer, and ``VecNormalize``'s statistics."""
    state: dict = {"model": _saved_bytes(model.save), "num_timesteps": model.num_timesteps}
    if getattr(model, "replay_buffer", None) is not None:
        state["replay_buffer"] = _saved_bytes(model.save_replay_buffer)
    if isinstance(venv, VecNormalize):
        state["normalization"] = {"obs_rms": venv.obs_rms, "ret_rms": venv.ret_rms}
    return state


def restore_training_state(model: BaseAlgorithm, venv: VecEnv, state: dict) -> BaseAlgorithm:
    """``model``'s class loaded from ``state`` onto ``venv`` (which keeps its own episodes)."""
    restored = type(model).load(io.BytesIO(state["model"]), env=venv, device=model.device)
    if "replay_buffer" in state:
        restored.load_replay_buffer(io.BytesIO(state["replay_buffer"]))
    if "normalization" in state and isinstance(venv, VecNormalize):
        venv.obs_rms = state["normalization"]["obs_rms"]
        venv.ret_rms = state["normalization"]["ret_rms"]
    return restored


def _saved_bytes(save) -> bytes:
    buffer = io.BytesIO()
    save(buffer)
    return buffer.getvalue()


class _CheckpointEvery(BaseCallback):
    """Saves the training state every ``every`` env steps, between rollouts (after an update,
    when SB3's logger has written that iteration's points)."""

    def __init__(self, checkpoint: Checkpoint, venv: VecEnv, every: int) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.venv = venv
        self.every = every
        self.next_save: int | None = None

    def _on_rollout_start(self) -> None:
        if self.next_save is None:  # the first call, at the start (or the resumed start)
            self.next_save = (self.num_timesteps // self.every + 1) * self.every
        elif self.num_timesteps >= self.next_save:
            self.next_save = (self.num_timesteps // self.every + 1) * self.every
            state = training_state(self.model, self.venv)
            self.checkpoint.save(state, f"SB3 expert, {self.num_timesteps} env steps")

    def _on_step(self) -> bool:
        return True


def train_model(
    model: BaseAlgorithm,
    venv: VecEnv,
    total_env_steps: int,
    tb_dir: Path,
    checkpoint: Checkpoint | None = None,
    checkpoint_env_steps: int = 50_000,
) -> BaseAlgorithm | NormalizedPolicy:
    """Train ``model`` on ``venv``; return it, wrapped when its observations were normalized.

    With ``checkpoint``, the training state is saved every ``checkpoint_env_steps`` env steps,
    and a run that finds one continues from it (the envs restart their episodes).
    """
    callback = None
    if checkpoint is not None:
        checkpoint.restore_events()  # before SB3's logger opens its own event file
        state = checkpoint.resume()
        if state is not None:
            model = restore_training_state(model, venv, state)
        callback = _CheckpointEvery(checkpoint, venv, checkpoint_env_steps)
    model.set_logger(configure(str(tb_dir), ["tensorboard"]))  # no PPO_1/ sub-folders
    with warnings.catch_warnings():  # SB3's bar is tqdm.rich, which calls itself experimental
        warnings.filterwarnings("ignore", message="rich is experimental")
        model.learn(
            total_timesteps=total_env_steps - model.num_timesteps,
            callback=callback,
            progress_bar=True,
            reset_num_timesteps=model.num_timesteps == 0,
        )
    venv.close()
    return acting_policy(model, venv)


def acting_policy(model: BaseAlgorithm, venv: VecEnv) -> BaseAlgorithm | NormalizedPolicy:
    """``model`` as it acts on the plain env: with a copy of ``VecNormalize``'s statistics."""
    if isinstance(venv, VecNormalize) and venv.norm_obs:
        rms = venv.obs_rms
        return NormalizedPolicy(model, rms.mean.copy(), rms.var.copy(), venv.clip_obs, venv.epsilon)
    return model


def save_model(policy: BaseAlgorithm | NormalizedPolicy, path: Path) -> None:
    """SB3's ``.zip``, plus the normalization statistics inside the same archive."""
    model = policy.model if isinstance(policy, NormalizedPolicy) else policy
    path = Path(path)
    # SB3 appends ".zip" to a name without it; write to the exact name asked for.
    model.save(path)
    written = path if path.suffix == ".zip" else path.with_name(path.name + ".zip")
    if written != path:
        written.replace(path)
    if isinstance(policy, NormalizedPolicy):
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr(NORMALIZATION_ENTRY, json.dumps(policy.statistics()))


def algorithm_of(path: Path, key: str) -> type[BaseAlgorithm]:
    """The SB3 algorithm class that wrote ``path``, read from the archive's ``data`` entry."""
    where = f"{key}={str(path)!r}"
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
        module = data["policy_class"]["__module__"]  # e.g. stable_baselines3.sac.policies
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, TypeError) as e:
        raise ConfigError(f"{where} is not an SB3 model .zip ({type(e).__name__}: {e})") from e
    if module == "stable_baselines3.common.policies":
        package, cls = "stable_baselines3", "PPO" if "n_epochs" in data else "A2C"
    elif module in POLICY_MODULES:
        package, cls = POLICY_MODULES[module]
    else:
        raise ConfigError(f"{where} has a policy from {module!r}; allowed: a model of {ALLOWED}")
    try:
        return getattr(importlib.import_module(package), cls)
    except ImportError as e:
        raise ConfigError(f"{where} is a {cls} model; install {package} to load it") from e


def load_model(
    path: str | Path, env: EnvSpec, device: torch.device, key: str = "expert.path"
) -> BaseAlgorithm | NormalizedPolicy:
    """Load an SB3 ``.zip`` of any algorithm, check its spaces against ``env``."""
    path = Path(path)
    where = f"{key}={str(path)!r}"
    if not path.is_file():
        raise ConfigError(f"{where} does not exist; allowed: an SB3 model .zip file")
    algorithm = algorithm_of(path, key)
    try:
        model = algorithm.load(path, device=device)
    except Exception as e:  # SB3 raises many kinds for a bad zip
        raise ConfigError(f"{where} is not a loadable SB3 {algorithm.__name__} model ({e})") from e
    for name, ours in (("observation", env.observation_space), ("action", env.action_space)):
        theirs = getattr(model, f"{name}_space")
        if not spaces_match(theirs, ours):
            raise ConfigError(
                f"{where} was trained with {name} space {theirs}, but env.id={env.id!r} has {ours}"
            )
    with zipfile.ZipFile(path) as archive:
        if NORMALIZATION_ENTRY not in archive.namelist():
            return model
        stats = json.loads(archive.read(NORMALIZATION_ENTRY))
    return NormalizedPolicy(model, stats["mean"], stats["var"], stats["clip"], stats["epsilon"])


class SB3Expert:
    """What every SB3 expert shares: training, its file suffix, ``save`` and ``load``.

    A subclass is a dataclass (the config's schema) that provides ``algorithm`` (the SB3 class),
    ``algorithm_kwargs``, ``total_env_steps``, ``n_envs``, ``normalize_obs``,
    ``normalize_reward`` and ``gamma``.
    """

    file_suffix = ".zip"
    FILE_FORMAT_VERSION = 1  # SB3's zip, plus NORMALIZATION_ENTRY when observations are normalized
    BUILD_VERSION = 1  # bump when training here changes what a seed produces

    def train(
        self,
        env: EnvSpec,
        *,
        seed: int,
        tb_dir: Path,
        device: torch.device,
        checkpoint: Checkpoint | None = None,
        checkpoint_env_steps: int = 50_000,
    ) -> BaseAlgorithm | NormalizedPolicy:
        venv = make_training_env(
            env, self.n_envs, seed, self.normalize_obs, self.normalize_reward, self.gamma
        )
        model = self.algorithm(
            "MlpPolicy", venv, seed=seed, device=device, verbose=0, **self.algorithm_kwargs
        )
        return train_model(
            model, venv, self.total_env_steps, tb_dir, checkpoint, checkpoint_env_steps
        )

    def save(self, policy: BaseAlgorithm | NormalizedPolicy, path: Path) -> None:
        save_model(policy, path)

    def load(
        self, path: str | Path, env: EnvSpec, device: torch.device, key: str = "expert.path"
    ) -> BaseAlgorithm | NormalizedPolicy:
        return load_model(path, env, device, key)
