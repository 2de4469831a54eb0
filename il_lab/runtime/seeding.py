"""One place that seeds every random number generator a run touches."""

import random

import numpy as np
import torch


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return the generator to pass explicitly from here on."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def set_threads(n_threads: int) -> None:
    torch.set_num_threads(n_threads)


def resolve_device(device: str) -> torch.device:
    """Map ``auto|cpu|cuda`` to a torch device; ``cuda`` without a GPU is a user error."""
    from il_lab.errors import ConfigError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but torch sees no CUDA device; allowed here: auto, cpu")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device={device!r} is not allowed; allowed: auto, cpu, cuda")
    return torch.device(device)
