"""DAgger and BCO: what they gather, what they read, and that they learn."""

from functools import partial

import numpy as np
import pytest
import torch
from test_learning import CARTPOLE, BalancingExpert

from il_lab.datasets.trajectories import Trajectory, cap_transitions
from il_lab.envs import EnvSpec
from il_lab.evaluation import eval_seeds, evaluate
from il_lab.interaction import Actor, EnvStepper
from il_lab.interfaces import LearnerInputs
from il_lab.learners.bc import BC
from il_lab.learners.bco import BCO, build_idm, idm_inputs
from il_lab.learners.dagger import DAgger, beta_for_round
from il_lab.learners.supervised import fit
from il_lab.networks import MLPNet
from il_lab.policies import StackedObsPolicy
from il_lab.rollout import rollout

MLP = partial(MLPNet, hidden_sizes=[64, 64])
PENDULUM = EnvSpec("Pendulum-v1")


def make_bc(gradient_steps: int = 300, context_len: int = 1):
    return partial(
        BC,
        network=MLP,
        context_len=context_len,
        learning_rate=1e-3,
        batch_size=256,
        max_gradient_steps=gradient_steps,
        val_fraction=0.0,
        val_interval=100,
    )


def expert_demos(seed: int, max_transitions: int | None = None) -> list[Trajectory]:
    return cap_transitions(rollout(BalancingExpert(), CARTPOLE, [seed]), max_transitions)


def make_dagger(**overrides) -> DAgger:
    torch.manual_seed(0)
    kwargs = dict(
        bc=make_bc(),
        total_env_steps=100,
        round_env_steps=25,
        eval_episodes_per_round=0,
        inputs=LearnerInputs(
            env=CARTPOLE,
            demonstrations=expert_demos(0, 25),
            expert=BalancingExpert(),
            rng=np.random.default_rng(0),
        ),
    )
    return DAgger(**{**kwargs, **overrides})


def test_beta_schedules():
    assert [beta_for_round(r, "constant", 0.7, 5, 0.5) for r in (1, 4)] == [0.7, 0.7]
    assert [beta_for_round(r, "linear", 1.0, 4, 0.5) for r in (1, 2, 3, 5, 9)] == [
        1.0,
        0.75,
        0.5,
        0.0,
        0.0,
    ]
    assert [beta_for_round(r, "exponential", 1.0, 4, 0.5) for r in (1, 2, 3)] == [1.0, 0.5, 0.25]


def test_dagger_data_grows_by_exactly_what_the_expert_labelled():
    dagger = make_dagger(bc=make_bc(gradient_steps=20))
    n_demo = len(dagger.windows)
    dagger.learn(None)
    assert dagger.round_sizes == [25, 25, 25, 25]
    assert dagger.expert_queries == dagger.env_steps == 100
    assert len(dagger.windows) == n_demo + 100
    # Every aggregated label is the expert's action in that state.
    added = dagger.windows[n_demo:, -1]
    expected, _ = BalancingExpert().predict(added)
    np.testing.assert_array_equal(dagger.actions[n_demo:], expected)


@pytest.mark.parametrize("mixture", ["per_step", "per_episode"])
def test_mixture_uses_the_expert_at_the_rate_beta(mixture):
    dagger = make_dagger(
        bc=make_bc(gradient_steps=5),
        total_env_steps=4000,
        round_env_steps=4000,
        beta_schedule="constant",
        beta0=0.3,
        mixture=mixture,
    )
    dagger.learn(None)
    rate = np.mean(dagger.draws)
    if mixture == "per_step":
        assert len(dagger.draws) == dagger.env_steps
        assert abs(dagger.expert_acted / dagger.env_steps - 0.3) < 0.05
    else:  # one draw per episode, so fewer of them
        assert 20 < len(dagger.draws) < dagger.env_steps / 5
    assert abs(rate - 0.3) < 0.12, (rate, len(dagger.draws))


def test_dagger_keeps_the_transformer_history():
    from il_lab.networks import TransformerNet

    network = partial(
        TransformerNet, d_model=16, n_heads=2, n_layers=1, dim_feedforward=32, dropout=0.0
    )
    bc = partial(make_bc(gradient_steps=10, context_len=3), network=network)
    dagger = make_dagger(bc=bc, total_env_steps=30, round_env_steps=30)
    dagger.learn(None)
    assert dagger.windows.shape[1:] == (3, 4)
    # Windows gathered online are padded at episode starts exactly like stored ones.
    first_online = dagger.windows[25]
    np.testing.assert_array_equal(first_online[0], first_online[1])


