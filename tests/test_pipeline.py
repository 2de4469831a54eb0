"""End-to-end runs of the real pipeline with debug=smoke budgets."""

import json
from importlib import metadata

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from conftest import run_pipeline
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from il_lab.datasets.sources import load_trajectories
from il_lab.envs import EnvSpec
from il_lab.evaluation import eval_seeds, evaluate
from il_lab.policies import StackedObsPolicy
from il_lab.runtime.metrics import EVAL_TAGS, EXPERT_TAGS, LEARNER_TAGS, METRICS_KEYS, SCORE_TAG


def scalar_tags(folder) -> set[str]:
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return set(accumulator.Tags()["scalars"])


def test_metrics_json_has_exactly_the_documented_keys(smoke_run):
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    assert list(metrics) == list(METRICS_KEYS)
    assert metrics["env"] == "CartPole-v1"
    assert (metrics["expert"], metrics["learner"]) == ("sb3_ppo", "transformer_bc")
    assert metrics["libraries"] == ", ".join(
        f"{name} {metadata.version(name)}" for name in ("torch", "stable-baselines3", "gymnasium")
    )
    assert len(metrics["learner/eval/returns"]) == 2
    assert metrics["learner/eval/return_mean"] == pytest.approx(
        np.mean(metrics["learner/eval/returns"])
    )
    assert metrics["expert/cache_hit"] is False and metrics["demos/cache_hit"] is False
    assert metrics["demos/n_episodes"] == 2
    assert metrics["learner/gradient_steps"] > 0
    assert metrics["timing/total_s"] >= metrics["timing/learner_s"] > 0


def test_tensorboard_has_the_documented_tags_in_one_folder_per_stage(smoke_run):
    assert sorted(p.name for p in (smoke_run / "tb").iterdir()) == ["expert", "learner"]
    # add_hparams would have made a sub-folder; the hparams summary sits in the stage's own.
    assert all(p.is_file() for p in (smoke_run / "tb" / "learner").iterdir())
    assert scalar_tags(smoke_run / "tb" / "expert") == EXPERT_TAGS
    # A smoke expert is no better than random: its score is null, so no score scalar is written.
    assert (
        json.loads((smoke_run / "metrics.json").read_text())["learner/eval/normalized_score"]
        is None
    )
    expected = LEARNER_TAGS["transformer_bc"] | EVAL_TAGS - {SCORE_TAG}
    assert scalar_tags(smoke_run / "tb" / "learner") == expected
    accumulator = EventAccumulator(str(smoke_run / "tb" / "learner"))
    accumulator.Reload()
    assert "_hparams_/experiment" in accumulator.summary_metadata


def test_video_decodes(smoke_run):
    videos = list((smoke_run / "videos").glob("*.mp4"))
    assert len(videos) == 1
    reader = imageio.get_reader(videos[0])
    frame = reader.get_data(0)
    assert frame.shape == (400, 600, 3)  # no resize to a multiple of 16
    assert reader.count_frames() > 5


def test_saved_learner_reloads_and_acts_alike(smoke_run):
    """The reloaded policy replays the run's evaluation episodes return for return."""
    policy = StackedObsPolicy.load(smoke_run / "learner.pt")
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    seeds = eval_seeds(1_000_000, len(metrics["learner/eval/returns"]))
    replayed = evaluate(policy, EnvSpec("CartPole-v1"), seeds)
    assert replayed.returns == metrics["learner/eval/returns"]
    obs = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32) * 0.05
    actions, state = policy.predict(obs)
    assert actions.shape == (8,) and state.shape == (8, policy.context_len, 4)
    # The normalization statistics came with the weights.
    assert policy.obs_norm == "shared" and not torch.all(policy.obs_mean == 0)


