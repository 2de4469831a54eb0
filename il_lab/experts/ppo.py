"""``expert=ppo``: our own PPO (``il_lab.rl``) as the pipeline's expert.

A thin adapter, as ``il_lab.experts.sb3_ppo`` is for SB3: the constructor takes the config's
keys (SB3's names, so ``conf/expert/ppo.yaml`` and ``conf/expert/sb3_ppo.yaml`` share them),
``train`` runs ``PPOTrainer`` and logs SB3's TensorBoard tags, ``save``/``load`` go through
``PPOPolicy``'s file format.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from il_lab.config.schema import AtLeast, Null
from il_lab.envs import EnvSpec
from il_lab.rl import PPOHyperparameters, PPOPolicy, PPOTrainer
from il_lab.rl.policy import FILE_FORMAT_VERSION
from il_lab.runtime.checkpoint import Checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PPOExpert(PPOHyperparameters):
    """``expert=ppo``: trains our PPO; its keys are ``PPOHyperparameters``' plus these two.

    SB3-only keys (``use_sde``, ``sde_sample_freq``) are not among ours: our Gaussian policy
    explores with state-independent noise.

    Args:
        seed: the expert's own seed (every learner seed imitates the same expert).
        path: a ``.pt`` saved by ``expert=ppo`` to load instead of training.
    """

    file_suffix: ClassVar[str] = ".pt"
    FILE_FORMAT_VERSION: ClassVar[int] = FILE_FORMAT_VERSION
    BUILD_VERSION: ClassVar[int] = 2  # bump when il_lab.rl's training changes what a seed produces

    seed: Annotated[int, AtLeast(0)] = 0
    path: Annotated[str | None, Null("train one")] = None

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
        trainer = PPOTrainer(self, env=env, seed=seed, device=device, writer=writer)
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
