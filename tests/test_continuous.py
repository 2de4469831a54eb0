"""Every learner on Box actions (Pendulum-v1), seconds-long with fixed seeds: each clearly beats
the random policy (about -1200 here); BC's Gaussian policy survives a save and a load."""

from functools import partial

import numpy as np
import pytest
import torch
from conftest import compose_config
from hydra.utils import instantiate

from il_lab.datasets.trajectories import Trajectory
from il_lab.envs import EnvSpec
from il_lab.evaluation import RandomPolicy, eval_seeds, evaluate
from il_lab.interaction import Actor
from il_lab.interfaces import LearnerInputs
from il_lab.learners.bc import BC
from il_lab.learners.bco import BCO
from il_lab.learners.dagger import DAgger
from il_lab.learners.discriminator import DiscriminatorHyperparameters
from il_lab.learners.gail import GAIL
from il_lab.networks import MLPNet, TransformerNet
from il_lab.policies import StackedObsPolicy
from il_lab.rollout import rollout

PENDULUM = EnvSpec("Pendulum-v1")
SEEDS = eval_seeds(1000, 10)
MLP = partial(MLPNet, hidden_sizes=[64, 64])


class SwingUp:
    """A hand-written Pendulum controller: pump energy until near the top, then balance by PD
    control (about -140 over 20 episodes; PPO experts reach -150 to -350)."""

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        obs = np.asarray(observation, dtype=np.float64).reshape(-1, 3)
        cos, sin, velocity = obs[:, 0], obs[:, 1], obs[:, 2]
        energy = velocity**2 / 6 + 5 * (cos - 1)  # 0 at rest upright
        balance = np.clip(-10 * np.arctan2(sin, cos) - 2 * velocity, -2, 2)
        pump = np.where(energy < 0, 2.0 * np.sign(velocity + 1e-9), -0.5 * np.sign(velocity))
        torque = np.where(cos > 0.85, balance, pump)
        return torque[:, None].astype(np.float32), state


def demos(n_episodes: int = 10) -> list[Trajectory]:
    return rollout(SwingUp(), PENDULUM, list(range(n_episodes)))


def inputs(demonstrations=None, expert=None) -> LearnerInputs:
    torch.manual_seed(0)
    return LearnerInputs(
        env=PENDULUM,
        demonstrations=demos() if demonstrations is None else demonstrations,
        expert=expert,
        rng=np.random.default_rng(0),
    )


def make_bc(network=MLP, context_len: int = 1, gradient_steps: int = 1000):
    return partial(
        BC,
        network=network,
        context_len=context_len,
        learning_rate=1e-3,
        batch_size=256,
        max_gradient_steps=gradient_steps,
        val_fraction=0.0,
        val_interval=200,
        obs_norm="per_dim",  # conf/env/pendulum.yaml's bc_obs_norm
    )


@pytest.fixture(scope="module")
def random_return() -> float:
    return evaluate(RandomPolicy(PENDULUM.action_space, 0), PENDULUM, SEEDS).mean


def learned_return(learner) -> float:
    learner.learn(None)
    return evaluate(learner.policy, PENDULUM, SEEDS).mean


TRANSFORMER = partial(
    TransformerNet, d_model=32, n_heads=4, n_layers=2, dim_feedforward=64, dropout=0.0
)


@pytest.mark.parametrize(
    "network, context_len",
    [(MLP, 1), pytest.param(TRANSFORMER, 4, marks=pytest.mark.slow)],
    ids=["mlp", "transformer"],
)
def test_bc_on_box_actions(network, context_len, random_return):
    ret = learned_return(make_bc(network, context_len)(inputs=inputs()))
    assert ret > random_return + 500, (ret, random_return)


def test_dagger_labels_with_the_experts_continuous_action(random_return):
    dagger = DAgger(
        bc=make_bc(gradient_steps=500),
        total_env_steps=1000,
        round_env_steps=500,
        eval_episodes_per_round=0,
        inputs=inputs(demos(2), expert=SwingUp()),
    )
    ret = learned_return(dagger)
    labels = dagger.actions[-1000:]
    assert labels.dtype == np.float32 and labels.shape == (1000, 1)
    assert len(np.unique(labels)) > 100  # continuous labels, not rounded or discretized
    assert dagger.expert_queries == 1000
    assert ret > random_return + 700, (ret, random_return)


def make_bco(demonstrations, total_env_steps: int = 12000, **options) -> BCO:
    return BCO(
        bc=make_bc(),
        idm_network=MLP,
        idm_learning_rate=1e-3,
        idm_batch_size=256,
        idm_gradient_steps=1500,
        idm_val_fraction=0.1,
        total_env_steps=total_env_steps,
        alpha=0.5,
        n_iterations=options.pop("n_iterations", 2),
        inputs=inputs(demonstrations),
        **options,
    )


