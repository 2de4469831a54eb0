"""Learning curves against env steps and wall clock (``il_lab.analysis.curves``)."""

import time

from torch.utils.tensorboard import SummaryWriter

from il_lab.analysis.curves import reach_table, read_curve, read_curves, save_curves
from il_lab.analysis.jobs import Job


def a_run(folder, returns, seed=0, learner="dac", pause=0.0):
    writer = SummaryWriter(str(folder / "tb" / "learner"))
    for i, value in enumerate(returns):
        writer.add_scalar("rollout/ep_rew_mean", value, (i + 1) * 1000)
        time.sleep(pause)
    writer.close()
    metrics = {
        "env": "Hopper-v5",
        "learner": learner,
        "seed": seed,
        "random/eval/return_mean": 0.0,
        "expert/eval/return_mean": 200.0,
        "learner/eval/normalized_score": 0.97,
    }
    return Job(folder, {}, metrics)


def test_a_curve_is_the_normalized_training_return_with_its_seconds(tmp_path):
    curve = read_curve(a_run(tmp_path, [20.0, 100.0, 190.0, 170.0], pause=0.05))
    assert curve.env_steps == [1000, 2000, 3000, 4000]
    assert curve.scores == [0.1, 0.5, 0.95, 0.85]
    assert curve.seconds[0] == 0 and curve.seconds == sorted(curve.seconds)
    assert curve.seconds[-1] >= 0.1
    steps, seconds = curve.first_reach(0.9)
    assert steps == 3000 and seconds == curve.seconds[2]
    assert curve.first_reach(0.99) == (None, None)
    assert read_curve(Job(tmp_path / "offline", {}, {})) is None  # no events: an offline learner


def test_curves_round_trip_and_the_table_counts_runs_that_reach(tmp_path):
    curves = [
        read_curve(a_run(tmp_path / "a", [100.0, 190.0], seed=0)),
        read_curve(a_run(tmp_path / "b", [100.0, 150.0], seed=1)),
    ]
    save_curves(curves, tmp_path / "curves.jsonl")
    assert read_curves(tmp_path / "curves.jsonl") == curves
    table = reach_table(curves, 0.9)
    assert "| Hopper-v5 | dac | 2 | 0.970 | 1/2 | 2,000 |" in table
