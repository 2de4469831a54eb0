"""Across-env summaries from sweep folders (hand-written metrics.json files: the pipeline itself
is covered elsewhere; here only the statistics and what is written)."""

import json
import logging
import math
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import ROOT, compose_config
from rliable import library as rly
from rliable import metrics as rl_metrics
from test_config import options

from il_lab.analysis.across_envs import compare_across_envs, score_matrix, summarize_across_envs
from il_lab.analysis.comparison import iqm_with_ci
from il_lab.analysis.jobs import read_jobs, read_sweep, save_runs
from il_lab.analysis.published import PUBLISHED_SOURCE
from il_lab.analysis.tables import markdown_table

SCORES = {  # (env, learner) -> scores of seeds 0, 1, 2 (seed 3 only where a fourth is listed)
    ("Pendulum-v1", "mlp_bc"): [0.9, 0.2, 0.95],
    ("Pendulum-v1", "dagger"): [1.0, 0.98, 0.99, 0.1],
    ("Hopper-v5", "mlp_bc"): [0.5, 0.6, 0.7],
    ("Hopper-v5", "dagger"): [0.97, 1.01, 0.99],
}
EXPERTS = {"Pendulum-v1": "sb3_ppo", "Hopper-v5": "ppo"}


def write_job(sweep, env, learner, seed, score, learner_s=2.0):
    """One finished job as the pipeline leaves it: overrides and a flat metrics.json."""
    job = sweep / f"{learner}_{seed}"
    (job / ".hydra").mkdir(parents=True)
    overrides = [f"learner={learner}", f"seed={seed}"]
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    metrics = {
        "env": env,
        "expert": EXPERTS[env],
        "learner": learner,
        "seed": seed,
        "learner/eval/normalized_score": score,
        "learner/env_steps": 20000 if learner == "dagger" else 0,
        "learner/expert_queries": 20000 if learner == "dagger" else 0,
        "timing/learner_s": learner_s + seed,
        "timing/total_s": 10.0 + seed,
    }
    if env == "Hopper-v5":  # runs from before metrics.json recorded the versions have none
        metrics["libraries"] = "torch 2.13.0+cpu, mujoco 3.17.0"
    (job / "metrics.json").write_text(json.dumps(metrics))
    return job


def write_sweeps(root):
    """Two envs x two learners x three seeds (DAgger with a fourth seed on Pendulum only)."""
    dirs = {}
    for (env, learner), scores in SCORES.items():
        sweep = dirs.setdefault(env, root / env)
        for seed, score in enumerate(scores):
            write_job(sweep, env, learner, seed, score)
    return [dirs["Pendulum-v1"], dirs["Hopper-v5"]]


def read_all(sweeps):
    return [job for sweep in sweeps for job in read_sweep(sweep)[0]]


def test_across_envs_iqm_over_every_env_and_seed(tmp_path, caplog):
    sweeps = write_sweeps(tmp_path)
    with caplog.at_level(logging.WARNING):
        summaries = {s.learner: s for s in summarize_across_envs(read_all(sweeps), reps=500)}
    # DAgger has a fourth seed on Pendulum only: left out, with a warning naming it
    assert "dagger_3" in caplog.text
    dagger, bc = summaries["dagger"], summaries["mlp_bc"]
    assert dagger.envs == ("Hopper-v5", "Pendulum-v1") and dagger.seeds_per_env == 3
    expected = rl_metrics.aggregate_iqm(np.array([[0.97, 1.0], [1.01, 0.98], [0.99, 0.99]]))
    assert dagger.iqm == pytest.approx(expected, abs=1e-12)  # the dropped 0.1 is not in it
    expected_bc = rl_metrics.aggregate_iqm(np.array([[0.5, 0.9], [0.6, 0.2], [0.7, 0.95]]))
    assert bc.iqm == pytest.approx(expected_bc, abs=1e-12)
    for s in (dagger, bc):
        assert s.ci_low <= s.iqm <= s.ci_high
    assert bc.ci_low < bc.iqm < bc.ci_high  # a real interval, not a point
    assert bc.ci_high - bc.ci_low > dagger.ci_high - dagger.ci_low  # spread shows in the CI
    assert dagger.expert_queries == 20000 and bc.expert_queries == 0
    assert dagger.env_steps == 20000 and bc.env_steps == 0
    assert dagger.total_s == pytest.approx(11.0)  # seeds 0-2 only (seed 3 would make it 11.5)
    assert dagger.learner_s == pytest.approx(3.0)
    # per env: the IQM and interval of that env's seeds alone
    assert set(bc.per_env) == {"Hopper-v5", "Pendulum-v1"}
    point, low, high = bc.per_env["Pendulum-v1"]
    assert point == pytest.approx(rl_metrics.aggregate_iqm(np.array([[0.9], [0.2], [0.95]])))
    assert low <= point <= high and low < high


