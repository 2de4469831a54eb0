"""precision=bf16: BC-style training under bfloat16 autocast, float32 weights and losses."""

from functools import partial

import numpy as np
import torch
from conftest import compose_config
from hydra.utils import instantiate

from il_lab.datasets.trajectories import windows_and_actions
from il_lab.envs import EnvSpec
from il_lab.interfaces import LearnerInputs
from il_lab.learners.bc import build_policy
from il_lab.learners.supervised import autocast, fit
from il_lab.networks import TransformerNet
from il_lab.rollout import rollout

CARTPOLE = EnvSpec("CartPole-v1")
TINY = partial(TransformerNet, d_model=32, n_heads=4, n_layers=2, dim_feedforward=64, dropout=0.0)


class BalancingExpert:
    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return (3 * observation[:, 2] + observation[:, 3] > 0).astype(np.int64), state


def train_tiny_transformer(precision: str, demos, gradient_steps: int):
    torch.manual_seed(0)
    policy = build_policy(TINY, CARTPOLE, 4, demos, torch.device("cpu"))
    windows, actions = windows_and_actions(demos, 4)
    with torch.no_grad():
        initial = policy.head.loss(policy(torch.as_tensor(windows)), torch.as_tensor(actions))
    result = fit(
        policy,
        windows,
        actions,
        gradient_steps=gradient_steps,
        batch_size=128,
        learning_rate=1e-3,
        weight_decay=0.0,
        val_fraction=0.1,
        val_interval=50,
        patience=gradient_steps,
        rng=np.random.default_rng(0),
        logger=None,
        precision=precision,
    )
    return policy, float(initial), result


def test_bf16_training_of_a_tiny_transformer_runs_and_its_loss_falls():
    demos = rollout(BalancingExpert(), CARTPOLE, [0, 1])
    policy, initial, result = train_tiny_transformer("bf16", demos, 100)
    assert result.gradient_steps == 100
    assert np.isfinite(result.train_loss) and result.train_loss < 0.5 * initial
    assert result.val_loss < 0.5 * initial
    # Master weights stay float32; the forward pass really ran in bfloat16.
    assert {p.dtype for p in policy.parameters()} == {torch.float32}
    window = torch.zeros(2, 4, 4)
    with autocast(torch.device("cpu"), "bf16"):
        assert policy(window).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert policy(window).dtype == torch.float32

    # Deterministic on CPU like fp32, and not the fp32 numbers: autocast changed the arithmetic.
    _, _, again = train_tiny_transformer("bf16", demos, 100)
    _, _, fp32 = train_tiny_transformer("fp32", demos, 100)
    assert again.train_loss == result.train_loss
    assert fp32.train_loss != result.train_loss


def test_the_root_precision_key_reaches_every_bc():
    demos = rollout(BalancingExpert(), CARTPOLE, [0])
    for learner in ("transformer_bc", "mlp_bc", "dagger", "bco"):
        cfg = compose_config([f"learner={learner}", "precision=bf16"])
        bc_cfg = cfg.learner.bc if "bc" in cfg.learner else cfg.learner
        assert bc_cfg.precision == "bf16", learner
    cfg = compose_config(["learner=transformer_bc", "precision=bf16"])
    bc = instantiate(cfg.learner, _partial_=True)(
        inputs=LearnerInputs(env=CARTPOLE, demonstrations=demos, rng=np.random.default_rng(0))
    )
    assert bc.hyperparameters["precision"] == "bf16"
    assert compose_config([]).learner.precision == "fp32"  # the default
