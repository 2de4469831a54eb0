"""Normalized score against the number of demonstration transitions (``+experiment=demo_scaling``).

A point is every finished run that shares env, learner, ``demos/subsample`` and
``demos/n_episodes`` (read from ``metrics.json``, what the run used): the interquartile mean of
their normalized scores with a 95% bootstrap interval (:func:`~il_lab.analysis.comparison.
iqm_with_ci`, seeds resampled), the number of seeds, and the mean of ``demos/n_transitions``.

What a point is and is not:

- The transitions are those the learner saw, after subsampling: 10 episodes subsampled every 20
  steps count a twentieth of 10 whole ones. At equal transitions, the subsampled line has seen
  more episodes (more varied states, fewer consecutive ones); that is the comparison it permits.
- The transitions are a mean over the point's seeds: each seed draws its own demonstrations, and
  episodes that end early (Hopper falling) make them shorter.
- The IQM is over at most 5 seeds (the sweep's), the interval a bootstrap over those few scores:
  with 5 values it is coarse, and it understates the spread a new seed could show. The table
  gives each point's seed count.
- The score is the deterministic evaluation at the end of training; how fast each learner got
  there, and what it cost, is not shown.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from il_lab.analysis.comparison import iqm_with_ci
from il_lab.analysis.jobs import SCORE_KEY, Job, scored_runs_by_seed
from il_lab.analysis.tables import markdown_table

log = logging.getLogger(__name__)

TRANSITIONS_KEY = "demos/n_transitions"
EPISODES_KEY = "demos/n_episodes"
SUBSAMPLE_KEY = "demos/subsample"


@dataclass(frozen=True)
class ScalingPoint:
    """One (env, learner, subsample, episodes) group of runs: its score and data size."""

    env_id: str
    learner: str
    subsample: int
    episodes: int
    seeds: int
    transitions: float  # mean over the seeds of what the learner saw, after subsampling
    iqm: float
    ci_low: float
    ci_high: float


def _point_key(job: Job) -> tuple[str, str, int, int]:
    """(env, learner, subsample, episodes) of a run, as its ``metrics.json`` records them."""
    m = job.metrics
    return m["env"], m["learner"], int(m[SUBSAMPLE_KEY]), int(m[EPISODES_KEY])


def _describe_point(job: Job) -> str:
    env_id, learner, subsample, episodes = _point_key(job)
    return f"{learner} on {env_id}, subsample {subsample}, {episodes} episodes"


def scaling_points(jobs: list[Job], reps: int = 2000, seed: int = 0) -> list[ScalingPoint]:
    """One point per (env, learner, subsample, episodes), sorted by them, numbers as numbers (2
    episodes before 10); ``reps`` and ``seed`` are the bootstrap's resamples and NumPy seed.

    Left out, each with a warning naming its folder: a run without a finite normalized score
    (``null`` in metrics.json: expert and random returns equal), and a second run of the same
    group and seed (the one read last is kept: pass older sweeps first).
    """
    groups = scored_runs_by_seed(jobs, key=_point_key, describe=_describe_point)
    points = []
    for (env_id, learner, subsample, episodes), by_seed in sorted(groups.items()):
        group = list(by_seed.values())
        scores = np.array([j.metrics[SCORE_KEY] for j in group], dtype=float)
        iqm, low, high = iqm_with_ci(scores, reps, seed)
        points.append(
            ScalingPoint(
                env_id=env_id,
                learner=learner,
                subsample=subsample,
                episodes=episodes,
                seeds=len(group),
                transitions=float(np.mean([j.metrics[TRANSITIONS_KEY] for j in group])),
                iqm=iqm,
                ci_low=low,
                ci_high=high,
            )
        )
    return points


SCALING_HEADER = [
    "learner",
    "subsample",
    "episodes",
    "transitions",
    "seeds",
    "normalized score IQM [95% CI]",
]


def scaling_tables(points: list[ScalingPoint]) -> dict[str, str]:
    """Env id -> its Markdown table, one row per point in :func:`scaling_points` order."""
    rows: dict[str, list[list[str]]] = defaultdict(list)
    for p in points:
        rows[p.env_id].append(
            [
                p.learner,
                str(p.subsample),
                str(p.episodes),
                f"{p.transitions:,.0f}",
                str(p.seeds),
                f"{p.iqm:.3f} [{p.ci_low:.3f}, {p.ci_high:.3f}]",
            ]
        )
    align = ["default", "right", "right", "right", "right", "default"]
    return {env_id: markdown_table(SCALING_HEADER, r, align) for env_id, r in rows.items()}


LINESTYLES = ["-", "--", ":", "-."]
STATISTICS = ("iqm", "ci_low", "ci_high")


def plot_scaling(points: list[ScalingPoint], path: Path) -> None:
    """One panel per env: normalized score IQM against demonstration transitions, as a PNG.

    x: the mean transitions the learner saw (log scale); y: the IQM over the point's seeds with
    its 95% interval as error bars and a shaded band. A colour per learner, a line style per
    subsample (solid for the smallest, dashed for the next); grey dotted lines at 1 (the expert)
    and 0 (random). The module docstring says what a point leaves out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({p.env_id for p in points})
    learners = sorted({p.learner for p in points})
    subsamples = sorted({p.subsample for p in points})
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4.2), squeeze=False)
    for ax, env_id in zip(axes[0], envs, strict=True):
        lines: dict[tuple[str, int], list[ScalingPoint]] = defaultdict(list)
        for p in points:
            if p.env_id == env_id:
                lines[p.learner, p.subsample].append(p)
        for (learner, subsample), line in sorted(lines.items()):
            line.sort(key=lambda p: p.transitions)
            x = np.array([p.transitions for p in line])
            iqm, low, high = (np.array([getattr(p, k) for p in line]) for k in STATISTICS)
            color = f"C{learners.index(learner) % 10}"
            # error bars as well as the band: a line of one point has no band to see
            ax.errorbar(
                x,
                iqm,
                yerr=[iqm - low, high - iqm],
                color=color,
                linestyle=LINESTYLES[subsamples.index(subsample) % len(LINESTYLES)],
                marker="o",
                capsize=3,
                label=f"{learner}, subsample {subsample}",
            )
            ax.fill_between(x, low, high, color=color, alpha=0.12, linewidth=0)
        for level, name in ((1.0, "expert"), (0.0, "random")):
            ax.axhline(level, color="grey", linestyle=":", linewidth=0.8)
            ax.text(
                1.0,
                level,
                f" {name}",
                transform=ax.get_yaxis_transform(),
                va="center",
                fontsize=8,
                color="grey",
            )
        ax.set_xscale("log")
        ax.set_xlabel("demonstration transitions the learner saw (mean over seeds)")
        ax.set_ylabel("normalized score (IQM, 95% CI)")
        ax.set_title(env_id)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
