"""Stable-Baselines3 PPO (Schulman et al. 2017) as the expert.

The general defaults (``conf/expert/sb3_ppo.yaml``) are rl-zoo's tuned CartPole-v1 values; the
presets' tuned values for other envs come from ``conf/tuned/<env>_sb3_ppo.yaml``.
"""

from stable_baselines3 import PPO

from il_lab.errors import ConfigError
from il_lab.experts.sb3 import (
    SB3Expert,
    activation_class,
    linear_schedule,
)


class SB3PPOExpert(SB3Expert):
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
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        seed: int = 0,
        path: str | None = None,
    ) -> None:
        if isinstance(ent_coef, bool) or not isinstance(ent_coef, int | float):
            raise ConfigError(
                f"expert.ent_coef={ent_coef!r} is not allowed; allowed: a number >= 0 "
                "(auto is SAC's, not PPO's)"
            )
        vf_net_arch = net_arch if vf_net_arch is None else vf_net_arch
        self.total_env_steps = total_env_steps
        self.n_envs = n_envs
        self.normalize_obs = normalize_obs
        self.normalize_reward = normalize_reward
        self.gamma = gamma
        self.algorithm = PPO
        self.algorithm_kwargs = dict(
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
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            policy_kwargs={
                "net_arch": {"pi": list(net_arch), "vf": list(vf_net_arch)},
                "activation_fn": activation_class(activation),
                "ortho_init": ortho_init,
                "log_std_init": log_std_init,
            },
        )
