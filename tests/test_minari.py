"""Minari datasets in (demos.path=minari:<id>) and out (python -m il_lab.datasets.export export).

Every test writes into its own MINARI_DATASETS_PATH under tmp_path, never into ~/.minari.
"""

import json
import os
import subprocess
import sys

import gymnasium as gym
import minari
import numpy as np
import pytest
from conftest import ROOT, run_pipeline
from minari.data_collector import EpisodeBuffer

from il_lab.datasets.export import main as demos_cli
from il_lab.datasets.npz import save_trajectories
from il_lab.datasets.sources import SOURCE_RECORD, load_trajectories, recorded_source
from il_lab.datasets.trajectories import Trajectory
from il_lab.envs import EnvSpec
from il_lab.errors import ConfigError
from il_lab.evaluation import RandomPolicy, normalized_score
from il_lab.rollout import rollout

CARTPOLE = EnvSpec("CartPole-v1")


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari_datasets"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def assert_same(a: list[Trajectory], b: list[Trajectory]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for field in ("obs", "acts", "rews"):
            u, v = getattr(x, field), getattr(y, field)
            assert u.dtype == v.dtype and u.shape == v.shape, field
            np.testing.assert_array_equal(u, v, err_msg=field)
        assert (x.terminated, x.truncated) == (y.terminated, y.truncated)


@pytest.mark.parametrize(
    ("env_id", "episode_cap"),
    [("CartPole-v1", None), ("Pendulum-v1", 50)],  # Discrete and Box actions
)
def test_npz_to_minari_to_trajectories_is_identical(tmp_path, minari_root, env_id, episode_cap):
    env = EnvSpec(env_id, episode_cap)
    demos = rollout(RandomPolicy(env.action_space, 0), env, [1, 2, 3])
    # CartPole's random episodes end in a terminal state, capped Pendulum's by truncation.
    ends = {(t.terminated, t.truncated) for t in demos}
    assert ends == ({(True, False)} if episode_cap is None else {(False, True)})
    npz = tmp_path / "demos.npz"
    save_trajectories(npz, demos, env)
    from_npz = load_trajectories(npz, env)
    args = ["export", str(npz), "--to", "minari:test/demos-v0", "--ref-min", "-3", "--ref-max", "5"]
    if episode_cap is not None:
        args += ["--max-episode-steps", str(episode_cap)]
    assert demos_cli(args) == 0

    folder = minari_root / "test" / "demos-v0"
    assert (folder / "data" / "main_data.hdf5").is_file()
    assert_same(load_trajectories("minari:test/demos-v0", env), from_npz)
    assert_same(load_trajectories(folder, env), from_npz)  # a dataset folder works too
    # Minari's own reader sees the env, its cap and the reference scores.
    dataset = minari.load_dataset("test/demos-v0")
    assert dataset.env_spec.id == env_id
    assert dataset.env_spec.max_episode_steps == (episode_cap or 500)
    assert dataset.total_episodes == 3 and dataset.total_steps == sum(len(t) for t in demos)
    assert minari.get_normalized_score(dataset, np.array(1.0)) == pytest.approx(0.5)


def test_a_dataset_of_another_env_is_refused_naming_demos_path(tmp_path):
    npz = tmp_path / "demos.npz"
    save_trajectories(npz, rollout(RandomPolicy(CARTPOLE.action_space, 0), CARTPOLE, [1]), CARTPOLE)
    assert demos_cli(["export", str(npz), "--to", "minari:cartpole-v0"]) == 0
    with pytest.raises(ConfigError, match=r"^demos\.path='minari:cartpole-v0' .*'CartPole-v1'"):
        load_trajectories("minari:cartpole-v0", EnvSpec("Acrobot-v1"))


@pytest.mark.filterwarnings("ignore:.*None:UserWarning")  # a dataset made without an env
def test_unsupported_spaces_missing_datasets_and_bad_ids_are_one_line_refusals(minari_root):
    # A dataset with Dict observations (goal-conditioned datasets look like this).
    obs_space = gym.spaces.Dict({"position": gym.spaces.Box(-1, 1, (4,), np.float32)})
    episode = EpisodeBuffer(
        observations={"position": np.zeros((3, 4), np.float32)},
        actions=np.zeros(2, np.int64),
        rewards=np.ones(2, np.float32),
        terminations=np.array([False, True]),
        truncations=np.array([False, False]),
    )
    minari.create_dataset_from_buffers(
        "dict-v0",
        [episode],
        observation_space=obs_space,
        action_space=gym.spaces.Discrete(2),
        algorithm_name="test",
        author="test",
        author_email="test",
        code_permalink="test",
        description="test",
    )
    cases = [
        ("minari:dict-v0", r"has observation space Dict.*allowed: Box observations"),
        (
            "minari:absent-v0",
            r"is not in the local Minari datasets root .*minari download absent-v0",
        ),
        ("minari:no version", r"is not a Minari dataset id; allowed: minari:"),
    ]
    for source, message in cases:
        with pytest.raises(ConfigError, match=rf"^demos\.path='{source}' {message}") as refused:
            load_trajectories(source, CARTPOLE)
        assert "\n" not in str(refused.value)
    assert not (minari_root / "absent-v0").exists()  # nothing was fetched