def test_interval_is_stratified_by_env(tmp_path):
    """Tasks are envs: seeds are resampled within each env, which is rliable's interval over
    the (n_seeds, n_envs) matrix, not over the six scores pooled as one task."""
    sweeps = write_sweeps(tmp_path)
    jobs = [j for j in read_all(sweeps) if j.metrics["learner"] == "mlp_bc"]
    (bc,) = summarize_across_envs(jobs, reps=300, seed=5)
    matrix = np.array([[0.5, 0.9], [0.6, 0.2], [0.7, 0.95]])  # (seeds, envs): Hopper, Pendulum
    np.random.seed(5)
    _, interval = rly.get_interval_estimates(
        {"bc": matrix}, lambda x: np.array([rl_metrics.aggregate_iqm(x)]), reps=300
    )
    assert (bc.ci_low, bc.ci_high) == pytest.approx(tuple(interval["bc"][:, 0]))
    pooled = iqm_with_ci(matrix.reshape(-1), reps=300, seed=5)
    assert (bc.ci_low, bc.ci_high) != pytest.approx(pooled[1:])


def test_score_matrix_is_seeds_by_envs(tmp_path):
    sweeps = write_sweeps(tmp_path)
    jobs = [j for j in read_all(sweeps) if j.metrics["learner"] == "mlp_bc"]
    scores, envs, used = score_matrix(jobs)
    assert envs == ("Hopper-v5", "Pendulum-v1") and scores.shape == (3, 2) and len(used) == 6
    np.testing.assert_allclose(scores[:, 1], [0.9, 0.2, 0.95])


def test_unequal_seeds_keep_the_lowest_common_seeds(tmp_path, caplog):
    """Pendulum has seeds 0-3 but Hopper only 1 and 3: each env keeps its lowest two."""
    sweep = tmp_path / "sweep"
    for seed, score in enumerate([0.1, 0.2, 0.3, 0.4]):
        write_job(sweep / "pendulum", "Pendulum-v1", "mlp_bc", seed, score)
    for seed, score in [(1, 0.5), (3, 0.6)]:
        write_job(sweep / "hopper", "Hopper-v5", "mlp_bc", seed, score)
    with caplog.at_level(logging.WARNING):
        scores, envs, used = score_matrix(read_sweep(sweep)[0])
    np.testing.assert_allclose(scores, [[0.5, 0.1], [0.6, 0.2]])
    assert sorted(j.folder.name for j in used if j.metrics["env"] == "Pendulum-v1") == [
        "mlp_bc_0",
        "mlp_bc_1",
    ]
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(left_out) == 2 and all("pendulum/mlp_bc_" in m for m in left_out)


