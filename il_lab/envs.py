"""Env construction: one ``EnvSpec`` says which gymnasium env a run uses and how to build it."""

import ctypes.util
import difflib
import logging
import os
import sys
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

import gymnasium as gym
import numpy as np

from il_lab.config.schema import AtLeast, Null, check_fields
from il_lab.errors import ConfigError

log = logging.getLogger(__name__)

# MuJoCo renders headless only through EGL here (osmesa lacks its library, glfw needs a
# display); it reads MUJOCO_GL when first imported, so this must precede any env construction.
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

# What to install for an env family whose dependency is missing, by entry-point module.
EXTRAS = {"box2d": "gymnasium[box2d]", "mujoco": "gymnasium[mujoco]"}


@dataclass(frozen=True)
class EnvSpec:
    """A registered gymnasium env id and an optional episode cap.

    Stages build their own envs from it (single, SB3 vectorized, or with rendering), so every env a
    run touches is the plain env with the same cap.
    """

    id: str
    max_episode_steps: Annotated[int | None, AtLeast(1), Null("the env's own limit")] = None

    def __post_init__(self) -> None:
        check_fields(self, "env.")
        if self.id not in gym.registry:
            close = difflib.get_close_matches(self.id, list(gym.registry), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"env.id={self.id!r} is not a registered gymnasium env id{hint}")

    @property
    def make_kwargs(self) -> dict:
        return (
            {} if self.max_episode_steps is None else {"max_episode_steps": self.max_episode_steps}
        )

    def make(self, render_mode: str | None = None) -> gym.Env:
        return gym.make(self.id, render_mode=render_mode, **self.make_kwargs)

    @cached_property
    def spaces(self) -> tuple[gym.Space, gym.Space]:
        try:
            env = self.make()
        except gym.error.DependencyNotInstalled as e:
            entry = str(gym.spec(self.id).entry_point)
            extra = next((pkg for family, pkg in EXTRAS.items() if family in entry), None)
            install = f"pip install '{extra}'" if extra else "install its dependency"
            raise ConfigError(
                f"env.id={self.id!r} needs a package that is not installed; {install} "
                f"({str(e).splitlines()[0]})"
            ) from e
        try:
            return env.observation_space, env.action_space
        finally:
            env.close()

    @property
    def observation_space(self) -> gym.Space:
        return self.spaces[0]

    @property
    def action_space(self) -> gym.Space:
        return self.spaces[1]

    @property
    def reward_threshold(self) -> float | None:
        """The return gymnasium registers as solving the env, where it has one."""
        return gym.spec(self.id).reward_threshold

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.observation_space.shape))

    def check_supported(self) -> None:
        """Refuse spaces the learners cannot handle, naming what is allowed."""
        obs, act = self.spaces
        if not isinstance(obs, gym.spaces.Box):
            raise ConfigError(
                f"env.id={self.id!r} has observation space {obs}; allowed: Box observations"
            )
        if not isinstance(act, gym.spaces.Discrete | gym.spaces.Box):
            raise ConfigError(
                f"env.id={self.id!r} has action space {act}; allowed: Discrete or Box actions"
            )


def check_box_actions(env: EnvSpec, option: str) -> None:
    """Refuse ``option`` (e.g. ``learner=dac``) in an env without Box actions: SAC acts in a
    bounded Box only. Called by the gate, before any work."""
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ConfigError(
            f"{option} cannot act in env.id={env.id!r} (action space {env.action_space}); "
            "allowed: an env with Box actions (SAC's), e.g. env=pendulum"
        )


def describe_space(space: gym.Space) -> dict:
    """A JSON-able description of a space, used to check files and models against an env."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "low": np.asarray(space.low, dtype=float).ravel().tolist(),
            "high": np.asarray(space.high, dtype=float).ravel().tolist(),
        }
    return {"type": type(space).__name__, "repr": str(space)}


def descriptions_match(a: dict, b: dict) -> bool:
    """Compare two ``describe_space`` results; Box bounds may differ in float precision."""
    if a.get("type") == "Box" == b.get("type"):
        return (
            a["shape"] == b["shape"]
            and np.allclose(a["low"], b["low"], equal_nan=True)
            and np.allclose(a["high"], b["high"], equal_nan=True)
        )
    return a == b


def spaces_match(a: gym.Space, b: gym.Space) -> bool:
    return descriptions_match(describe_space(a), describe_space(b))


# MUJOCO_GL backends MuJoCo accepts on Linux, and what each needs to render.
MUJOCO_BACKENDS = {
    "egl": lambda: ctypes.util.find_library("EGL") is not None,
    "osmesa": lambda: ctypes.util.find_library("OSMesa") is not None,
    "glfw": lambda: bool(os.environ.get("DISPLAY")),
    "glx": lambda: bool(os.environ.get("DISPLAY")),
}


def check_mujoco_gl(env_id: str, *, video_enabled: bool) -> None:
    """MuJoCo reads ``MUJOCO_GL`` when first imported: refuse a value that cannot render here.

    Without a video nothing renders, so an unusable value is switched off instead (``disable``).
    Other env families ignore the variable.
    """
    if env_id not in gym.registry or "mujoco" not in str(gym.spec(env_id).entry_point):
        return
    value = os.environ.get("MUJOCO_GL", "glfw").lower()
    usable = [name for name, works in MUJOCO_BACKENDS.items() if works()]
    if value in usable or value in ("disable", "disabled", "off") and not video_enabled:
        return
    if not video_enabled:
        log.info("MUJOCO_GL=%s cannot render here; off, since video.enabled=false", value)
        os.environ["MUJOCO_GL"] = "disable"
        return
    raise ConfigError(
        f"MUJOCO_GL={value!r} cannot render on this machine; allowed here: "
        f"{', '.join(usable) or 'none (set video.enabled=false)'}, or video.enabled=false"
    )
