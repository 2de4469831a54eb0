"""Compare the runs of one sweep: a table per group of swept settings, intervals, plots.

A group is every run that shares all swept settings but the seed (:mod:`il_lab.analysis.jobs`).
Scores are aggregated with rliable (Agarwal et al. 2021): the interquartile mean of the
normalized score with a 95% stratified-bootstrap confidence interval.
"""

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from il_lab.analysis.events import read_scalars
from il_lab.analysis.jobs import SCORE_KEY, Group, Job, group_jobs, read_jobs
from il_lab.analysis.tables import markdown_table


def iqm_with_ci(scores: np.ndarray, reps: int, seed: int = 0) -> tuple[float, float, float]:
    """Interquartile mean and 95% stratified-bootstrap interval of one group's scores.

    ``scores``: ``(n_runs,)``, one task (NaNs left out), or ``(n_runs, n_tasks)``, every task
    with as many runs: rliable's IQM over all of them, runs resampled within each task.
    """
    from rliable import library as rly
    from rliable import metrics

    if scores.ndim == 1:
        scores = scores[~np.isnan(scores)].reshape(-1, 1)
    if scores.size == 0:
        return math.nan, math.nan, math.nan
    np.random.seed(seed)  # rliable draws from NumPy's global generator
    point, interval = rly.get_interval_estimates(
        {"g": scores},
        lambda x: np.array([metrics.aggregate_iqm(x)]),
        reps=reps,
    )
    return float(point["g"][0]), float(interval["g"][0, 0]), float(interval["g"][1, 0])


@dataclass(frozen=True)
class Row:
    group: Group
    runs: int
    return_mean: float
    return_std: float
    iqm: float
    ci_low: float
    ci_high: float
    env_steps: float
    expert_queries: float
    wall_clock_s: float


def summarize(groups: list[Group], reps: int = 2000) -> list[Row]:
    rows = []
    for group in groups:
        returns = group.values("learner/eval/return_mean")
        iqm, low, high = iqm_with_ci(group.values(SCORE_KEY), reps)
        rows.append(
            Row(
                group=group,
                runs=len(group.jobs),
                return_mean=float(returns.mean()),
                return_std=float(returns.std()),
                iqm=iqm,
                ci_low=low,
                ci_high=high,
                env_steps=float(group.values("learner/env_steps").mean()),
                expert_queries=float(group.values("learner/expert_queries").mean()),
                wall_clock_s=float(group.values("timing/total_s").mean()),
            )
        )
    return rows


SWEEP_HEADER = [
    "group",
    "runs",
    "return mean",
    "return std",
    "normalized score IQM [95% CI]",
    "env steps",
    "expert queries",
    "wall-clock s",
]


def sweep_table(rows: list[Row]) -> str:
    """One line per group; a group without a finite score reads ``nan [nan, nan]``."""
    cells = [
        [
            r.group.label,
            str(r.runs),
            f"{r.return_mean:.1f}",
            f"{r.return_std:.1f}",
            f"{r.iqm:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]",
            f"{r.env_steps:.0f}",
            f"{r.expert_queries:.0f}",
            f"{r.wall_clock_s:.1f}",
        ]
        for r in rows
    ]
    return markdown_table(SWEEP_HEADER, cells)


def learning_curves(job: Job, tag: str = "rollout/ep_rew_mean") -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of a learner tag from the job's TensorBoard events (may be empty).

    Every logged point: a folder without events (a sweep copied without them) reads as empty.
    """
    return read_scalars(job.folder / "tb" / "learner").get(tag, (np.zeros(0), np.zeros(0)))


def interval_plot(
    labels: list[str], estimates: list[tuple[float, float, float]], path: Path
) -> None:
    """One row per label: the IQM of the normalized score with its 95% interval, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(labels)))
    y = np.arange(len(labels))
    iqm = np.array([e[0] for e in estimates])
    err = np.array([[e[0] - e[1] for e in estimates], [e[2] - e[0] for e in estimates]])
    for x in (0.0, 1.0):  # random, expert
        ax.axvline(x, color="grey", linestyle="--", linewidth=0.8)
    ax.errorbar(iqm, y, xerr=np.nan_to_num(err), fmt="o", capsize=4)
    ax.set_yticks(y, labels)
    ax.set_xlabel("normalized score (IQM, 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot(rows: list[Row], out_dir: Path) -> list[Path]:
    """PNG plots into ``out_dir``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = [out_dir / "scores.png"]
    # normalized score per group with its interval
    interval_plot(
        [r.group.label for r in rows],
        [(r.iqm, r.ci_low, r.ci_high) for r in rows],
        written[-1],
    )

    # learning curves where learners logged episode returns
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for r in rows:
        curves = [learning_curves(j) for j in r.group.jobs]
        curves = [c for c in curves if len(c[0])]
        for i, (steps, values) in enumerate(curves):
            color = f"C{rows.index(r) % 10}"
            ax.plot(steps, values, color=color, alpha=0.7, label=r.group.label if i == 0 else None)
            drawn = True
    if drawn:
        ax.set_xlabel("learner env steps")
        ax.set_ylabel("episode return (rollout/ep_rew_mean)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(out_dir / "curves.png")
        fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    # return against a swept budget key
    budget_keys = [k for k, _ in rows[0].group.settings if k.startswith("budget.")] if rows else []
    for key in budget_keys:
        series = defaultdict(list)
        for r in rows:
            rest = ", ".join(f"{k}={v}" for k, v in r.group.settings if k != key) or "all"
            series[rest].append((float(dict(r.group.settings)[key]), r.return_mean, r.return_std))
        fig, ax = plt.subplots(figsize=(7, 4))
        for label, points in series.items():
            points.sort()
            x, m, s = (np.array(v) for v in zip(*points, strict=True))
            ax.errorbar(x, m, yerr=s, marker="o", capsize=3, label=label)
        ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel("evaluation return (mean over seeds, std)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(out_dir / f"return_vs_{key.split('.')[-1]}.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    return written


def compare(sweep_dir: Path, reps: int = 2000) -> tuple[str, list[Row]]:
    """Read, group, summarize and plot a sweep; write ``comparison.md`` into it."""
    jobs = read_jobs([sweep_dir])
    if not jobs:
        raise SystemExit(f"no finished runs under {sweep_dir}")
    rows = summarize(group_jobs(jobs), reps)
    table = sweep_table(rows)
    plots = plot(rows, sweep_dir)
    text = f"# {sweep_dir.name}\n\n{table}\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in plots)
    (sweep_dir / "comparison.md").write_text(text + "\n")
    return table, rows
