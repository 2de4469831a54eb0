"""The protocols every expert and learner satisfies.

``Policy`` is Stable-Baselines3's ``predict`` signature, so an SB3 model is a Policy with no
adapter, and evaluation, video, rollouts and DAgger's expert queries treat all policies alike.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

if TYPE_CHECKING:
    import gymnasium as gym

    from il_lab.datasets.trajectories import Trajectory
    from il_lab.envs import EnvSpec
    from il_lab.runtime.checkpoint import Checkpoint


@runtime_checkable
class Policy(Protocol):
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Act on a batch of observations ``(n_envs, *obs_shape)``.

        ``state`` is the policy's memory from the previous call (``None`` on the first one);
        rows where ``episode_start`` is true start a new episode. Returns
        ``(actions (n_envs, *action_shape), next_state)``.
        """
        ...


def observation_batch(observation: np.ndarray, space: "gym.Space") -> tuple[np.ndarray, bool]:
    """A policy's input as ``(batch, obs_dim)`` float32, and whether it was one observation.

    SB3's ``predict`` takes one unbatched observation or a batch; every policy of ours does too,
    and returns an unbatched action for an unbatched observation.
    """
    obs = np.asarray(observation, dtype=np.float32)
    single = obs.shape == space.shape
    return obs.reshape(1 if single else len(obs), -1), single


@runtime_checkable
class Expert(Protocol):
    """Trains, saves and loads a ``Policy`` (SB3's and ours are thin adapters; ``conf/expert/``).

    Its constructor's annotated arguments are its config schema (``il_lab.config.schema``).
    """

    file_suffix: str  # the saved file's suffix, e.g. ``.zip`` or ``.pt``

    def train(
        self,
        env: "EnvSpec",
        *,
        seed: int,
        tb_dir: Path,
        device: torch.device,
        checkpoint: "Checkpoint | None" = None,
        checkpoint_env_steps: int = 50_000,
    ) -> Policy:
        """Train within the expert's budget, logging SB3's tags to ``tb_dir``; resume from
        ``checkpoint``'s state if it holds one, and save into it every ``checkpoint_env_steps``."""
        ...

    def save(self, policy: Policy, path: Path) -> None: ...

    def load(
        self, path: str | Path, env: "EnvSpec", device: torch.device, key: str = "expert.path"
    ) -> Policy:
        """Load a saved policy and check its spaces against ``env`` (refusals name ``key``)."""
        ...


@dataclass(frozen=True, kw_only=True)
class LearnerInputs:
    """What every learner receives at run time, beside its hyperparameters from the config.

    A learner's constructor takes its config keys plus ``inputs``; Hydra builds the rest, the
    pipeline this (``make_learner(inputs=LearnerInputs(...))``).

    Attributes:
        env: the env to learn (and, for online learners, to interact with).
        demonstrations: the expert's trajectories (learners read only what they document).
        rng: the learner's generator: every random draw of the run comes from it (or is seeded
            from it), so one seed gives one run.
        expert: the expert, for learners that query it (DAgger); ``None`` where none is needed.
        device: where networks live and train.
    """

    env: "EnvSpec"
    demonstrations: "Sequence[Trajectory]"
    rng: np.random.Generator
    expert: Policy | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", torch.device(self.device))
        object.__setattr__(self, "demonstrations", list(self.demonstrations))


@runtime_checkable
class Learner(Protocol):
    """Built as ``Learner(**hyperparameters, inputs=LearnerInputs(...))``."""

    def learn(self, logger: SummaryWriter, checkpoint: "Checkpoint | None" = None) -> None:
        """Train within the budget given at construction, logging to ``logger``.

        With a ``checkpoint`` (``il_lab.runtime.checkpoint``), save the whole training state at the
        learner's natural boundaries, and first continue from the saved state if there is one.
        """
        ...

    @property
    def policy(self) -> Policy: ...

    @property
    def env_steps(self) -> int:
        """Env interaction used so far (0 for offline learners)."""
        ...

    @property
    def expert_queries(self) -> int:
        """Expert labels asked for beyond the demonstrations."""
        ...

    @property
    def gradient_steps(self) -> int: ...
