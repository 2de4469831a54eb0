"""Multirun through the real launchers, and the comparison of a sweep."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, compose_config, multirun
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter

from il_lab.analysis.comparison import compare
from il_lab.analysis.jobs import Job, group_jobs, read_jobs, read_sweep, save_runs


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


@pytest.mark.slow
def test_parallel_sweep_trains_the_shared_expert_once(joblib_sweep):
    jobs, unfinished = read_sweep(joblib_sweep / "sweep")
    assert len(jobs) == 4 and not unfinished
    assert sum(not j.metrics["expert/cache_hit"] for j in jobs) == 1
    assert len(list((joblib_sweep / "cache" / "experts").glob("*.zip"))) == 1
    assert len(list((joblib_sweep / "cache" / "demos").glob("*.npz"))) == 2
    # Folder names carry the job number and the overrides.
    names = sorted(j.folder.name for j in jobs)
    assert names[0].startswith("0_") and "learner=mlp_bc" in " ".join(names)


@pytest.mark.slow
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
        score = job.metrics[
            "learner/eval/normalized_score"
        ]  # null where the expert has not learned
        assert row.iqm == pytest.approx(math.nan if score is None else score, nan_ok=True)
        assert f"{row.return_mean:.1f}" in table
    assert "99_unfinished" not in table
    assert (sweep / "comparison.md").is_file() and (sweep / "scores.png").is_file()
    assert (sweep / "return_vs_demo_episodes.png").is_file()


def write_job(sweep, number, overrides, metrics):
    folder = sweep / f"{number}_job"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))


def test_compare_statistics_over_seeds_match_the_metrics_files(tmp_path, caplog):
    """Two groups of four seeds; every column recomputed here from the metrics.json files."""
    sweep = tmp_path / "sweep"
    rng = np.random.default_rng(0)
    written = {}
    for number, (learner, seed) in enumerate(
        (learner, seed) for learner in ("mlp_bc", "dagger") for seed in range(4)
    ):
        metrics = {
            "learner/eval/return_mean": float(rng.uniform(100, 500)),
            "learner/eval/normalized_score": float(rng.uniform(0, 1)),
            "learner/env_steps": int(rng.integers(0, 1000)),
            "learner/expert_queries": int(rng.integers(0, 1000)),
            "timing/total_s": float(rng.uniform(1, 10)),
        }
        write_job(sweep, number, [f"learner={learner}", f"seed={seed}"], metrics)
        written.setdefault(learner, []).append(metrics)
    write_job(sweep, 8, ["learner=dagger", "seed=4"], None)  # unfinished: no metrics.json

    table, rows = compare(sweep, reps=500)

    assert "no metrics.json (unfinished or failed), left out" in caplog.text
    assert "8_job" in caplog.text
    assert [r.group.label for r in rows] == ["learner=dagger", "learner=mlp_bc"]
    for row in rows:
        runs = written[row.group.label.removeprefix("learner=")]
        column = {key: np.array([m[key] for m in runs]) for key in runs[0]}
        scores = np.sort(column["learner/eval/normalized_score"])
        assert row.runs == 4
        assert row.return_mean == pytest.approx(column["learner/eval/return_mean"].mean())
        assert row.return_std == pytest.approx(column["learner/eval/return_mean"].std())
        assert row.iqm == pytest.approx(scores[1:3].mean())  # the middle half of four
        assert scores[0] <= row.ci_low <= row.iqm <= row.ci_high <= scores[-1]
        assert row.ci_low < row.ci_high
        assert row.env_steps == pytest.approx(column["learner/env_steps"].mean())
        assert row.expert_queries == pytest.approx(column["learner/expert_queries"].mean())
        assert row.wall_clock_s == pytest.approx(column["timing/total_s"].mean())
        assert f"| {row.group.label} | 4 | {row.return_mean:.1f} | {row.return_std:.1f} |" in table
    assert (sweep / "comparison.md").read_text().count("| learner=") == 2


def test_compare_reads_a_null_score_as_nan(tmp_path):
    """metrics.json writes the score as null, with a note, when the expert is no better than
    random: the group's IQM is over its other seeds, or nan when it has none."""
    sweep = tmp_path / "sweep"
    scores = {"mlp_bc": [0.2, None, 0.4], "dagger": [None, None, None]}
    for number, (learner, seed) in enumerate((k, s) for k in scores for s in range(3)):
        score = scores[learner][seed]
        metrics = {
            "learner/eval/return_mean": 100.0,
            "learner/eval/normalized_score": score,
            "learner/eval/normalized_score_note": None if score is not None else "no better",
            "learner/env_steps": 0,
            "learner/expert_queries": 0,
            "timing/total_s": 1.0,
        }
        write_job(sweep, number, [f"learner={learner}", f"seed={seed}"], metrics)
    runs = tmp_path / "runs.jsonl"
    save_runs(read_jobs([sweep]), runs)
    assert [j.metrics for j in read_jobs([runs])] == [j.metrics for j in read_sweep(sweep)[0]]

    table, rows = compare(sweep, reps=100)

    dagger, bc = rows
    assert bc.iqm == pytest.approx(0.3) and bc.runs == 3
    assert math.isnan(dagger.iqm) and math.isnan(dagger.ci_low) and math.isnan(dagger.ci_high)
    assert "| learner=dagger | 3 | 100.0 | 0.0 | nan [nan, nan] |" in table
    assert (sweep / "scores.png").is_file()