def test_repeated_seed_keeps_the_run_read_last_and_nan_is_left_out(tmp_path, caplog):
    old, new = tmp_path / "old", tmp_path / "new"
    for seed, score in enumerate([0.1, 0.2, 0.3]):
        write_job(old, "Hopper-v5", "mlp_bc", seed, score)
    write_job(new / "hopper", "Hopper-v5", "mlp_bc", 0, 0.9)  # seed 0 again, in a later sweep
    write_job(new / "pendulum", "Pendulum-v1", "mlp_bc", 0, 0.8)
    write_job(new / "pendulum", "Pendulum-v1", "mlp_bc", 1, None)  # NaN: metrics.json's null
    write_job(new / "pendulum", "Pendulum-v1", "mlp_bc", 2, math.inf)
    with caplog.at_level(logging.WARNING):
        scores, envs, used = score_matrix(read_all([old, new]))
    # Pendulum has one finite score, so each env keeps one seed: Hopper's is the rerun's 0.9
    np.testing.assert_allclose(scores, [[0.9, 0.8]])
    assert "seed 0, twice" in caplog.text
    assert "score None, left out" in caplog.text and "score inf, left out" in caplog.text
    jobs = read_all([old, new])
    without_score = [j for j in jobs if j.folder.parent.name == "pendulum" and j.metrics["seed"]]
    with pytest.raises(ValueError, match="no run with a finite"):
        score_matrix(without_score)
    # in a summary, such a learner is left out with a warning; the others still count
    for job in without_score:
        job.metrics["learner"] = "gail"
    with caplog.at_level(logging.WARNING):
        learners = [s.learner for s in summarize_across_envs(jobs, reps=50)]
    assert learners == ["mlp_bc"] and "gail left out: no run with a finite" in caplog.text


def test_learner_missing_an_env_is_summarized_over_its_envs_with_a_warning(tmp_path, caplog):
    sweeps = write_sweeps(tmp_path)
    for seed, score in enumerate([0.3, 0.4, 0.5]):
        write_job(sweeps[0], "Pendulum-v1", "bco", seed, score)
    with caplog.at_level(logging.WARNING):
        tables, summaries = compare_across_envs(sweeps, tmp_path / "out", reps=100)
    bco = next(s for s in summaries if s.learner == "bco")
    assert bco.envs == ("Pendulum-v1",)
    assert "bco has no finished run on Hopper-v5: its IQM is over 1 of 2 envs" in caplog.text
    assert "| bco | 1 | 3 |" in tables
    assert "| bco | - | 0.400 [" in tables  # Hopper-v5 column first, then Pendulum-v1


def test_across_envs_writes_tables_published_numbers_and_plot(tmp_path):
    sweeps = write_sweeps(tmp_path / "sweeps")
    out = tmp_path / "results" / "README_summary.md"
    tables, summaries = compare_across_envs(sweeps, out, reps=200)
    text = out.read_text()
    assert tables in text and "| dagger | 2 | 3 |" in tables
    assert "| learner | Hopper-v5 | Pendulum-v1 |" in tables
    assert "Experts: Hopper-v5: ppo; Pendulum-v1: sb3_ppo" in text
    assert "- Hopper-v5: torch 2.13.0+cpu, mujoco 3.17.0\n- Pendulum-v1: not recorded" in text
    assert "![normalized score IQM per learner](README_summary.png)" in text
    # the imitation library's numbers: after ours, in their own table, labelled as theirs
    heading = text.index("## Published by the imitation library (theirs, not ours)")
    assert text.index(tables) < heading < text.index(PUBLISHED_SOURCE, heading)
    assert heading < text.index("| algorithm (imitation library: theirs) | HalfCheetah | Hopper |")
    assert "| BC | 0.92 | 1.00 | all of its expert demonstrations |" in text
    assert "| DAgger | 1.02 | 1.01 | 60,000-100,000 expert labels |" in text
    assert "| GAIL | 0.96 | 0.94 | 10,000,000 env steps |" in text
    png = out.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    # a folder instead of a file: the default names inside it
    compare_across_envs(sweeps, tmp_path / "folder", reps=100)
    assert (tmp_path / "folder" / "across_envs.md").is_file()
    assert (tmp_path / "folder" / "across_envs.png").is_file()


