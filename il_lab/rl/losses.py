"""PPO's losses and advantage estimates, as tested functions.

``compute_gae`` works on rollouts in gymnasium 1.x's NEXT_STEP autoreset layout (see
``il_lab.rl.trainer``); ``tests/test_ppo.py`` checks it against SB3's ``RolloutBuffer``.
"""

import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_value: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    valid: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(lambda) advantages and value targets for a NEXT_STEP-autoreset rollout.

    Args:
        rewards: ``(n_steps, n_envs)`` reward of step ``t``.
        values: ``(n_steps, n_envs)`` value of the observation step ``t`` acted on.
        next_value: ``(n_envs,)`` value of the observation after the last step.
        terminated: ``(n_steps, n_envs)`` bool, step ``t`` ended its episode in a terminal state.
        truncated: ``(n_steps, n_envs)`` bool, step ``t`` ended its episode at a time limit.
        valid: ``(n_steps, n_envs)`` bool, false for the reset steps that follow an episode end.
        gamma: discount factor.
        gae_lambda: GAE's lambda.

    The observation after step ``t`` is row ``t + 1``'s (after an episode end that row is the
    reset step holding the episode's final observation), so ``values[t + 1]`` is the bootstrap:
    kept for a truncation, dropped for a termination. Episode ends cut the lambda-return chain;
    reset steps get advantage 0.

    Returns:
        ``(advantages, returns)``, each ``(n_steps, n_envs)``; ``returns = advantages + values``.
    """
    next_values = torch.cat([values[1:], next_value[None]])  # (n_steps, n_envs): V(s_{t+1})
    deltas = rewards + gamma * next_values * (~terminated) - values  # (n_steps, n_envs)
    continues = (~(terminated | truncated)).float()  # (n_steps, n_envs)
    advantages = torch.zeros_like(rewards)  # (n_steps, n_envs)
    running = torch.zeros_like(next_value)  # (n_envs,)
    for t in reversed(range(rewards.shape[0])):
        running = (deltas[t] + gamma * gae_lambda * continues[t] * running) * valid[t]
        advantages[t] = running
    return advantages, advantages + values


def clipped_surrogate_loss(
    ratio: torch.Tensor, advantages: torch.Tensor, clip_range: float
) -> torch.Tensor:
    """PPO's clipped policy loss: minus the mean of ``min(r A, clip(r, 1 - eps, 1 + eps) A)``.

    Args:
        ratio: ``(n,)`` probability ratio of the new policy to the one that collected the data.
        advantages: ``(n,)``.
        clip_range: ``eps``.
    """
    clipped = ratio.clamp(1 - clip_range, 1 + clip_range)
    return -torch.min(advantages * ratio, advantages * clipped).mean()


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """``1 - Var(target - predicted) / Var(target)``: 1 is perfect, 0 no better than a constant."""
    if target.numel() < 2 or target.var() == 0:
        return float("nan")
    return (1 - (target - predicted).var() / target.var()).item()