def test_groups_are_every_swept_key_but_the_seed(tmp_path):
    def job(learner, seed, score):
        metrics = {"learner/eval/normalized_score": score}
        return Job(tmp_path, {"learner": learner, "seed": str(seed), "device": "cpu"}, metrics)

    jobs = [job("bc", 0, 0.1), job("bc", 1, 0.3), job("dagger", 0, 0.9), job("dagger", 1, 1.0)]
    groups = group_jobs(jobs)
    assert [g.settings for g in groups] == [(("learner", "bc"),), (("learner", "dagger"),)]
    np.testing.assert_allclose(groups[1].values("learner/eval/normalized_score"), [0.9, 1.0])


@pytest.mark.slow
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


def fake_report_run(folder, returns, epoch_losses):
    """A finished run of report_transformer_bc: its real config, our metrics and loss events."""
    cfg = compose_config(["+experiment=report_transformer_bc"])
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml({"report": cfg.report}))
    (folder / "metrics.json").write_text(json.dumps({"learner/eval/returns": returns}))
    writer = SummaryWriter(str(folder / "tb" / "learner"))
    for epoch, loss in enumerate(epoch_losses, start=1):
        writer.add_scalar("train/bc_loss", loss, epoch * 1171)
    writer.close()


@pytest.mark.parametrize(
    ("returns", "epoch_losses", "failing"),
    [
        ([500.0, 500.0], [0.11, 0.05, 0.0125], None),
        ([500.0, 312.0], [0.11, 0.05, 0.0125], "learner/eval/returns"),
        ([500.0, 500.0], [0.30, 0.05, 0.0125], "train/bc_loss@first"),
        ([500.0, 500.0], [0.11, 0.05, 0.0400], "train/bc_loss@last"),
    ],
)
def test_check_report_passes_a_matching_run_and_fails_a_miss(
    tmp_path, returns, epoch_losses, failing
):
    run = tmp_path / "run"
    fake_report_run(run, returns, epoch_losses)
    result = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "check_report.py"), str(run)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout + result.stderr
    assert f"train/bc_loss@first = {epoch_losses[0]} " in result.stdout
    assert f"train/bc_loss@last = {epoch_losses[-1]} " in result.stdout
    failed = [line for line in lines if line.startswith("FAIL")]
    if failing is None:
        assert result.returncode == 0 and not failed
    else:
        assert result.returncode == 1
        assert len(failed) == 1 and failing in failed[0]
