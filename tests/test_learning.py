"""Seconds-long learning checks with fixed seeds."""

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from il_lab.envs import EnvSpec
from il_lab.evaluation import RandomPolicy, eval_seeds, evaluate
from il_lab.interfaces import LearnerInputs
from il_lab.learners.bc import BC
from il_lab.learners.supervised import fit
from il_lab.networks import MLPNet, TransformerNet
from il_lab.policies import StackedObsPolicy
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
        max_gradient_steps=gradient_steps,
        val_interval=100,
        inputs=LearnerInputs(env=CARTPOLE, demonstrations=demos, rng=np.random.default_rng(0)),
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


def test_logged_training_loss_is_the_mean_over_the_logging_interval(tmp_path):
    # With a zero learning rate the weights never move, so the mean over one epoch of equal
    # minibatches must equal the loss on the whole training set; one batch's loss would not.
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(512, 1, 4)).astype(np.float32)
    actions = rng.integers(0, 2, size=512)
    policy = StackedObsPolicy(
        network=MLPNet(obs_dim=4, context_len=1, hidden_sizes=[32]),
        network_kwargs={},
        observation_space=CARTPOLE.observation_space,
        action_space=CARTPOLE.action_space,
        context_len=1,
    )
    writer = SummaryWriter(tmp_path)
    fit(
        policy,
        windows,
        actions,
        gradient_steps=4,
        batch_size=128,
        learning_rate=0.0,
        weight_decay=0.0,
        val_fraction=0.0,
        val_interval=4,
        patience=5,
        rng=rng,
        logger=writer,
    )
    writer.close()

    events = EventAccumulator(str(tmp_path))
    events.Reload()
    logged_loss = events.Scalars("train/bc_loss")[-1].value
    logged_accuracy = events.Scalars("train/accuracy")[-1].value
    with torch.no_grad():
        params = policy(torch.as_tensor(windows))
        labels = torch.as_tensor(actions)
        whole_loss = policy.head.loss(params, labels).item()
        whole_accuracy = policy.head.accuracy(params, labels).item()
    assert logged_loss == pytest.approx(whole_loss, rel=1e-5)
    assert logged_accuracy == pytest.approx(whole_accuracy, abs=1e-6)
