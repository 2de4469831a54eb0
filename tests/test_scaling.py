"""Normalized score against demonstration transitions (``il_lab.analysis.scaling``), from
hand-written jobs: the pipeline itself is covered elsewhere; here only the grouping, the
statistics, the tables and the plot."""

import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ROOT

from il_lab.analysis.jobs import Job, save_runs
from il_lab.analysis.scaling import scaling_points, scaling_tables

# (env, learner, subsample, episodes) -> each seed's (normalized score, transitions kept)
RUNS = {
    ("Hopper-v5", "mlp_bc", 1, 2): [(0.5, 2000), (0.5, 2000), (0.5, 1900), (0.5, 1900)],
    ("Hopper-v5", "mlp_bc", 1, 10): [(0.0, 10000), (0.2, 9000), (0.4, 9500), (1.0, 9700)],
    ("Hopper-v5", "mlp_bc", 20, 2): [(0.1, 100), (0.2, 100), (0.3, 97)],
    ("Hopper-v5", "transformer_bc", 1, 2): [(0.05, 2000), (0.15, 1980)],
    ("Pendulum-v1", "mlp_bc", 1, 1): [(0.9, 200)],
}


def a_job(env_id, learner, subsample, episodes, seed, score, transitions):
    folder = Path(f"multirun/demo_scaling/{env_id}/{learner}_{subsample}_{episodes}_{seed}")
    overrides = {
        "learner": learner,
        "budget.demo_episodes": str(episodes),
        "demos.subsample": str(subsample),
        "seed": str(seed),
    }
    metrics = {
        "env": env_id,
        "learner": learner,
        "seed": seed,
        "demos/n_episodes": episodes,
        "demos/n_transitions": transitions,
        "demos/subsample": subsample,
        "learner/eval/normalized_score": score,
    }
    return Job(folder, overrides, metrics)


def the_jobs():
    """``RUNS``, episodes 10 before 2 (as a sweep folder's job numbers may list them), and one
    more seed of the (mlp_bc, 1, 2) group whose expert was no better than random."""
    jobs = [
        a_job(*key, seed, score, transitions)
        for key, runs in sorted(RUNS.items(), key=lambda item: -item[0][3])
        for seed, (score, transitions) in enumerate(runs)
    ]
    jobs.append(a_job("Hopper-v5", "mlp_bc", 1, 2, 4, None, 2000))
    return jobs


def test_points_group_by_env_learner_subsample_and_episodes(caplog):
    with caplog.at_level(logging.WARNING):
        points = scaling_points(the_jobs(), reps=300)
    assert "mlp_bc_1_2_4" in caplog.text  # the run without a score, named and left out
    assert [(p.env_id, p.learner, p.subsample, p.episodes) for p in points] == [
        ("Hopper-v5", "mlp_bc", 1, 2),
        ("Hopper-v5", "mlp_bc", 1, 10),
        ("Hopper-v5", "mlp_bc", 20, 2),
        ("Hopper-v5", "transformer_bc", 1, 2),
        ("Pendulum-v1", "mlp_bc", 1, 1),
    ]
    assert [p.seeds for p in points] == [4, 4, 3, 2, 1]
    assert [p.transitions for p in points] == pytest.approx([1950, 9550, 99, 1990, 200])
    equal, spread = points[0], points[1]
    assert (equal.iqm, equal.ci_low, equal.ci_high) == (0.5, 0.5, 0.5)  # nothing to resample
    assert spread.iqm == pytest.approx(0.3)  # of 0.0, 0.2, 0.4, 1.0: the mean of the middle two
    assert spread.ci_low < spread.iqm < spread.ci_high


def test_a_second_run_of_a_seed_is_left_out_with_a_warning(caplog):
    first = a_job("Hopper-v5", "mlp_bc", 1, 2, 0, 0.5, 2000)
    again = replace(
        a_job("Hopper-v5", "mlp_bc", 1, 2, 0, 0.9, 1000), folder=Path("multirun/later/job_0")
    )
    with caplog.at_level(logging.WARNING):
        (point,) = scaling_points([first, again], reps=100)
    assert "later" in caplog.text and point.seeds == 1
    assert point.iqm == 0.9 and point.transitions == 1000  # the one read last is kept


def test_one_table_per_env_with_rows_in_numeric_order():
    tables = scaling_tables(scaling_points(the_jobs(), reps=300))
    assert list(tables) == ["Hopper-v5", "Pendulum-v1"]
    rows = tables["Hopper-v5"].splitlines()
    assert rows[0] == (
        "| learner | subsample | episodes | transitions | seeds | normalized score IQM [95% CI] |"
    )
    assert [row.rsplit(" | ", 1)[0] for row in rows[2:]] == [
        "| mlp_bc | 1 | 2 | 1,950 | 4",
        "| mlp_bc | 1 | 10 | 9,550 | 4",
        "| mlp_bc | 20 | 2 | 99 | 3",
        "| transformer_bc | 1 | 2 | 1,990 | 2",
    ]
    assert rows[2].endswith("| 0.500 [0.500, 0.500] |")
    assert tables["Pendulum-v1"].splitlines()[2] == (
        "| mlp_bc | 1 | 1 | 200 | 1 | 0.900 [0.900, 0.900] |"
    )


def test_the_script_prints_the_tables_and_writes_the_plot(tmp_path):
    runs = tmp_path / "demo_scaling_Hopper-v5.jsonl"
    save_runs(the_jobs(), runs)
    plot = tmp_path / "scaling.png"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "scaling.py"),
            str(runs),
            "--plot",
            str(plot),
            "--reps",
            "100",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "## Hopper-v5" in result.stdout and "## Pendulum-v1" in result.stdout
    assert "| mlp_bc | 20 | 2 | 99 | 3 |" in result.stdout
    assert "mlp_bc_1_2_4" in result.stderr  # the warning about the run without a score
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and plot.stat().st_size > 10_000