def test_second_run_reuses_the_cache_and_same_seed_gives_same_numbers(tmp_path):
    first = run_pipeline(tmp_path, ["learner=mlp_bc"], name="first")
    second = run_pipeline(tmp_path, ["learner=mlp_bc"], name="second")
    fresh = run_pipeline(tmp_path, ["learner=mlp_bc"], name="fresh", cache="other_cache")
    assert second["expert/cache_hit"] and second["demos/cache_hit"]
    assert not fresh["expert/cache_hit"]
    for other in (second, fresh):
        for key in METRICS_KEYS:
            if not key.startswith("timing/") and not key.endswith("cache_hit"):
                assert other[key] == first[key], key
    # One expert per env: another learner seed imitates the same expert on other demonstrations.
    other_seed = run_pipeline(tmp_path, ["learner=mlp_bc", "seed=1"], name="seed1")
    assert other_seed["expert/cache_hit"] and not other_seed["demos/cache_hit"]
    # The old protocol, one expert per seed, is one override away.
    per_seed = run_pipeline(tmp_path, ["learner=mlp_bc", "seed=1", "expert.seed=${seed}"], "own")
    assert not per_seed["expert/cache_hit"]


def test_users_own_demonstrations_and_expert(tmp_path):
    reference = tmp_path / "reference"
    run_pipeline(tmp_path, ["learner=mlp_bc", "budget.demo_episodes=3"], name="reference")
    cache = tmp_path / "cache"
    demos_file = next((cache / "demos").glob("*.npz"))
    expert_file = next((cache / "experts").glob("*.zip"))
    assert len(load_trajectories(demos_file, EnvSpec("CartPole-v1"))) == 3
    metrics = run_pipeline(
        tmp_path,
        ["learner=mlp_bc", f"demos.path={demos_file}", f"expert.path={expert_file}"],
        name="own",
        cache="unused_cache",
    )
    assert metrics["demos/n_episodes"] == 3
    assert metrics["expert/cache_hit"] is False
    assert not (tmp_path / "unused_cache" / "experts").exists()
    base = json.loads((reference / "metrics.json").read_text())
    assert metrics["expert/eval/return_mean"] == base["expert/eval/return_mean"]


def test_demo_transitions_cap(tmp_path):
    metrics = run_pipeline(tmp_path, ["learner=mlp_bc", "budget.demo_transitions=7"])
    assert metrics["demos/n_transitions"] == 7


@pytest.mark.parametrize("learner", ["dagger", "bco"])
def test_online_learner_smoke_run(tmp_path, learner):
    metrics = run_pipeline(tmp_path, [f"learner={learner}"])
    assert metrics["learner"] == learner
    assert metrics["learner/env_steps"] == 500  # debug=smoke's budget.learner_env_steps
    assert metrics["learner/expert_queries"] == (500 if learner == "dagger" else 0)
    tags = scalar_tags(tmp_path / "run" / "tb" / "learner")
    assert EVAL_TAGS - {SCORE_TAG} <= tags and tags - EVAL_TAGS <= LEARNER_TAGS[learner]
    core = {"dagger": {"train/beta", "train/bc_loss"}, "bco": {"train/idm_loss", "train/bc_loss"}}
    assert core[learner] <= tags


def test_a_failing_video_still_leaves_the_results(tmp_path, monkeypatch, caplog):
    """A render crash (simulated where the pipeline calls the recorder) costs the video only."""

    def crash(*args, **kwargs):
        raise RuntimeError("no rendering backend")

    monkeypatch.setattr("il_lab.stages.record_episode", crash)
    metrics = run_pipeline(tmp_path, ["learner=mlp_bc"])
    assert list(metrics) == list(METRICS_KEYS)
    assert metrics["learner/gradient_steps"] > 0 and len(metrics["learner/eval/returns"]) == 2
    assert metrics["timing/video_s"] is not None
    assert not (tmp_path / "run" / "videos" / "mlp_bc.mp4").exists()
    assert "no video (RuntimeError: no rendering backend)" in caplog.text
    accumulator = EventAccumulator(str(tmp_path / "run" / "tb" / "learner"))
    accumulator.Reload()
    assert "_hparams_/experiment" in accumulator.summary_metadata
