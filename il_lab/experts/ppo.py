"""``expert=ppo``: our own PPO (``il_lab.rl``) as the pipeline's expert.

A thin adapter, as ``il_lab.experts.sb3_ppo`` is for SB3: the constructor takes the config's
keys (SB3's names, so ``conf/expert/ppo.yaml`` and ``conf/expert/sb3_ppo.yaml`` share them),
``train`` runs ``PPOTrainer`` and logs SB3's TensorBoard tags, ``save``/``load`` go through
``PPOPolicy``'s file format.

``keep_best_every`` selects the expert among periodic evaluations instead of taking the final
policy, as SB3's ``EvalCallback`` keeps its best model: on Pendulum the final PPO policy of a
seed can be hundreds of return worse than the policy a few updates before
(``experiments/results/experts.md``). Selection episodes use their own env seeds
(``SELECTION_FIRST_SEED``), never the pipeline's evaluation seeds, and never change training.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from il_lab.config.schema import AtLeast, Null, Size
from il_lab.envs import EnvSpec
from il_lab.evaluation import eval_seeds, evaluate
from il_lab.rl import PPOHyperparameters, PPOPolicy, PPOTrainer
from il_lab.rl.policy import FILE_FORMAT_VERSION
from il_lab.rl.progress import budget_bar
from il_lab.runtime.checkpoint import Checkpoint

log = logging.getLogger(__name__)

# The selection episodes' env seeds: apart from the pipeline's evaluation seeds (eval.first_seed,
# 1,000,000 by default), so the expert is never picked on the episodes it is scored on.
SELECTION_FIRST_SEED = 3_000_000


@dataclass(frozen=True, kw_only=True)
class PPOExpert(PPOHyperparameters):
    """``expert=ppo``: trains our PPO; its keys are ``PPOHyperparameters``' plus these two.

    SB3-only keys (``use_sde``, ``sde_sample_freq``) are not among ours: our Gaussian policy
    explores with state-independent noise.

    Args:
        seed: the expert's own seed (every learner seed imitates the same expert).
        path: a ``.pt`` saved by ``expert=ppo`` to load instead of training.
        keep_best_every: every this many env steps (and at the end), evaluate the deterministic
            policy on ``keep_best_episodes`` selection episodes and keep the best one as the
            expert; 0 keeps the final policy.
        keep_best_episodes: episodes per selection evaluation.
    """

    file_suffix: ClassVar[str] = ".pt"
    FILE_FORMAT_VERSION: ClassVar[int] = FILE_FORMAT_VERSION
    BUILD_VERSION: ClassVar[int] = 2  # bump when il_lab.rl's training changes what a seed produces
    # keys added later, at the values that build the experts cached before them
    IDENTITY_NEUTRAL: ClassVar[dict] = {"keep_best_every": 0, "keep_best_episodes": 10}

    seed: Annotated[int, AtLeast(0)] = 0
    path: Annotated[str | None, Null("train one")] = None
    keep_best_every: Annotated[int, AtLeast(0)] = 0
    keep_best_episodes: Size = 10

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
        best = None  # the selection so far: {"return", "env_steps", "policy" (a state_dict)}
        if state is not None:
            best = state.pop("best", None)
            trainer.load_state_dict(state)
        trainer.progress = budget_bar(trainer, self.total_env_steps, "PPO")
        try:
            # Chunks add up to total_env_steps exactly: the same rollouts as one learn() call.
            while trainer.target_env_steps < self.total_env_steps:
                chunk = min(self.total_env_steps - trainer.target_env_steps, checkpoint_env_steps)
                every = self.keep_best_every
                if every:
                    chunk = min(chunk, every - trainer.target_env_steps % every)
                trainer.learn(chunk)
                done = trainer.target_env_steps >= self.total_env_steps
                if every and (done or trainer.target_env_steps % every == 0):
                    best = self._select(trainer, env, best)
                if checkpoint is not None and not done:
                    checkpoint.save(
                        trainer.state_dict() | {"best": best},
                        f"PPO expert, {trainer.num_timesteps} env steps",
                    )
        finally:
            trainer.progress.close()
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
        policy = trainer.policy.eval()
        if best is not None:
            policy.load_state_dict(best["policy"])
            log.info(
                "PPO expert: the policy at %d env steps, best of the selections (return %.1f "
                "over %d episodes)",
                best["env_steps"],
                best["return"],
                self.keep_best_episodes,
            )
        return policy

    def _select(self, trainer: PPOTrainer, env: EnvSpec, best: dict | None) -> dict:
        """``best``, or the trainer's current policy if it scores higher on the selection
        episodes (deterministic actions, as the pipeline evaluates)."""
        seeds = eval_seeds(SELECTION_FIRST_SEED, self.keep_best_episodes)
        score = evaluate(trainer.policy.eval(), env, seeds).mean
        trainer.policy.train()
        log.info("PPO expert at %d env steps: selection return %.1f", trainer.num_timesteps, score)
        if best is not None and score <= best["return"]:
            return best
        weights = {k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}
        return {"return": score, "env_steps": trainer.num_timesteps, "policy": weights}

    def save(self, policy: PPOPolicy, path: Path) -> None:
        policy.save(path)

    def load(
        self, path: str | Path, env: EnvSpec, device: torch.device, key: str = "expert.path"
    ) -> PPOPolicy:
        """Load a ``.pt`` written by ``save`` and check its spaces against ``env``."""
        return PPOPolicy.load(path, env, device, key=key)
