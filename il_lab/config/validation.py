"""Range and type checks of a composed config, run before any work starts.

Rules go by a value's own key name, wherever it sits (``learner.learning_rate``,
``expert.learning_rate``, ``budget.demo_episodes``), so a new learner or expert is checked as
soon as it uses the shared names. Hydra itself refuses unknown groups, options and keys.
"""

from collections.abc import Callable, Iterator
from typing import Any

from il_lab.errors import ConfigError


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int_at_least(low: int) -> tuple[str, Callable[[Any], bool]]:
    return f"an integer >= {low}", lambda v: _is_int(v) and v >= low


def _one_of(*allowed: str) -> tuple[str, Callable[[Any], bool]]:
    return f"one of {', '.join(allowed)}", lambda v: v in allowed


_POSITIVE = ("a number > 0", lambda v: _is_number(v) and v > 0)
_NON_NEGATIVE = ("a number >= 0", lambda v: _is_number(v) and v >= 0)
_UNIT = ("a number in [0, 1]", lambda v: _is_number(v) and 0 <= v <= 1)
_FRACTION = ("a number in [0, 1)", lambda v: _is_number(v) and 0 <= v < 1)
_BOOL = ("true or false", lambda v: isinstance(v, bool))
_SIZES = (
    "a non-empty list of integers >= 1",
    lambda v: isinstance(v, list) and len(v) > 0 and all(_is_int(x) and x >= 1 for x in v),
)
RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    **{
        key: _int_at_least(1)
        for key in (
            "context_len",
            "batch_size",
            "n_envs",
            "n_steps",
            "n_epochs",
            "gradient_steps",
            "total_env_steps",
            "val_interval",
            "patience",
            "d_model",
            "n_heads",
            "n_layers",
            "dim_feedforward",
            "expert_env_steps",
            "demo_episodes",
            "eval_episodes",
            "learner_gradient_steps",
            "fps",
            "torch_threads",
            "round_env_steps",
            "rampdown_rounds",
            "idm_batch_size",
            "idm_gradient_steps",
            "n_disc_updates",
            "buffer_size",
            "train_freq",
        )
    },
    "seed": _int_at_least(0),
    "learner_env_steps": (
        "null (each learner's own default) or an integer >= 0",
        lambda v: v is None or (_is_int(v) and v >= 0),
    ),
    "first_seed": _int_at_least(0),
    "demo_transitions": (
        "null (whole episodes) or an integer >= 1",
        lambda v: v is None or (_is_int(v) and v >= 1),
    ),
    "max_episode_steps": (
        "null (the env's own limit) or an integer >= 1",
        lambda v: v is None or (_is_int(v) and v >= 1),
    ),
    "n_iterations": _int_at_least(0),
    "learning_starts": _int_at_least(0),
    "sde_sample_freq": ("an integer >= -1", lambda v: _is_int(v) and v >= -1),
    "tau": ("a number in (0, 1]", lambda v: _is_number(v) and 0 < v <= 1),
    "log_std_init": ("a number", _is_number),
    "bc_warm_start_steps": _int_at_least(0),
    "reward": _one_of("gail", "airl", "log_d"),
    "activation": _one_of("relu", "tanh", "gelu"),
    "grad_penalty": _NON_NEGATIVE,
    "eval_episodes_per_round": _int_at_least(0),
    "learning_rate": _POSITIVE,
    "idm_learning_rate": _POSITIVE,
    "alpha": _NON_NEGATIVE,
    "beta0": _UNIT,
    "beta_decay": _UNIT,
    "idm_val_fraction": _FRACTION,
    "beta_schedule": _one_of("constant", "linear", "exponential"),
    "mixture": _one_of("per_step", "per_episode"),
    "obs_norm": _one_of("per_dim", "shared", "none"),
    "clip_range": _POSITIVE,
    "max_grad_norm": _POSITIVE,
    "ent_coef": (
        "a number >= 0 (SAC also: auto or auto_<initial value>)",
        lambda v: (_is_number(v) and v >= 0) or (isinstance(v, str) and v.startswith("auto")),
    ),
    "vf_coef": _NON_NEGATIVE,
    "weight_decay": _NON_NEGATIVE,
    "min_interval_s": _NON_NEGATIVE,
    "gamma": _UNIT,
    "gae_lambda": _UNIT,
    "dropout": _FRACTION,
    "val_fraction": _FRACTION,
    "hidden_sizes": _SIZES,
    "net_arch": _SIZES,
    "vf_net_arch": ("null (as net_arch) or " + _SIZES[0], lambda v: v is None or _SIZES[1](v)),
    "device": _one_of("auto", "cpu", "cuda"),
    "precision": _one_of("fp32", "bf16"),
    **{
        key: _BOOL
        for key in (
            "enabled",
            "gif",
            "linear_annealing",
            "normalize_obs",
            "normalize_reward",
            "train_on_true_reward",
            "warm_start",
            "ortho_init",
            "use_sde",
        )
    },
}


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                yield from _leaves(value, path)
            else:
                yield path, str(key), value


def check_values(config: dict) -> None:
    """Raise ``ConfigError`` for the first value that breaks its rule, naming key and rule.

    Args:
        config: the resolved config as plain containers, without the ``hydra`` node.
    """
    for path, key, value in _leaves(config):
        rule = RULES.get(key)
        if rule is not None and not rule[1](value):
            raise ConfigError(f"{path}={value!r} is not allowed; allowed: {rule[0]}")
    _check_rollout_batches(config)


def check_rollout_batch(batch_size: int, n_envs: int, n_steps: int, prefix: str = "") -> None:
    """A PPO minibatch must fit in one rollout of ``n_envs x n_steps`` transitions."""
    rollout = n_envs * n_steps
    if batch_size > rollout:
        raise ConfigError(
            f"{prefix}batch_size={batch_size} is not allowed; allowed: an integer "
            f"<= {prefix}n_envs x {prefix}n_steps = {rollout} (one rollout)"
        )


def _check_rollout_batches(node: Any, prefix: str = "") -> None:
    """``check_rollout_batch`` on every node that sets all three keys (experts, GAIL's PPO)."""
    if not isinstance(node, dict):
        return
    if all(_is_int(node.get(key)) for key in ("n_envs", "n_steps", "batch_size")):
        check_rollout_batch(node["batch_size"], node["n_envs"], node["n_steps"], prefix)
    for key, value in node.items():
        _check_rollout_batches(value, f"{prefix}{key}.")
