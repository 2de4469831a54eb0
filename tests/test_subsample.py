"""demos.subsample: one transition every N steps of each episode, from a seeded offset."""

import json

import numpy as np
import pytest
from conftest import compose_config, run_pipeline
from test_gail import make_gail
from test_learning import CARTPOLE, BalancingExpert

from il_lab import pipeline
from il_lab.datasets.trajectories import (
    Trajectory,
    kept_states,
    subsample,
    windows_and_actions,
)
from il_lab.errors import ConfigError
from il_lab.evaluation import RandomPolicy
from il_lab.rollout import rollout


def episodes() -> list[Trajectory]:
    falls = rollout(BalancingExpert(), CARTPOLE, [0, 1], deterministic=True)
    cut = rollout(BalancingExpert(), CARTPOLE.__class__("CartPole-v1", 60), [2])
    return [*falls, *cut]


def test_one_transition_every_n_steps_from_a_seeded_offset_per_episode():
    demos = episodes()
    kept = subsample(demos, 20, np.random.default_rng([0, 2]))
    again = subsample(demos, 20, np.random.default_rng([0, 2]))
    other = subsample(demos, 20, np.random.default_rng([1, 2]))
    for t, k in zip(demos, kept, strict=True):
        assert 0 <= k.kept[0] < 20 and np.all(np.diff(k.kept) == 20)
        assert k.kept[-1] + 20 >= len(t) and k.n_kept == len(range(k.kept[0], len(t), 20))
        # a kept transition is unchanged: s, a, s'
        np.testing.assert_array_equal(k.obs, t.obs)
        np.testing.assert_array_equal(k.acts, t.acts)
    assert [k.kept.tolist() for k in kept] == [k.kept.tolist() for k in again]
    assert [k.kept.tolist() for k in kept] != [k.kept.tolist() for k in other]
    assert subsample(demos, 1, np.random.default_rng(0)) == demos


def test_learners_read_the_kept_transitions_only():
    demos = episodes()
    kept = subsample(demos, 5, np.random.default_rng(3))
    windows, actions = windows_and_actions(kept, 4)
    assert len(windows) == len(actions) == sum(k.n_kept for k in kept)
    first = kept[0]
    np.testing.assert_array_equal(windows[0, -1], first.obs[first.kept[0]])
    np.testing.assert_array_equal(actions[0], first.acts[first.kept[0]])
    obs, next_obs = kept_states(kept)
    np.testing.assert_array_equal(next_obs[0], first.obs[first.kept[0] + 1])
    gail = make_gail(demos=kept, total_env_steps=1024)
    assert len(gail.expert_obs) == sum(k.n_kept for k in kept)
    gail.close()


def test_a_kept_terminal_transition_is_still_terminal():
    (fall,) = rollout(RandomPolicy(CARTPOLE.action_space, 0), CARTPOLE, [0])  # it falls
    assert fall.terminated
    last = len(fall) - 1
    keeps_end = Trajectory(fall.obs, fall.acts, fall.rews, True, False, np.array([0, last]))
    drops_end = Trajectory(fall.obs, fall.acts, fall.rews, True, False, np.array([0, last - 1]))
    assert keeps_end.ends_in_kept_terminal and not drops_end.ends_in_kept_terminal
    assert make_gail(demos=[keeps_end], total_env_steps=1024).n_expert_terminals == 1
    assert make_gail(demos=[drops_end], total_env_steps=1024).n_expert_terminals == 0


def test_the_run_records_what_the_learner_saw(tmp_path):
    whole = run_pipeline(tmp_path, ["learner=mlp_bc", "video.enabled=false"], name="whole")
    kept = run_pipeline(
        tmp_path, ["learner=mlp_bc", "video.enabled=false", "demos.subsample=4"], name="kept"
    )
    assert whole["demos/subsample"] == 1 and kept["demos/subsample"] == 4
    assert kept["demos/n_episodes"] == whole["demos/n_episodes"]
    assert kept["demos/n_transitions"] < whole["demos/n_transitions"] / 3
    record = json.loads((tmp_path / "kept" / "demonstrations.json").read_text())
    assert record["subsample"] == 4
    # the same cached episodes serve both: subsampling is a seeded view of them
    assert kept["demos/cache_hit"]


def test_a_subsample_that_keeps_nothing_is_refused_in_one_line(tmp_path):
    cfg = compose_config(
        ["debug=smoke", "learner=mlp_bc", "budget.demo_transitions=3", "demos.subsample=50"],
        tmp_path / "run", tmp_path / "cache",
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"demos.subsample=50 keeps no transition of 1 episodes"):
        pipeline.run(cfg)
