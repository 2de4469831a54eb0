"""Stable-Baselines3 PPO (Schulman et al. 2017) as the expert.

The general defaults (``conf/expert/sb3_ppo.yaml``) are rl-zoo's tuned CartPole-v1 values; the
presets' tuned values for other envs come from ``conf/tuned/<env>_sb3_ppo.yaml``.
"""

from dataclasses import dataclass
from typing import Annotated, ClassVar

from stable_baselines3 import PPO

from il_lab.config.schema import AtLeast, Null
from il_lab.experts.sb3 import SB3Expert, linear_schedule
from il_lab.rl import PPOHyperparameters
from il_lab.rl.policy import ACTIVATIONS


@dataclass(frozen=True, kw_only=True)
class SB3PPOExpert(PPOHyperparameters, SB3Expert):
    """``expert=sb3_ppo``: ``PPOHyperparameters``' keys (SB3's names) plus SB3's gSDE and these.

    Args:
        use_sde: generalized state-dependent exploration (Box actions).
        sde_sample_freq: resample gSDE's noise every N steps (-1: only at rollout start).
        seed: the expert's own seed (every learner seed imitates the same expert).
        path: an SB3 ``.zip`` (any algorithm) to load instead of training.
    """

    algorithm: ClassVar = PPO
    use_sde: bool = False
    sde_sample_freq: Annotated[int, AtLeast(-1)] = -1
    seed: Annotated[int, AtLeast(0)] = 0
    path: Annotated[str | None, Null("train one")] = None

    @property
    def algorithm_kwargs(self) -> dict:
        annealed = linear_schedule if self.linear_annealing else (lambda value: value)
        return dict(
            n_steps=self.n_steps,
            batch_size=self.batch_size,
            n_epochs=self.n_epochs,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            learning_rate=annealed(self.learning_rate),
            clip_range=annealed(self.clip_range),
            clip_range_vf=self.clip_range_vf,
            ent_coef=self.ent_coef,
            vf_coef=self.vf_coef,
            max_grad_norm=self.max_grad_norm,
            use_sde=self.use_sde,
            sde_sample_freq=self.sde_sample_freq,
            policy_kwargs={
                "net_arch": {
                    "pi": list(self.net_arch),
                    "vf": list(self.vf_net_arch or self.net_arch),
                },
                "activation_fn": ACTIVATIONS[self.activation],
                "ortho_init": self.ortho_init,
                "log_std_init": self.log_std_init,
            },
        )
