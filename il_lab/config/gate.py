"""The one validation gate: the whole composed config, checked before anything is built.

Every key is checked against the schema of the component it belongs to (``il_lab.config.schema``:
a constructor's annotated arguments, or the root's ``RootConfig``), qualified by where it lives,
so ``expert.gradient_steps`` and ``learner.gradient_steps`` follow their own rules. Then the
env, the expert trainer and the learner factory are built, which runs the components' own
multi-key rules. The first problem stops the run with one ``ConfigError`` line naming the key
and what is allowed; nothing has been trained or cached by then.
"""

import dataclasses
import inspect
import logging
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate

from il_lab.config.schema import (
    HYDRA_KEYS,
    RootConfig,
    check_value,
    is_node,
    parameter_hints,
)
from il_lab.envs import EnvSpec, check_mujoco_gl
from il_lab.errors import ConfigError
from il_lab.runtime.seeding import resolve_device

log = logging.getLogger(__name__)

# Arguments the pipeline supplies at run time, never the config (a network's shape arguments
# come at run time too, into its ``_partial_`` node, whose missing keys are not checked).
RUNTIME_ARGUMENTS = frozenset({"inputs"})


@dataclass(frozen=True)
class Checked:
    """What a config that passed the gate describes, built and ready for the stages."""

    env: EnvSpec
    expert_trainer: Any
    make_learner: Callable


def check_config(config: Mapping, expert_node: Any, learner_node: Any) -> Checked:
    """Check ``config`` (resolved plain containers, without ``hydra``) and build its components.

    ``expert_node`` and ``learner_node`` are the same nodes as Hydra configs, for ``instantiate``.

    Raises:
        ConfigError: the first key that breaks its rule, named with what is allowed.
    """
    check_node(config, RootConfig, "")
    check_node(config["env"], EnvSpec, "env.")
    for group in ("expert", "learner"):
        node = config[group]
        if not is_node(node):
            raise ConfigError(f"{group} has no _target_; allowed: a conf/{group}/ option")
        check_node(node, _target(node, group), f"{group}.")
    check_mujoco_gl(config["env"]["id"], video_enabled=config["video"]["enabled"])
    env = EnvSpec(**config["env"])
    env.check_supported()
    resolve_device(config["device"])
    expert_trainer = _built(lambda: instantiate(expert_node, _convert_="all"))
    make_learner = _built(lambda: instantiate(learner_node, _partial_=True, _convert_="all"))
    _check_networks(config["learner"], env, "learner.")
    for group in ("expert", "learner"):
        component = _target(config[group], group)
        if hasattr(component, "check_env"):  # rules that need the env's spaces
            component.check_env(env, f"{group}.")
    return Checked(env=env, expert_trainer=expert_trainer, make_learner=make_learner)


def check_node(values: Mapping, schema: Callable, prefix: str) -> None:
    """Every key of ``values`` against ``schema``'s annotated arguments, nested nodes included."""
    hints = parameter_hints(schema)
    for key, value in values.items():
        if key in HYDRA_KEYS:
            continue
        where = f"{prefix}{key}"
        if key not in hints or key in RUNTIME_ARGUMENTS:
            allowed = sorted(k for k in hints if k not in RUNTIME_ARGUMENTS)
            raise ConfigError(
                f"{where} is not a key of {schema.__name__}; allowed: {', '.join(allowed)}"
            )
        nested = _schema_of(hints[key], value, where)
        if nested is not None:
            check_node(value, nested, f"{where}.")
        else:
            check_value(where, hints[key], value)
    if not values.get("_partial_"):
        missing = [
            k
            for k, p in _parameters(schema).items()
            if p.default is p.empty and k not in values and k not in RUNTIME_ARGUMENTS
        ]
        if missing:
            raise ConfigError(f"{prefix}{missing[0]} is missing; {schema.__name__} needs it")
    if hasattr(schema, "check_config"):
        schema.check_config(values, prefix)


def _schema_of(hint: Any, value: Any, where: str) -> Callable | None:
    """The schema a nested value is checked against: its ``_target_``, or a dataclass hint."""
    if is_node(value):
        return _target(value, where)
    if isinstance(value, Mapping):
        for candidate in (hint, *typing.get_args(hint)):
            if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
                return candidate
    return None


def _parameters(schema: Callable) -> dict:
    return dict(inspect.signature(schema).parameters)


def _target(node: Mapping, where: str) -> Callable:
    try:
        return get_object(node["_target_"])
    except Exception as e:  # an unimportable name: the config, not the code, is wrong
        raise ConfigError(f"{where}._target_={node['_target_']!r} cannot be imported ({e})") from e


def _built(build: Callable[[], Any]) -> Any:
    """Build through Hydra; a component's own ``ConfigError`` comes out as itself."""
    try:
        return build()
    except InstantiationException as e:
        cause = e.__cause__
        while cause is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None


def _check_networks(node: Mapping, env: EnvSpec, prefix: str) -> None:
    """Build every network the learner config names once, to refuse impossible shapes now."""
    if is_node(node.get("network")) and "context_len" in node:
        network = node["network"]
        _built(lambda: instantiate(network)(obs_dim=env.obs_dim, context_len=node["context_len"]))
    for key, value in node.items():
        if isinstance(value, Mapping):
            _check_networks(value, env, f"{prefix}{key}.")