def test_dagger_learns_from_few_labels():
    dagger = make_dagger(total_env_steps=150, bc=make_bc(gradient_steps=500))
    dagger.learn(None)
    plain = BC(
        **make_bc(gradient_steps=500).keywords,
        inputs=LearnerInputs(
            env=CARTPOLE, demonstrations=expert_demos(0, 25), rng=np.random.default_rng(0)
        ),
    )
    plain.learn(None)
    seeds = eval_seeds(1000, 10)
    dagger_return = evaluate(dagger.policy, CARTPOLE, seeds).mean
    assert dagger_return > 300, dagger_return
    assert dagger_return > evaluate(plain.policy, CARTPOLE, seeds).mean


def make_bco(demonstrations, total_env_steps=3000, **options) -> BCO:
    torch.manual_seed(0)
    return BCO(
        bc=make_bc(),
        idm_network=MLP,
        idm_learning_rate=1e-3,
        idm_batch_size=256,
        idm_gradient_steps=500,
        idm_val_fraction=0.1,
        total_env_steps=total_env_steps,
        alpha=0.5,
        n_iterations=2,
        inputs=LearnerInputs(
            env=CARTPOLE, demonstrations=demonstrations, rng=np.random.default_rng(0)
        ),
        **options,
    )


def test_bco_exploration_noise_on_discrete_actions_is_a_random_action_by_chance():
    bco = make_bco(expert_demos(1), exploration_noise=0.6)
    assert bco.noise_at(1) == bco.noise_at(2) == 0.6  # no final value: constant
    actor = Actor(bco.policy, deterministic=False)
    act = bco._rollout_actor(actor, 1, logger=None)
    obs = np.array([0.0, 0.1, 0.02, -0.1], np.float32)
    greedy = bco.policy.predict(obs[None], deterministic=True)[0][0]
    actions = np.array([act(obs, True) for _ in range(4000)])
    assert set(np.unique(actions)) <= {0, 1}
    # a random action 60% of the time, which is the other action half of those times
    assert abs(np.mean(actions != greedy) - 0.3) < 0.03, np.mean(actions != greedy)


def test_bco_never_reads_demonstration_actions():
    demos = expert_demos(1)
    noisy = [
        Trajectory(
            t.obs,
            np.random.default_rng(9).integers(0, 2, len(t)),
            t.rews * 0 - 5,
            t.terminated,
            t.truncated,
        )
        for t in demos
    ]
    results = []
    for data in (demos, noisy):
        bco = make_bco(data, total_env_steps=600)
        bco.learn(None)
        results.append(bco.policy.state_dict())
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key], rtol=0, atol=0)


def idm_on_random_interaction(env, n_steps: int, gradient_steps: int):
    """An inverse-dynamics model fitted on the first 3/4 of ``n_steps`` random steps; returns it
    with the held-out quarter's inputs and actions."""
    rng = np.random.default_rng(0)
    stepper = EnvStepper(env, rng)
    space = env.action_space
    space.seed(0)
    steps = stepper.step(n_steps, lambda obs, start: space.sample())
    stepper.close()
    inputs = idm_inputs(steps.obs, steps.next_obs)
    n_train = n_steps * 3 // 4
    torch.manual_seed(0)
    idm = build_idm(MLP, env)
    idm.fit_normalization(inputs[:n_train, 0])
    fit(
        idm,
        inputs[:n_train],
        steps.acts[:n_train],
        gradient_steps=gradient_steps,
        batch_size=256,
        learning_rate=1e-3,
        weight_decay=0.0,
        val_fraction=0.0,
        val_interval=100,
        patience=5,
        rng=rng,
        logger=None,
    )
    return idm, inputs[n_train:], steps.acts[n_train:]


def test_inverse_dynamics_learns_cartpole_dynamics():
    idm, inputs, acts = idm_on_random_interaction(CARTPOLE, 4000, 600)
    held_out = np.mean(idm.act_on_windows(inputs) == acts)
    assert held_out > 0.95, held_out


def test_inverse_dynamics_learns_pendulums_continuous_actions():
    """Torque in [-2, 2] from (s, s' - s); uniform exploration's variance is 4/3."""
    idm, inputs, acts = idm_on_random_interaction(PENDULUM, 8000, 1500)
    mse = np.mean((idm.act_on_windows(inputs) - acts) ** 2)
    assert mse < 0.05, mse  # a constant guess would score about 1.33


