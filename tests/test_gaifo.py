"""GAIfO: GAIL with a discriminator on (s, s') pairs, never reading a demonstration action."""

import numpy as np
import pytest
import torch
from conftest import compose_config, plain, run_pipeline
from test_continuous import demos as swing_up_demos
from test_gail import PENDULUM, make_gail
from test_learning import CARTPOLE, BalancingExpert
from test_pipeline import scalar_tags

from il_lab.config.gate import check_node
from il_lab.datasets.trajectories import Trajectory
from il_lab.errors import ConfigError
from il_lab.evaluation import RandomPolicy, eval_seeds, evaluate
from il_lab.learners.gail import GAIL
from il_lab.rollout import rollout
from il_lab.runtime.metrics import EVAL_TAGS, LEARNER_TAGS, SCORE_TAG


def with_noise_actions(demos: list[Trajectory], seed: int) -> list[Trajectory]:
    rng = np.random.default_rng(seed)
    return [
        Trajectory(t.obs, rng.integers(0, 2, len(t)), t.rews * 0 - 5, t.terminated, t.truncated)
        for t in demos
    ]


def test_the_run_is_bit_identical_with_the_demonstrations_actions_replaced_by_noise():
    demos = rollout(BalancingExpert(), CARTPOLE, [0, 1])
    weights = []
    for data in (demos, with_noise_actions(demos, 9)):
        gaifo = make_gail(demos=data, total_env_steps=2048, pairs="state_next_state")
        gaifo.learn(None)
        weights.append({**gaifo.policy.state_dict(), **gaifo.discriminator.state_dict()})
        gaifo.close()
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0)


def test_the_discriminator_compares_states_with_next_states():
    demos = rollout(BalancingExpert(), CARTPOLE, [0])
    gaifo = make_gail(demos=demos, total_env_steps=1024, pairs="state_next_state")
    # its second input is the next observation (4 numbers), not a one-hot action (2)
    assert gaifo.discriminator.in_dim == 4 + 4 + 1  # obs, next obs, absorbing flag
    torch.testing.assert_close(
        gaifo.expert_second, torch.as_tensor(demos[0].obs[1:], dtype=torch.float32)
    )
    gaifo.close()


def test_a_warm_start_is_refused_for_state_only_imitation():
    cfg = compose_config(["learner=gaifo", "learner.bc_warm_start_steps=10"])
    with pytest.raises(ConfigError, match="learner.bc_warm_start_steps=10 is not allowed with"):
        check_node(plain(cfg)["learner"], GAIL, "learner.")


@pytest.mark.slow
def test_gaifo_beats_random_on_pendulum():
    assert compose_config(["env=pendulum", "learner=gaifo"]).learner.pairs == "state_next_state"
    total = 61440
    gaifo = make_gail(
        env=PENDULUM, demos=swing_up_demos(), total_env_steps=total, pairs="state_next_state",
        round_env_steps=2048, n_disc_updates=16,
        ppo_overrides=dict(n_envs=4, n_steps=512, batch_size=64, n_epochs=10, gamma=0.9,
                           gae_lambda=0.95, learning_rate=1e-3, linear_annealing=False,
                           log_std_init=-0.5, normalize_reward=True),
    )  # fmt: skip
    gaifo.learn(None)
    seeds = eval_seeds(1000, 10)
    learned = evaluate(gaifo.policy, PENDULUM, seeds).mean
    random = evaluate(RandomPolicy(PENDULUM.action_space, 0), PENDULUM, seeds).mean
    gaifo.close()
    assert learned > random + 300, (learned, random)


def test_gaifo_smoke_run_through_the_pipeline(tmp_path):
    metrics = run_pipeline(tmp_path, ["learner=gaifo", "video.enabled=false"])
    assert metrics["learner"] == "gaifo" and metrics["learner/env_steps"] > 0
    tags = scalar_tags(tmp_path / "run" / "tb" / "learner")
    assert EVAL_TAGS - {SCORE_TAG} <= tags and tags - EVAL_TAGS <= LEARNER_TAGS["gaifo"]