def test_an_existing_id_is_not_overwritten(tmp_path, caplog):
    npz = tmp_path / "demos.npz"
    save_trajectories(npz, rollout(RandomPolicy(CARTPOLE.action_space, 0), CARTPOLE, [1]), CARTPOLE)
    assert demos_cli(["export", str(npz), "--to", "minari:once-v0"]) == 0
    assert demos_cli(["export", str(npz), "--to", "minari:once-v0"]) == 2
    assert "--to='minari:once-v0' already exists" in caplog.text


def test_a_run_exports_and_trains_again_from_minari_with_the_same_results(tmp_path):
    first = run_pipeline(tmp_path, ["learner=mlp_bc", "budget.demo_episodes=3"], name="npz")
    run_dir = tmp_path / "npz"
    record = recorded_source(run_dir)
    cached = record["path"]
    assert cached.endswith(".npz") and str(tmp_path / "cache") in cached
    assert record["env_id"] == "CartPole-v1" and record["by_expert"]

    assert demos_cli(["export", str(run_dir), "--to", "minari:il_lab/cartpole-v0"]) == 0
    dataset = minari.load_dataset("il_lab/cartpole-v0")
    meta = dataset.storage.metadata
    assert meta["ref_min_score"] == first["random/eval/return_mean"]
    assert meta["ref_max_score"] == first["expert/eval/return_mean"]
    # the same formula as ours (metrics.json's score is null here: a smoke expert is no better
    # than random)
    ours = normalized_score(
        first["learner/eval/return_mean"],
        first["random/eval/return_mean"],
        first["expert/eval/return_mean"],
    )
    theirs = minari.get_normalized_score(dataset, np.array(first["learner/eval/return_mean"]))
    assert float(theirs) == pytest.approx(ours, abs=1e-12)
    assert_same(
        load_trajectories("minari:il_lab/cartpole-v0", CARTPOLE),
        load_trajectories(cached, CARTPOLE),
    )

    again = run_pipeline(
        tmp_path,
        ["learner=mlp_bc", "budget.demo_episodes=3", "demos.path=minari:il_lab/cartpole-v0"],
        name="minari",
    )
    record = json.loads((tmp_path / "minari" / SOURCE_RECORD).read_text())
    assert record["path"] == "minari:il_lab/cartpole-v0" and not record["by_expert"]
    for key, value in first.items():
        if not key.startswith("timing/") and not key.endswith("cache_hit"):
            assert again[key] == value, key


def test_a_subsampled_run_exports_whole_episodes_and_its_subsample_reproduces(tmp_path):
    kept = ["learner=mlp_bc", "budget.demo_episodes=3", "demos.subsample=7", "seed=3"]
    first = run_pipeline(tmp_path, kept, name="npz")
    assert demos_cli(["export", str(tmp_path / "npz"), "--to", "minari:il_lab/kept-v0"]) == 0
    dataset = minari.load_dataset("il_lab/kept-v0")
    assert dataset.total_steps == sum(
        len(t) for t in load_trajectories(recorded_source(tmp_path / "npz")["path"], CARTPOLE)
    )  # whole episodes, not the 1-in-7 the run kept
    assert "demos.subsample=7 seed=3 keeps the same ones" in dataset.storage.metadata["description"]
    again = run_pipeline(tmp_path, [*kept, "demos.path=minari:il_lab/kept-v0"], name="minari")
    assert first["demos/n_transitions"] < dataset.total_steps / 5
    for key in ("demos/n_transitions", "learner/eval/returns", "learner/gradient_steps"):
        assert again[key] == first[key], key


@pytest.mark.slow  # a subprocess: python run.py from the start
def test_run_py_refuses_a_dataset_that_is_not_local_in_one_line(tmp_path, minari_root):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "debug=smoke",
            "demos.path=minari:il_lab/absent-v0",
            f"paths.cache_dir={tmp_path}/cache",
            f"hydra.run.dir={tmp_path}/run",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "MINARI_DATASETS_PATH": str(minari_root)},
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "demos.path='minari:il_lab/absent-v0' is not in the local Minari datasets root" in output
    assert "minari download il_lab/absent-v0" in output and "Traceback" not in output
    assert not (tmp_path / "cache").exists()
