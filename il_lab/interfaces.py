"""The protocols every expert and learner satisfies.

``Policy`` is Stable-Baselines3's ``predict`` signature, so an SB3 model is a Policy with no
adapter, and evaluation, video, rollouts and DAgger's expert queries treat all policies alike.
"""

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from torch.utils.tensorboard import SummaryWriter

if TYPE_CHECKING:
    from il_lab.checkpoint import Checkpoint


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


@runtime_checkable
class Learner(Protocol):
    def learn(self, logger: SummaryWriter, checkpoint: "Checkpoint | None" = None) -> None:
        """Train within the budget given at construction, logging to ``logger``.

        With a ``checkpoint`` (``il_lab.checkpoint``), save the whole training state at the
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
