"""The cache identity of each artifact a run builds, computed here and nowhere else.

An expert is keyed by everything that determines it (env and expert config, its own seed, the
code and file versions, the library versions); a demonstration set by its expert's key, the
episode seeds and the same versions. Benchmark scripts that build artifacts outside the pipeline
use these functions, so their cache entries are the pipeline's.
"""

import hashlib
from pathlib import Path

import numpy as np

from il_lab.datasets.npz import FORMAT_VERSION
from il_lab.envs import EnvSpec
from il_lab.runtime.cache import content_key, library_versions

# Versions of the code that builds each cached artifact: bump one when that code's output changes
# (a new rollout rule, a new training step), and the cache rebuilds instead of serving the old
# artifact. An expert class may declare its own ``BUILD_VERSION`` and ``FILE_FORMAT_VERSION``,
# and ``IDENTITY_NEUTRAL``: keys added after experts were cached, with the value that builds what
# was built before; at that value a key is left out of the identity, so adding an option does not
# make every cached expert rebuild.
EXPERT_BUILD_VERSION = 1
DEMOS_BUILD_VERSION = 1


def expert_identity(env_config: dict, expert_config: dict, trainer: object, env_id: str) -> dict:
    """What determines a trained expert (its own seed is inside ``expert_config``)."""
    neutral = getattr(trainer, "IDENTITY_NEUTRAL", {})
    return {
        "env": env_config,
        "expert": {k: v for k, v in expert_config.items() if k not in neutral or v != neutral[k]},
        "build_version": [EXPERT_BUILD_VERSION, getattr(trainer, "BUILD_VERSION", None)],
        "file_format": [trainer.file_suffix, getattr(trainer, "FILE_FORMAT_VERSION", None)],
        "versions": library_versions(env_id),
    }


def file_identity(path: Path) -> dict:
    """A user's own expert file: its content is its identity."""
    return {"file_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def demo_seeds(seed: int, n_episodes: int) -> list[int]:
    """The env seeds of the expert's demonstration episodes for a run's ``seed``."""
    return np.random.default_rng([seed, 1]).integers(2**31, size=n_episodes).tolist()


def demos_identity(expert_id: dict, env: EnvSpec, seeds: list[int]) -> dict:
    """What determines the expert's demonstrations on ``seeds``."""
    return {
        "expert": content_key(expert_id),
        "env": env.id,
        "seeds": seeds,
        "max_episode_steps": env.max_episode_steps,
        "build_version": DEMOS_BUILD_VERSION,
        "format_version": FORMAT_VERSION,
        "versions": library_versions(env.id),
    }
