"""Our PPO (Schulman et al. 2017): policy, losses and GAE, trainer. Used by ``expert=ppo`` and
as GAIL's generator."""

from il_lab.rl.losses import clipped_surrogate_loss, compute_gae, explained_variance
from il_lab.rl.policy import PPOPolicy
from il_lab.rl.trainer import PPOHyperparameters, PPOTrainer, Rollout, make_vector_env

__all__ = [
    "PPOHyperparameters",
    "PPOPolicy",
    "PPOTrainer",
    "Rollout",
    "clipped_surrogate_loss",
    "compute_gae",
    "explained_variance",
    "make_vector_env",
]
