"""Behaviour cloning (Pomerleau 1991; Bain & Sammut 1995): supervised learning of the expert's
actions from its observations.

Reads ``obs`` and ``acts`` of the demonstrations (stacked into windows of ``context_len``);
its x-axis is gradient steps. MLP BC and Transformer BC are this class with another network.
"""

from collections.abc import Callable, Sequence
from typing import Annotated

import numpy as np
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from il_lab.config.schema import Fraction, NonNegative, ObsNorm, Positive, Precision, Size
from il_lab.datasets.trajectories import Trajectory, windows_and_actions
from il_lab.envs import EnvSpec
from il_lab.interfaces import LearnerInputs
from il_lab.learners.supervised import FitResult, fit
from il_lab.policies import StackedObsPolicy
from il_lab.runtime.checkpoint import Checkpoint


def build_policy(
    network: Callable[..., nn.Module],
    env: EnvSpec,
    context_len: int,
    demonstrations: Sequence[Trajectory],
    device: torch.device,
    obs_norm: str = "per_dim",
) -> StackedObsPolicy:
    """A fresh policy whose observation normalization comes from the demonstrations."""
    # every observation of whole episodes; a subsampled one's kept states only
    obs = np.concatenate([t.obs if t.kept is None else t.obs[t.kept] for t in demonstrations])
    obs = obs.reshape(-1, env.obs_dim)
    kwargs = {"obs_dim": env.obs_dim, "context_len": context_len}
    policy = StackedObsPolicy(
        network=network(**kwargs),
        network_kwargs={**network.keywords, **kwargs} if hasattr(network, "keywords") else kwargs,
        observation_space=env.observation_space,
        action_space=env.action_space,
        context_len=context_len,
        obs_norm=obs_norm,
    )
    policy.fit_normalization(obs)
    return policy.to(device)


class BC:
    def __init__(
        self,
        *,
        network: Callable[..., nn.Module],
        context_len: Size,
        learning_rate: Annotated[float, Positive],
        batch_size: Size,
        max_gradient_steps: Size,
        weight_decay: Annotated[float, NonNegative] = 0.0,
        val_fraction: Annotated[float, Fraction] = 0.1,
        val_interval: Size = 200,
        patience: Size = 5,
        obs_norm: ObsNorm = "shared",
        precision: Precision = "fp32",
        inputs: LearnerInputs,
    ) -> None:
        self.hyperparameters = dict(
            gradient_steps=max_gradient_steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            val_fraction=val_fraction,
            val_interval=val_interval,
            patience=patience,
            precision=precision,
        )
        self.context_len = context_len
        self._network = network
        self._env = inputs.env
        self.obs_norm = obs_norm
        self.demonstrations = list(inputs.demonstrations)
        self.rng = inputs.rng
        self._policy = build_policy(
            network, inputs.env, context_len, self.demonstrations, inputs.device, obs_norm
        )
        self._gradient_steps = 0
        self.result: FitResult | None = None

    def learn(
        self, logger: SummaryWriter | None = None, checkpoint: Checkpoint | None = None
    ) -> None:
        """Train on the demonstrations; with ``checkpoint``, save at every validation and
        continue from the saved state if there is one."""
        windows, actions = windows_and_actions(self.demonstrations, self.context_len)
        saved = checkpoint.resume() if checkpoint is not None else None
        if saved is not None:
            self.rng.bit_generator.state = saved["rng"]
            self._gradient_steps = saved["gradient_steps"]
        elif logger is not None:
            logger.add_scalar("data/n_transitions", len(windows), 0)
        on_validation = None
        if checkpoint is not None:
            steps_before = self._gradient_steps

            def on_validation(fit_state: dict) -> None:
                state = {
                    "fit": fit_state,
                    "gradient_steps": steps_before,
                    "rng": self.rng.bit_generator.state,
                }
                checkpoint.save(state, f"BC at {fit_state['step']} gradient steps")

        self.train_on(
            windows,
            actions,
            logger,
            resume=None if saved is None else saved["fit"],
            on_validation=on_validation,
        )

    def train_on(
        self,
        windows: np.ndarray,
        actions: np.ndarray,
        logger: SummaryWriter | None,
        desc: str = "BC",
        resume: dict | None = None,
        on_validation: Callable[[dict], None] | None = None,
    ) -> FitResult:
        """Supervised training on any windows ``(N, context_len, obs_dim)`` and their actions.

        Other learners (DAgger, BCO) call this with the data they gathered; the x-axis of the
        logged losses continues across calls. ``resume`` and ``on_validation`` as in ``fit``.
        """
        self.result = fit(
            self._policy,
            windows,
            actions,
            rng=self.rng,
            logger=logger,
            step_offset=self._gradient_steps,
            desc=desc,
            resume=resume,
            on_validation=on_validation,
            **self.hyperparameters,
        )
        self._gradient_steps += self.result.gradient_steps
        return self.result

    def state_dict(self) -> dict:
        """The weights (normalization statistics included) and the gradient-step count."""
        return {"policy": self._policy.state_dict(), "gradient_steps": self._gradient_steps}

    def load_state_dict(self, state: dict) -> None:
        self._policy.load_state_dict(state["policy"])
        self._gradient_steps = state["gradient_steps"]

    def reset_policy(self) -> None:
        """Start again from fresh weights (same network, same normalization)."""
        self._policy = build_policy(
            self._network,
            self._env,
            self.context_len,
            self.demonstrations,
            self._policy.device,
            self.obs_norm,
        )

    @property
    def policy(self) -> StackedObsPolicy:
        return self._policy

    @property
    def env_steps(self) -> int:
        return 0

    @property
    def expert_queries(self) -> int:
        return 0

    @property
    def gradient_steps(self) -> int:
        return self._gradient_steps