@pytest.mark.slow
def test_bco_from_state_only_box_demonstrations(random_return):
    bco = make_bco(demos())
    ret = learned_return(bco)
    assert bco.env_steps == 12000 and bco.expert_queries == 0
    assert ret > random_return + 500, (ret, random_return)


def test_bco_exploration_noise_perturbs_the_policys_action_and_decays():
    bco = make_bco(demos(1), n_iterations=3, exploration_noise=0.5, exploration_noise_final=0.1)
    assert [bco.noise_at(i) for i in (1, 2, 3)] == pytest.approx([0.5, 0.3, 0.1])
    actor = Actor(bco.policy, deterministic=False)
    act = bco._rollout_actor(actor, 3, logger=None)
    assert actor.deterministic  # the noise is added to the policy's deterministic action
    obs = np.array([1.0, 0.0, 0.0], np.float32)
    mean = bco.policy.predict(obs[None], deterministic=True)[0][0]
    actions = np.array([act(obs, True) for _ in range(4000)])
    assert actions.shape == (4000, 1) and actions.dtype == np.float32
    assert np.all(np.abs(actions) <= 2.0)  # clipped to Pendulum's bounds
    # noise 0.1 of the half range (2): a standard deviation of 0.2 around the mean action
    assert abs(np.mean(actions) - mean[0]) < 0.02, (np.mean(actions), mean)
    assert abs(np.std(actions) - 0.2) < 0.02, np.std(actions)


def test_bco_idm_buffer_keeps_the_newest_transitions():
    pairs = []
    for size in (None, 300):
        bco = make_bco(demos(1), total_env_steps=900, n_iterations=0, idm_buffer_size=size)
        bco.idm_fit["gradient_steps"] = 5
        bco.bc.hyperparameters["gradient_steps"] = 5
        bco.learn(None)
        pairs.append((bco.pairs, bco.pair_actions))
    (everything, all_actions), (newest, newest_actions) = pairs
    assert len(everything) == 900 and len(newest) == len(newest_actions) == 300
    np.testing.assert_array_equal(newest, everything[-300:])
    np.testing.assert_array_equal(newest_actions, all_actions[-300:])


@pytest.mark.slow
def test_bco_with_decaying_exploration_noise_learns_pendulum(random_return):
    """The iterations' rollouts with noise instead of the policy's own spread."""
    bco = make_bco(
        demos(), total_env_steps=6000, exploration_noise=0.3, exploration_noise_final=0.1
    )
    ret = learned_return(bco)
    assert bco.env_steps == 6000
    assert ret > random_return + 500, (ret, random_return)


def test_bco_never_reads_box_demonstration_actions():
    real = demos(2)
    scrambled = [
        Trajectory(t.obs, np.full_like(t.acts, np.nan), t.rews, t.terminated, t.truncated)
        for t in real
    ]
    weights = []
    for data in (real, scrambled):
        bco = make_bco(data, total_env_steps=900)
        bco.idm_fit["gradient_steps"] = 20
        bco.bc.hyperparameters["gradient_steps"] = 20
        bco.learn(None)
        weights.append(bco.policy.state_dict())
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0)


@pytest.mark.slow
def test_gail_on_box_actions(random_return):
    """With the generator settings ``env=pendulum learner=gail`` composes, for 60k env steps."""
    total = 61440
    ppo = compose_config(["env=pendulum", "learner=gail"]).learner.ppo
    ppo = instantiate(ppo, total_env_steps=total)
    gail = GAIL(
        ppo=ppo,
        discriminator=DiscriminatorHyperparameters(
            hidden_sizes=(64, 64), learning_rate=1e-3, batch_size=512
        ),
        total_env_steps=total,
        round_env_steps=2048,
        n_disc_updates=16,
        inputs=inputs(),
    )
    ret = learned_return(gail)
    gail.close()
    assert gail.env_steps == total
    assert ret > random_return + 500, (ret, random_return)


def test_gaussian_bc_policy_round_trips_save_and_load(tmp_path):
    bc = make_bc(gradient_steps=50)(inputs=inputs(demos(1)))
    bc.learn(None)
    with torch.no_grad():
        bc.policy.head.log_std.fill_(-1.3)  # not the initial value: it must be saved too
    path = tmp_path / "learner.pt"
    bc.policy.save(path)
    loaded = StackedObsPolicy.load(path)
    obs = np.random.default_rng(0).uniform(-1, 1, (64, 3)).astype(np.float32)
    obs[:, 2] *= 8
    for deterministic in (True, False):
        torch.manual_seed(5)
        before, _ = bc.policy.predict(obs, deterministic=deterministic)
        torch.manual_seed(5)
        after, _ = loaded.predict(obs, deterministic=deterministic)
        np.testing.assert_array_equal(before, after)
    mean, _ = loaded.predict(obs * 0 + np.array([1, 0, 8], np.float32))
    assert np.all(np.abs(mean) <= 2.0)  # deterministic actions are the mean, clipped to bounds
