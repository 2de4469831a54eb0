"""``expert=sac``: our own SAC (``il_lab.rl.sac``) as the pipeline's expert.

The same thin adapter as ``il_lab.experts.ppo``: the config's keys are ``SACHyperparameters``'
(SB3's names, so ``conf/expert/sac.yaml`` and ``conf/expert/sb3_sac.yaml`` read alike), ``train``
runs ``SACTrainer`` and logs SB3's tags, ``save``/``load`` go through ``SACPolicy``'s file.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from il_lab.config.schema import AtLeast, Null
from il_lab.envs import EnvSpec, check_box_actions
from il_lab.rl.progress import budget_bar
from il_lab.rl.sac import SACHyperparameters, SACTrainer
from il_lab.rl.sac_networks import SACPolicy
from il_lab.runtime.checkpoint import Checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SACExpert(SACHyperparameters):
    """``expert=sac``: trains our SAC; its keys are ``SACHyperparameters``' plus these two.

    Args:
        seed: the expert's own seed (every learner seed imitates the same expert).
        path: a ``.pt`` saved by ``expert=sac`` to load instead of training.
    """

    file_suffix: ClassVar[str] = ".pt"
    FILE_FORMAT_VERSION: ClassVar[int] = 1
    BUILD_VERSION: ClassVar[int] = 1  # bump when il_lab.rl.sac's training changes what a seed gives

    seed: Annotated[int, AtLeast(0)] = 0
    path: Annotated[str | None, Null("train one")] = None

    @staticmethod
    def check_env(env: EnvSpec, prefix: str) -> None:
        """SAC acts in Box action spaces only (the gate calls this before any work)."""
        check_box_actions(env, "expert=sac")

    def train(
        self,
        env: EnvSpec,
        *,
        seed: int,
        tb_dir: Path,
        device: torch.device,
        checkpoint: Checkpoint | None = None,
        checkpoint_env_steps: int = 50_000,
    ) -> SACPolicy:
        """Train for ``total_env_steps`` env steps, logging SB3's tags to ``tb_dir``.

        With ``checkpoint``, the trainer's state (replay buffer included) is saved every
        ``checkpoint_env_steps`` env steps, and a run that finds one continues from it.
        """
        writer = checkpoint.open_writer() if checkpoint else SummaryWriter(log_dir=str(tb_dir))
        trainer = SACTrainer(self, env=env, seed=seed, device=device, writer=writer)
        state = checkpoint.resume() if checkpoint else None
        if state is not None:
            trainer.load_state_dict(state)
        trainer.progress = budget_bar(trainer, self.total_env_steps, "SAC")
        try:
            # Chunks add up to total_env_steps exactly: the same steps as one learn() call.
            while trainer.num_timesteps < self.total_env_steps:
                remaining = self.total_env_steps - trainer.num_timesteps
                trainer.learn(min(remaining, checkpoint_env_steps))
                if checkpoint is not None and trainer.num_timesteps < self.total_env_steps:
                    checkpoint.save(
                        trainer.state_dict(), f"SAC expert, {trainer.num_timesteps} env steps"
                    )
        finally:
            trainer.progress.close()
            trainer.close()
            writer.close()
        last = np.mean(trainer.episode_returns) if trainer.episode_returns else float("nan")
        log.info(
            "SAC: %d env steps, %d updates, %.0f steps/s; last %d episodes return %.1f",
            trainer.num_timesteps,
            trainer.n_updates,
            trainer.fps,
            len(trainer.episode_returns),
            last,
        )
        return trainer.policy.eval()

    def save(self, policy: SACPolicy, path: Path) -> None:
        policy.save(path)

    def load(
        self, path: str | Path, env: EnvSpec, device: torch.device, key: str = "expert.path"
    ) -> SACPolicy:
        """Load a ``.pt`` written by ``save`` and check its spaces against ``env``."""
        return SACPolicy.load(path, env, device, key=key)
