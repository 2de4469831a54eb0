"""Seconds-long learning checks with fixed seeds."""

import numpy as np
import torch

from il_lab.envs import EnvSpec
from il_lab.evaluation import RandomPolicy, eval_seeds, evaluate
from il_lab.learners.bc import BC
from il_lab.networks import MLPNet, TransformerNet
from il_lab.rollout import rollout

CARTPOLE = EnvSpec("CartPole-v1")


class BalancingExpert:
    """A hand-written CartPole controller that holds the pole for all 500 steps."""

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return (3 * observation[:, 2] + observation[:, 3] > 0).astype(np.int64), state


def train_bc(network, context_len: int, n_episodes: int, gradient_steps: int) -> BC:
    torch.manual_seed(0)
    demos = rollout(BalancingExpert(), CARTPOLE, list(range(n_episodes)))
    bc = BC(
        network=network,
        context_len=context_len,
        learning_rate=1e-3,
        batch_size=256,
        gradient_steps=gradient_steps,
        val_interval=100,
        env=CARTPOLE,
        demonstrations=demos,
        rng=np.random.default_rng(0),
    )
    bc.learn(None)
    return bc


def test_mlp_bc_clearly_beats_random():
    from functools import partial

    bc = train_bc(partial(MLPNet, hidden_sizes=[64, 64]), 1, n_episodes=2, gradient_steps=400)
    seeds = eval_seeds(1000, 10)
    random = evaluate(RandomPolicy(CARTPOLE.action_space, 0), CARTPOLE, seeds).mean
    learned = evaluate(bc.policy, CARTPOLE, seeds).mean
    assert random < 40
    assert learned > 300, learned
    assert bc.gradient_steps <= 400


def test_transformer_bc_learns_from_stacked_observations():
    from functools import partial

    network = partial(
        TransformerNet, d_model=32, n_heads=4, n_layers=1, dim_feedforward=64, dropout=0.0
    )
    bc = train_bc(network, 4, n_episodes=2, gradient_steps=300)
    learned = evaluate(bc.policy, CARTPOLE, eval_seeds(1000, 10)).mean
    assert learned > 300, learned