def test_bco_learns_from_one_state_only_episode():
    bco = make_bco(expert_demos(1))
    bco.learn(None)
    assert bco.env_steps == 3000
    assert bco.expert_queries == 0
    assert evaluate(bco.policy, CARTPOLE, eval_seeds(1000, 10)).mean > 300


def test_dagger_keeps_history_and_episode_draw_across_rounds(monkeypatch):
    """Rounds of 7 steps end mid-episode; the learner's observation history and the per-episode
    expert-or-learner draw must still live exactly as long as the episode does."""
    from il_lab.networks import TransformerNet

    network = partial(
        TransformerNet, d_model=16, n_heads=2, n_layers=1, dim_feedforward=32, dropout=0.0
    )
    acted_on = []  # the history the learner's policy held at each of its steps
    real_predict = StackedObsPolicy.predict

    def spy(self, observation, state=None, episode_start=None, deterministic=True):
        actions, state = real_predict(self, observation, state, episode_start, deterministic)
        acted_on.append(state[0].copy())
        return actions, state

    monkeypatch.setattr(StackedObsPolicy, "predict", spy)
    dagger = make_dagger(
        bc=partial(make_bc(gradient_steps=5, context_len=3), network=network),
        total_env_steps=63,
        round_env_steps=7,
        beta0=1.0,  # every draw says "expert": any step the learner plays is a lost draw
        mixture="per_episode",
    )
    n_demo = len(dagger.windows)
    dagger.learn(None)
    online = dagger.windows[n_demo:]  # the true histories, as the training windows hold them
    assert len(acted_on) == len(online) == 63
    np.testing.assert_array_equal(np.array(acted_on), online)
    episode_starts = int(np.sum(np.all(online == online[:, :1], axis=(1, 2))))
    assert dagger.expert_acted == dagger.env_steps == 63
    assert len(dagger.draws) == episode_starts >= 1


def test_bco_policy_keeps_the_episodes_history_across_rounds(monkeypatch):
    """The policy takes over from random exploration, and round follows round, mid-episode:
    at every step it acts on the episode's true last three observations."""
    from il_lab.networks import TransformerNet

    network = partial(
        TransformerNet, d_model=16, n_heads=2, n_layers=1, dim_feedforward=32, dropout=0.0
    )
    acted_on = []
    real_predict = StackedObsPolicy.predict

    def spy(self, observation, state=None, episode_start=None, deterministic=True):
        actions, state = real_predict(self, observation, state, episode_start, deterministic)
        acted_on.append(state[0].copy())
        return actions, state

    monkeypatch.setattr(StackedObsPolicy, "predict", spy)
    bco = make_bco(expert_demos(1), total_env_steps=600)  # 300 random steps, 2 rounds of 150
    bco.bc = partial(make_bc(gradient_steps=5, context_len=3), network=network)(
        inputs=LearnerInputs(env=CARTPOLE, demonstrations=expert_demos(1), rng=bco.rng)
    )
    bco.idm_fit["gradient_steps"] = 5
    bco.learn(None)
    # Rebuild every step's true history from the recorded (s, s') pairs.
    s, s_next = bco.pairs[:, 0], bco.pairs[:, 1]
    expected, episode = [], []
    for i in range(len(s)):
        if i == 0 or not np.array_equal(s[i], s_next[i - 1]):
            episode = []  # a new episode
        episode.append(s[i])
        expected.append(np.stack([episode[max(0, len(episode) - k)] for k in (3, 2, 1)]))
    policy_steps = np.array(expected[bco.pre_demo_env_steps :])
    assert len(acted_on) == len(policy_steps) == 300
    np.testing.assert_array_equal(np.array(acted_on), policy_steps)


@pytest.mark.slow
def test_the_coverage_diagnostic_finds_expert_states_teach_the_inverse_model_more():
    """``experiments/bco_idm_coverage.py`` on Hopper with the published expert, shrunk: fitted on
    the expert's states with noisy actions, the model infers the expert's actions far better than
    fitted on uniform exploration (bco.md's finding, at a size that runs in seconds)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    command = [
        sys.executable,
        str(root / "experiments" / "bco_idm_coverage.py"),
        "--env=Hopper-v5",
        f"--expert={root / 'experiments/inputs/hopper/expert_ppo_seed1.pt'}",
        "--train-steps=3000",
        "--test-steps=500",
        "--gradient-steps=300",
        "--widths=32",
        "--sigmas=0.3",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    table = out.split("constant guess:")[1]
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table.splitlines()}
    uniform, near_expert = rows["uniform"], rows["expert+N(0, 0.3)"]
    assert float(near_expert[4]) < 0.5 * float(uniform[4]), (near_expert, uniform)
