"""Stable-Baselines3 PPO (Schulman et al. 2017) as the expert, with rl-zoo's tuned defaults.

The trained ``PPO`` model is itself a ``Policy`` (SB3's ``predict``), so no adapter is needed.
"""

import warnings
from pathlib import Path

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from il_lab.envs import EnvSpec, spaces_match
from il_lab.errors import ConfigError


def linear_schedule(initial: float):
    """SB3 schedules get the progress remaining, 1 at the start and 0 at the end."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


class SB3PPOExpert:
    file_suffix = ".zip"

    def __init__(
        self,
        *,
        total_env_steps: int,
        n_envs: int,
        n_steps: int,
        batch_size: int,
        n_epochs: int,
        gamma: float,
        gae_lambda: float,
        learning_rate: float,
        clip_range: float,
        linear_annealing: bool,
        ent_coef: float,
        vf_coef: float,
        max_grad_norm: float,
        net_arch: list[int],
        normalize_obs: bool = False,
        path: str | None = None,
    ) -> None:
        if normalize_obs:
            raise ConfigError(
                "expert.normalize_obs=true is not supported by expert=sb3_ppo "
                "(VecNormalize statistics would live outside the model); allowed: false"
            )
        self.total_env_steps = total_env_steps
        self.n_envs = n_envs
        self.ppo_kwargs = dict(
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            learning_rate=linear_schedule(learning_rate) if linear_annealing else learning_rate,
            clip_range=linear_schedule(clip_range) if linear_annealing else clip_range,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            policy_kwargs={"net_arch": list(net_arch)},
        )
        self.path = path

    def train(self, env: EnvSpec, *, seed: int, tb_dir: Path, device: torch.device) -> PPO:
        venv = make_vec_env(env.id, n_envs=self.n_envs, seed=seed, env_kwargs=env.make_kwargs)
        model = PPO("MlpPolicy", venv, seed=seed, device=device, verbose=0, **self.ppo_kwargs)
        # SB3's own logger, pointed at the stage folder: no PPO_1/ sub-folders.
        model.set_logger(configure(str(tb_dir), ["tensorboard"]))
        with warnings.catch_warnings():  # SB3's bar is tqdm.rich, which calls itself experimental
            warnings.filterwarnings("ignore", message="rich is experimental")
            model.learn(total_timesteps=self.total_env_steps, progress_bar=True)
        venv.close()
        return model

    def save(self, model: PPO, path: Path) -> None:
        model.save(path)

    def load(
        self, path: str | Path, env: EnvSpec, device: torch.device, key: str = "expert.path"
    ) -> PPO:
        """Load an SB3 PPO ``.zip`` and check its spaces against ``env``."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{key}={str(path)!r} does not exist; allowed: an SB3 PPO .zip file")
        try:
            model = PPO.load(path, device=device)
        except Exception as e:  # SB3 raises many kinds for a bad zip
            raise ConfigError(f"{key}={str(path)!r} is not a loadable SB3 PPO model ({e})") from e
        for name, ours in (("observation", env.observation_space), ("action", env.action_space)):
            theirs = getattr(model, f"{name}_space")
            if not spaces_match(theirs, ours):
                raise ConfigError(
                    f"{key}={str(path)!r} was trained with {name} space {theirs}, "
                    f"but env.id={env.id!r} has {ours}"
                )
        return model
