"""Record one episode of any ``Policy`` to mp4 (and optionally gif) with imageio."""

import math
import os
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from il_lab.envs import EnvSpec
from il_lab.interfaces import Policy

# Rendering to arrays needs no screen and no sound; without these, SDL looks for a desktop
# session and prints "XDG_RUNTIME_DIR is invalid" on headless machines.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def record_episode(
    policy: Policy, env: EnvSpec, path: Path, seed: int, fps: int = 30, gif: bool = False
) -> int:
    """Play one deterministic episode and write it to ``path`` (mp4); returns the frame count."""
    render_env = env.make(render_mode="rgb_array")
    frames = []
    try:
        obs, _ = render_env.reset(seed=seed)
        frames.append(render_env.render())
        state, start, done = None, np.ones(1, dtype=bool), False
        while not done:
            action, state = policy.predict(obs[None], state=state, episode_start=start)
            start[:] = False
            a = action[0]
            obs, _, terminated, truncated, _ = render_env.step(a.item() if np.ndim(a) == 0 else a)
            frames.append(render_env.render())
            done = terminated or truncated
    finally:
        render_env.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimwrite(path, frames, fps=fps, macro_block_size=_macro_block_size(frames[0]))
    if gif:
        imageio.mimwrite(path.with_suffix(".gif"), frames[::2], duration=2000 / fps, loop=0)
    return len(frames)


def _macro_block_size(frame: np.ndarray) -> int:
    """The largest block (<= 16) that divides the frame, so ffmpeg need not resize it.

    CartPole renders 600x400, which the default block of 16 would resize (with a warning).
    """
    height, width = frame.shape[:2]
    return max(1, math.gcd(16, math.gcd(height, width)))
