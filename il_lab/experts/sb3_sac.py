"""Stable-Baselines3 SAC (Haarnoja et al. 2018, arXiv:1801.01290) as the expert.

Off-policy and sample-efficient, but one gradient step per env step, which is slow on a CPU
(experiments/results/experts.md measures it). The expert of choice for HalfCheetah, Ant and
Walker2d where a GPU or a cluster is at hand; on a CPU, ``sb3_ppo`` or ``ppo``. Defaults are
SB3's, with rl-zoo's ``hyperparams/sac.yml`` values in the presets.
"""

from dataclasses import dataclass
from typing import Annotated, ClassVar

from stable_baselines3 import SAC

from il_lab.config.schema import (
    Activation,
    AtLeast,
    Check,
    HiddenSizes,
    Null,
    Positive,
    Range,
    Size,
    Unit,
)
from il_lab.experts.sb3 import SB3Expert, linear_schedule
from il_lab.rl.policy import ACTIVATIONS
from il_lab.rl.sac import ENT_COEF


@dataclass(frozen=True, kw_only=True)
class SB3SACExpert(SB3Expert):
    """``expert=sb3_sac``: SB3's SAC, SB3's names and meanings.

    Args:
        train_freq: env steps between updates.
        gradient_steps: gradient updates after each ``train_freq`` env steps; -1: as many as
            env steps were collected (SB3's meaning).
        ent_coef: the entropy temperature: a number >= 0, ``auto`` (learned), or
            ``auto_<initial value>``.
        seed: the expert's own seed; path: an SB3 ``.zip`` to load instead of training.
    """

    algorithm: ClassVar = SAC
    n_envs: ClassVar[int] = 1
    normalize_reward: ClassVar[bool] = False  # rl-zoo's SAC entries never normalize rewards

    total_env_steps: Size
    learning_rate: Annotated[float, Positive]
    linear_annealing: bool
    buffer_size: Size
    learning_starts: Annotated[int, AtLeast(0)]
    batch_size: Size
    tau: Annotated[float, Range(low=0, high=1, low_open=True)]
    gamma: Annotated[float, Unit]
    train_freq: Size
    gradient_steps: Annotated[int, Check(lambda v: v == -1 or v >= 1, ">= 1, or -1")]
    ent_coef: Annotated[float | str, ENT_COEF]  # our SAC's rule: SB3's values
    net_arch: HiddenSizes
    activation: Activation = "relu"
    use_sde: bool = False
    normalize_obs: bool = False
    seed: Annotated[int, AtLeast(0)] = 0
    path: Annotated[str | None, Null("train one")] = None

    @property
    def algorithm_kwargs(self) -> dict:
        return dict(
            learning_rate=(
                linear_schedule(self.learning_rate) if self.linear_annealing else self.learning_rate
            ),
            buffer_size=self.buffer_size,
            learning_starts=self.learning_starts,
            batch_size=self.batch_size,
            tau=self.tau,
            gamma=self.gamma,
            train_freq=self.train_freq,
            gradient_steps=self.gradient_steps,
            ent_coef=self.ent_coef,
            use_sde=self.use_sde,
            policy_kwargs={
                "net_arch": list(self.net_arch),
                "activation_fn": ACTIVATIONS[self.activation],
            },
        )
