"""Multirun through the real launchers, and the comparison of a sweep."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from il_lab.comparison import Job, compare, group_jobs, read_sweep


def multirun(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "-m",
            "debug=smoke",
            "video.enabled=false",
            f"paths.cache_dir={tmp_path}/cache",
            f"hydra.sweep.dir={tmp_path}/sweep",
            *overrides,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory):
    """4 jobs, 2 at a time, all sharing one expert."""
    tmp = tmp_path_factory.mktemp("joblib")
    multirun(
        tmp,
        "learner=mlp_bc,transformer_bc",
        "budget.demo_episodes=1,2",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
    )
    return tmp


def test_parallel_sweep_trains_the_shared_expert_once(joblib_sweep):
    jobs, unfinished = read_sweep(joblib_sweep / "sweep")
    assert len(jobs) == 4 and not unfinished
    assert sum(not j.metrics["expert/cache_hit"] for j in jobs) == 1
    assert len(list((joblib_sweep / "cache" / "experts").glob("*.zip"))) == 1
    assert len(list((joblib_sweep / "cache" / "demos").glob("*.npz"))) == 2
    # Folder names carry the job number and the overrides.
    names = sorted(j.folder.name for j in jobs)
    assert names[0].startswith("0_") and "learner=mlp_bc" in " ".join(names)


def test_compare_table_matches_the_runs(joblib_sweep):
    sweep = joblib_sweep / "sweep"
    broken = sweep / "99_unfinished" / ".hydra"
    broken.mkdir(parents=True)
    (broken / "overrides.yaml").write_text("- learner=mlp_bc\n")
    table, rows = compare(sweep, reps=200)
    assert len(rows) == 4
    for row in rows:
        (job,) = row.group.jobs
        assert row.return_mean == pytest.approx(job.metrics["learner/eval/return_mean"])
        assert row.iqm == pytest.approx(job.metrics["learner/eval/normalized_score"])
        assert f"{row.return_mean:.1f}" in table
    assert "99_unfinished" not in table
    assert (sweep / "comparison.md").is_file() and (sweep / "scores.png").is_file()
    assert (sweep / "return_vs_demo_episodes.png").is_file()


def test_groups_are_every_swept_key_but_the_seed(tmp_path):
    def job(learner, seed, score):
        metrics = {"learner/eval/normalized_score": score}
        return Job(tmp_path, {"learner": learner, "seed": str(seed), "device": "cpu"}, metrics)

    jobs = [job("bc", 0, 0.1), job("bc", 1, 0.3), job("dagger", 0, 0.9), job("dagger", 1, 1.0)]
    groups = group_jobs(jobs)
    assert [g.settings for g in groups] == [(("learner", "bc"),), (("learner", "dagger"),)]
    np.testing.assert_allclose(groups[1].values("learner/eval/normalized_score"), [0.9, 1.0])


def test_submitit_local_runs_a_sweep(tmp_path):
    multirun(
        tmp_path,
        "learner=mlp_bc",
        "seed=0,1",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
    )
    metrics = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert len(metrics) == 2
    seeds = sorted(json.loads(m.read_text())["seed"] for m in metrics)
    assert seeds == [0, 1]
