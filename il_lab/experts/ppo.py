"""``expert=ppo``: our own PPO (``il_lab.rl``) as the pipeline's expert.

A thin adapter, as ``il_lab.experts.sb3_ppo`` is for SB3: the constructor takes the config's
keys (SB3's names, so ``conf/expert/ppo.yaml`` and ``conf/expert/sb3_ppo.yaml`` share them),
``train`` runs ``PPOTrainer`` and logs SB3's TensorBoard tags, ``save``/``load`` go through
``PPOPolicy``'s file format.
"""

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from il_lab.envs import EnvSpec
from il_lab.rl import PPOHyperparameters, PPOPolicy, PPOTrainer
from il_lab.rl.policy import FILE_FORMAT_VERSION
from il_lab.runtime.checkpoint import Checkpoint

log = logging.getLogger(__name__)


class PPOExpert:
    """``expert=ppo``: trains our PPO; same interface and config keys as ``SB3PPOExpert``.

    SB3-only keys (``use_sde``, ``sde_sample_freq``) are not among ours: our Gaussian policy
    explores with state-independent noise.
    """

    file_suffix = ".pt"
    FILE_FORMAT_VERSION = FILE_FORMAT_VERSION
    BUILD_VERSION = 2  # bump when il_lab.rl's training changes what a seed produces

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
        vf_net_arch: list[int] | None = None,
        activation: str = "tanh",
        ortho_init: bool = True,
        log_std_init: float = 0.0,
        normalize_obs: bool = False,
        normalize_reward: bool = False,
        seed: int = 0,
        path: str | None = None,
    ) -> None:
        self.hyperparameters = PPOHyperparameters(
            total_env_steps=total_env_steps,
            n_envs=n_envs,
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            learning_rate=learning_rate,
            clip_range=clip_range,
            linear_annealing=linear_annealing,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            net_arch=tuple(net_arch),
            vf_net_arch=None if vf_net_arch is None else tuple(vf_net_arch),
            activation=activation,
            ortho_init=ortho_init,
            log_std_init=log_std_init,
            normalize_obs=normalize_obs,
            normalize_reward=normalize_reward,
        )
        self.total_env_steps = total_env_steps

    def train(
        self,
        env: EnvSpec,
        *,
        seed: int,
        tb_dir: Path,
        device: torch.device,
        checkpoint: Checkpoint | None = None,
        checkpoint_env_steps: int = 50_000,
    ) -> PPOPolicy:
        """Train for ``total_env_steps`` env steps, logging SB3's tags to ``tb_dir``.

        With ``checkpoint``, the trainer's state is saved every ``checkpoint_env_steps`` env
        steps, and a run that finds one continues from it (the envs restart their episodes).
        """
        writer = checkpoint.open_writer() if checkpoint else SummaryWriter(log_dir=str(tb_dir))
        trainer = PPOTrainer(self.hyperparameters, env=env, seed=seed, device=device, writer=writer)
        state = checkpoint.resume() if checkpoint else None
        if state is not None:
            trainer.load_state_dict(state)
        try:
            # Chunks add up to total_env_steps exactly: the same rollouts as one learn() call.
            while trainer.target_env_steps < self.total_env_steps:
                remaining = self.total_env_steps - trainer.target_env_steps
                trainer.learn(min(remaining, checkpoint_env_steps), progress_bar=True)
                if checkpoint is not None and trainer.num_timesteps < self.total_env_steps:
                    checkpoint.save(
                        trainer.state_dict(), f"PPO expert, {trainer.num_timesteps} env steps"
                    )
        finally:
            trainer.close()
            writer.close()
        last = np.mean(trainer.episode_returns) if trainer.episode_returns else float("nan")
        log.info(
            "PPO: %d env steps, %d gradient steps, %.0f steps/s; last %d episodes return %.1f",
            trainer.num_timesteps,
            trainer.n_updates,
            trainer.fps,
            len(trainer.episode_returns),
            last,
        )
        return trainer.policy.eval()

    def save(self, policy: PPOPolicy, path: Path) -> None:
        policy.save(path)

    def load(
        self, path: str | Path, env: EnvSpec, device: torch.device, key: str = "expert.path"
    ) -> PPOPolicy:
        """Load a ``.pt`` written by ``save`` and check its spaces against ``env``."""
        return PPOPolicy.load(path, env, device, key=key)
