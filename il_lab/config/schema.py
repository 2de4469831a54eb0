"""Typed schemas: every config key declared once, where its component lives.

A component's constructor (or dataclass fields) is its schema: each argument's type, and the
``typing.Annotated`` markers below, say what values are allowed::

    learning_rate: Annotated[float, Positive]
    max_episode_steps: Annotated[int | None, AtLeast(1), Null("the env's own limit")] = None

``il_lab.config.gate`` reads these annotations for the whole composed config before anything is
built; a dataclass may call ``check_fields(self)`` in ``__post_init__`` to apply the same rules
when it is built directly. Rules that tie several keys together live in the component as a
``check_config(values, prefix)`` static method, which the gate and the component both call.

The root config's own keys are declared here, as ``RootConfig``.
"""

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from il_lab.errors import ConfigError

# Keys Hydra reads from a node; they are not the component's arguments.
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_convert_", "_recursive_", "_args_"})


@dataclass(frozen=True)
class Range:
    """A number between ``low`` and ``high`` (either may be open or absent)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allows(self, value: Any) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        return f"{'<' if self.high_open else '<='} {_number(self.high)}"


@dataclass(frozen=True)
class Null:
    """What ``null`` means for an optional key (shown in refusals)."""

    meaning: str


@dataclass(frozen=True)
class Check:
    """Any other rule on one value: ``allows(value) -> bool`` and its description."""

    allows: Callable[[Any], bool]
    describe: str


def AtLeast(low: int) -> Range:  # noqa: N802 (reads as a type marker)
    return Range(low=low)


Positive = Range(low=0, low_open=True)
NonNegative = Range(low=0)
Unit = Range(low=0, high=1)
Fraction = Range(low=0, high=1, high_open=True)
NonEmpty = Check(lambda v: len(v) > 0, "non-empty")
Activation = Literal["relu", "tanh", "gelu"]
Size = Annotated[int, AtLeast(1)]
HiddenSizes = Annotated[list[Size], NonEmpty]
ObsNorm = Literal["per_dim", "shared", "none"]
Precision = Literal["fp32", "bf16"]


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def is_node(value: Any) -> bool:
    """A config node that builds a component (``_target_``)."""
    return isinstance(value, Mapping) and "_target_" in value


def describe(hint: Any) -> str:
    """What a type hint allows, in words for a refusal."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        base, marks = args[0], args[1:]
        nulls = [m.meaning for m in marks if isinstance(m, Null)]
        ranges = [m.describe() for m in marks if isinstance(m, Range)]
        checks = [m.describe for m in marks if isinstance(m, Check)]
        text = " ".join([describe(_without_none(base)), *ranges])
        text = ", ".join([text, *checks])
        if _allows_none(base):
            return f"null ({nulls[0]}) or {text}" if nulls else f"null or {text}"
        return text
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        parts = [describe(a) for a in args if a is not type(None)]
        return ("null or " if type(None) in args else "") + " or ".join(parts)
    if origin in (list, tuple, Sequence):
        return f"a list of {_plural(describe(args[0]))}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _plural(text: str) -> str:
    for one, many in (("an integer", "integers"), ("a number", "numbers"), ("a string", "strings")):
        if text.startswith(one):
            return many + text[len(one) :]
    return text


def _allows_none(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(
        hint
    )


def _without_none(hint: Any) -> Any:
    if not _allows_none(hint):
        return hint
    rest = [a for a in typing.get_args(hint) if a is not type(None)]
    return rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007


def allows(hint: Any, value: Any) -> bool:
    """Whether ``value`` (plain YAML data) is of type ``hint``, markers included."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is dataclasses.MISSING:
        return True
    if origin is Annotated:
        if value is None:
            return _allows_none(args[0])
        return allows(args[0], value) and all(
            m.allows(value) for m in args[1:] if isinstance(m, Range | Check)
        )
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (Union, types.UnionType):
        return any(allows(a, value) for a in args)
    if hint is type(None):
        return value is None
    if origin in (list, tuple, Sequence):
        # any sequence but a string: lists, tuples, and OmegaConf's ListConfig
        is_list = isinstance(value, Sequence) and not isinstance(value, str)
        return is_list and all(allows(args[0], v) for v in value)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return isinstance(value, Mapping)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return _is_int(value)
    if hint is float:
        return _is_number(value)
    if hint is str:
        return isinstance(value, str)
    return True  # a component (checked through its own node) or a runtime object


def check_value(key: str, hint: Any, value: Any) -> None:
    if not allows(hint, value):
        raise ConfigError(f"{key}={value!r} is not allowed; allowed: {describe(hint)}")


def parameter_hints(target: Callable) -> dict[str, Any]:
    """The annotated keyword arguments of a component (a class's ``__init__`` or a dataclass)."""
    init = target.__init__ if isinstance(target, type) else target
    hints = typing.get_type_hints(init, include_extras=True)
    hints.pop("return", None)
    return hints


def check_fields(obj: Any, prefix: str = "") -> None:
    """Apply the field annotations of a dataclass instance to its values (``__post_init__``)."""
    hints = typing.get_type_hints(type(obj), include_extras=True)
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not (dataclasses.is_dataclass(value) or callable(value)):
            check_value(f"{prefix}{f.name}", hints[f.name], value)


# The root config: the keys config.yaml declares, each with its type and range.


@dataclass(frozen=True, kw_only=True)
class Budget:
    expert_env_steps: Size
    demo_episodes: Size
    demo_transitions: Annotated[int | None, AtLeast(1), Null("whole episodes")] = None
    learner_env_steps: Annotated[int | None, AtLeast(0), Null("each learner's own default")] = None
    learner_gradient_steps: Size
    eval_episodes: Size


@dataclass(frozen=True, kw_only=True)
class Demos:
    path: Annotated[str | None, Null("the expert's demonstrations")] = None
    subsample: Size = 1


@dataclass(frozen=True, kw_only=True)
class Eval:
    first_seed: Annotated[int, AtLeast(0)]


@dataclass(frozen=True, kw_only=True)
class Video:
    enabled: bool
    fps: Size
    gif: bool


@dataclass(frozen=True, kw_only=True)
class CheckpointSettings:
    enabled: bool
    expert_env_steps: Size
    min_interval_s: Annotated[float, NonNegative]


@dataclass(frozen=True, kw_only=True)
class Tuned:
    name: str
    env_id: str


@dataclass(frozen=True, kw_only=True)
class RootConfig:
    """The root keys (``conf/config.yaml``); ``env``, ``expert`` and ``learner`` are components."""

    seed: Annotated[int, AtLeast(0)]
    device: Literal["auto", "cpu", "cuda"]
    torch_threads: Size
    precision: Precision
    bc_obs_norm: ObsNorm
    strict_expert: bool
    tuned: Tuned | None = None
    report: Annotated[dict | None, Null("not a reproduction preset")] = None  # its checks
    budget: Budget
    demos: Demos
    eval: Eval
    video: Video
    checkpoint: CheckpointSettings
    paths: dict
    env: Any
    expert: Any
    learner: Any
