"""Reading TensorBoard events back: every point, beyond TensorBoard's default 10,000 per tag."""

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from il_lab.analysis.comparison import learning_curves
from il_lab.analysis.events import read_scalars
from il_lab.analysis.jobs import Job
from il_lab.analysis.report_check import _metric

N_POINTS = 12_345


def test_checks_and_curves_read_every_point_of_a_long_run(tmp_path):
    writer = SummaryWriter(str(tmp_path / "tb" / "learner"))
    for step in range(N_POINTS):
        writer.add_scalar("rollout/ep_rew_mean", step + 0.5, step * 10)
    writer.add_scalar("train/beta", 0.25, 0)
    writer.close()

    # TensorBoard's default keeps a 10,000-point reservoir sample: what we must not read.
    sampled = EventAccumulator(str(tmp_path / "tb" / "learner"))
    sampled.Reload()
    assert len(sampled.Scalars("rollout/ep_rew_mean")) == 10_000

    scalars = read_scalars(tmp_path / "tb" / "learner")
    steps, values = scalars["rollout/ep_rew_mean"]
    np.testing.assert_array_equal(steps, np.arange(N_POINTS) * 10)
    np.testing.assert_array_equal(values, np.arange(N_POINTS) + 0.5)
    assert set(scalars) == {"rollout/ep_rew_mean", "train/beta"}

    curve_steps, curve_values = learning_curves(Job(tmp_path, {}, {}))
    assert len(curve_steps) == len(curve_values) == N_POINTS
    assert _metric(tmp_path, "tb/learner/rollout/ep_rew_mean@first") == 0.5
    assert _metric(tmp_path, "tb/learner/rollout/ep_rew_mean@last") == N_POINTS - 0.5
    assert read_scalars(tmp_path / "no_such_folder") == {}