def test_compare_cli_across_envs(tmp_path):
    sweeps = write_sweeps(tmp_path / "sweeps")
    out = tmp_path / "summary.md"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "compare.py"),
            "--across-envs",
            *map(str, sweeps),
        ]
        + ["--out", str(out), "--reps", "100"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "| mlp_bc | 2 | 3 |" in result.stdout
    assert f"written: {out} and {out.with_suffix('.png')}" in result.stdout
    assert "dagger_3" in result.stderr  # the warning about the dropped fourth seed
    assert out.is_file() and out.with_suffix(".png").is_file()


def test_runs_file_stands_in_for_its_sweep_once_the_folders_are_gone(tmp_path, caplog):
    sweeps = write_sweeps(tmp_path / "sweeps")
    (sweeps[1] / "unfinished" / ".hydra").mkdir(parents=True)
    (sweeps[1] / "unfinished" / ".hydra" / "overrides.yaml").write_text("[]")
    runs = tmp_path / "results" / "runs" / "hopper.jsonl"
    with caplog.at_level(logging.WARNING):
        save_runs(read_jobs([sweeps[1]]), runs)
    assert "unfinished" in caplog.text and "unfinished" not in runs.read_text()
    expected, _ = compare_across_envs(sweeps, tmp_path / "from_folders.md", reps=200)
    saved = read_jobs([runs])
    assert [j.metrics for j in saved] == [j.metrics for j in read_sweep(sweeps[1])[0]]
    assert [j.overrides for j in saved] == [j.overrides for j in read_sweep(sweeps[1])[0]]
    for job in read_sweep(sweeps[1])[0]:
        (job.folder / "metrics.json").unlink()
    tables, _ = compare_across_envs([sweeps[0], runs], tmp_path / "from_file.md", reps=200)
    assert tables == expected
    assert not list(runs.parent.glob("*.partial"))
    with pytest.raises(ValueError, match="must end in .jsonl"):
        save_runs(saved, tmp_path / "runs.json")
    with pytest.raises(SystemExit, match="neither a sweep folder nor a .jsonl runs file"):
        read_jobs([tmp_path / "missing"])


@pytest.mark.slow
def test_compare_cli_saves_runs_and_reads_them_back(tmp_path):
    sweeps = write_sweeps(tmp_path / "sweeps")
    runs = tmp_path / "all.jsonl"
    compare = [sys.executable, str(ROOT / "experiments" / "compare.py")]
    saved = subprocess.run(
        compare + [*map(str, sweeps), "--save-runs", str(runs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert saved.returncode == 0, saved.stderr
    assert f"written: {runs} ({sum(map(len, SCORES.values()))} runs)" in saved.stdout
    summary = subprocess.run(
        compare + ["--across-envs", str(runs), "--out", str(tmp_path / "s.md"), "--reps", "100"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert summary.returncode == 0, summary.stderr
    assert "| mlp_bc | 2 | 3 |" in summary.stdout
    wrong = subprocess.run(
        compare + [str(sweeps[0]), "--save-runs", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert wrong.returncode == 2 and "--save-runs" in wrong.stderr and ".jsonl" in wrong.stderr


def test_markdown_table_aligns_columns_and_refuses_a_row_of_another_width():
    table = markdown_table(["a", "b", "c"], [["1", "2", "3"]], ["default", "right", "center"])
    assert table == "| a | b | c |\n|---|---:|:---:|\n| 1 | 2 | 3 |"
    assert markdown_table(["a"], []) == "| a |\n|---|"
    with pytest.raises(ValueError, match="row 0 has 1 cells, the header 2 columns"):
        markdown_table(["a", "b"], [["1"]])
    with pytest.raises(ValueError, match="align: middle; allowed: default, left, right, center"):
        markdown_table(["a"], [], ["middle"])


def test_benchmark_preset_sweeps_every_learner_and_five_seeds_per_env():
    cfg = compose_config(["+experiment=benchmark", "env=hopper"])
    params = cfg.hydra.sweeper.params
    # DAC (SAC's generator) is benchmarked on its own: experiments/results/ when measured
    assert set(params.learner.split(",")) == set(options("learner")) - {"dac"}
    assert params.seed == "0,1,2,3,4"
    assert cfg.hydra.sweep.dir.startswith("multirun/benchmark/Hopper-v5/")
    budget = cfg.budget
    assert (budget.demo_episodes, budget.eval_episodes, cfg.video.enabled) == (10, 20, False)
    assert cfg.hydra.runtime.choices.expert == "ppo" and cfg.tuned.name == "hopper_ppo"


def test_benchmark_preset_expert_yields_to_the_command_line():
    cfg = compose_config(["+experiment=benchmark", "env=pendulum", "expert=sb3_ppo"])
    assert cfg.hydra.runtime.choices.expert == "sb3_ppo"
    assert cfg.tuned.name == "pendulum_sb3_ppo"  # the tuned values follow the chosen expert
