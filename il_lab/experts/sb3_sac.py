"""Stable-Baselines3 SAC (Haarnoja et al. 2018, arXiv:1801.01290) as the expert.

Off-policy and sample-efficient, but one gradient step per env step: about 110 env steps/s on
HalfCheetah on a 2-core CPU (1M steps in about 2.6 h). The expert of choice for HalfCheetah,
Ant and Walker2d where a GPU or a cluster is at hand; on a CPU, ``sb3_ppo`` or ``ppo``.
Defaults are SB3's, with rl-zoo's ``hyperparams/sac.yml`` values in the presets.
"""

from stable_baselines3 import SAC

from il_lab.errors import ConfigError
from il_lab.experts.sb3 import (
    SB3Expert,
    activation_class,
    linear_schedule,
)


class SB3SACExpert(SB3Expert):
    def __init__(
        self,
        *,
        total_env_steps: int,
        learning_rate: float,
        linear_annealing: bool,
        buffer_size: int,
        learning_starts: int,
        batch_size: int,
        tau: float,
        gamma: float,
        train_freq: int,
        gradient_steps: int,
        ent_coef: float | str,
        net_arch: list[int],
        activation: str = "relu",
        use_sde: bool = False,
        normalize_obs: bool = False,
        seed: int = 0,
        path: str | None = None,
    ) -> None:
        if isinstance(ent_coef, str) and not ent_coef.startswith("auto"):
            raise ConfigError(
                f"expert.ent_coef={ent_coef!r} is not allowed; allowed: a number >= 0, auto, "
                "or auto_<initial value>"
            )
        self.total_env_steps = total_env_steps
        self.n_envs = 1
        self.normalize_obs = normalize_obs
        self.normalize_reward = False  # rl-zoo's SAC entries never normalize rewards
        self.gamma = gamma
        self.algorithm = SAC
        self.algorithm_kwargs = dict(
            learning_rate=linear_schedule(learning_rate) if linear_annealing else learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            ent_coef=ent_coef,
            use_sde=use_sde,
            policy_kwargs={
                "net_arch": list(net_arch),
                "activation_fn": activation_class(activation),
            },
        )
