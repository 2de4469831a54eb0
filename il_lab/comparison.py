"""Compare the runs of a sweep: a table per group of swept settings, intervals, plots.

A group is every run that shares all swept settings but the seed. Scores are aggregated with
rliable (Agarwal et al. 2021): the interquartile mean of the normalized score with a 95%
stratified-bootstrap confidence interval.
"""

import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from il_lab.events import read_scalars

log = logging.getLogger(__name__)

SEED_KEY = "seed"


@dataclass
class Job:
    folder: Path
    overrides: dict[str, str]
    metrics: dict


@dataclass
class Group:
    settings: tuple[tuple[str, str], ...]
    jobs: list[Job] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings) or "all runs"

    def values(self, key: str) -> np.ndarray:
        return np.array([j.metrics[key] for j in self.jobs], dtype=float)


def read_sweep(sweep_dir: Path) -> tuple[list[Job], list[Path]]:
    """Finished jobs (with ``metrics.json``) and the folders of unfinished or failed ones."""
    finished, unfinished = [], []
    for overrides_file in sorted(sweep_dir.glob("**/.hydra/overrides.yaml")):
        folder = overrides_file.parent.parent
        metrics_file = folder / "metrics.json"
        if not metrics_file.is_file():
            unfinished.append(folder)
            continue
        overrides = {}
        for item in yaml.safe_load(overrides_file.read_text()) or []:
            key, _, value = item.partition("=")
            overrides[key.lstrip("+~")] = value
        finished.append(Job(folder, overrides, json.loads(metrics_file.read_text())))
    return finished, unfinished


def swept_keys(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs."""
    keys = sorted({k for j in jobs for k in j.overrides})
    return [k for k in keys if len({j.overrides.get(k) for j in jobs}) > 1]


def group_jobs(jobs: list[Job], exclude: tuple[str, ...] = (SEED_KEY,)) -> list[Group]:
    keys = [k for k in swept_keys(jobs) if k not in exclude]
    groups: dict[tuple, Group] = {}
    for job in jobs:
        settings = tuple((k, job.overrides.get(k, "(default)")) for k in keys)
        groups.setdefault(settings, Group(settings)).jobs.append(job)
    return sorted(groups.values(), key=lambda g: [_sortable(v) for _, v in g.settings])


def _sortable(value: str) -> tuple[int, float | str]:
    """Numbers in numeric order, before strings; so 25 < 100 and not "100" < "25"."""
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def iqm_with_ci(scores: np.ndarray, reps: int, seed: int = 0) -> tuple[float, float, float]:
    """Interquartile mean and 95% stratified-bootstrap interval of one group's scores."""
    from rliable import library as rly
    from rliable import metrics

    scores = scores[~np.isnan(scores)]
    if len(scores) == 0:
        return math.nan, math.nan, math.nan
    np.random.seed(seed)  # rliable draws from NumPy's global generator
    point, interval = rly.get_interval_estimates(
        {"g": scores.reshape(-1, 1)},
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
        iqm, low, high = iqm_with_ci(group.values("learner/eval/normalized_score"), reps)
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


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| group | runs | return mean | return std | normalized score IQM [95% CI] "
        "| env steps | expert queries | wall-clock s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.group.label} | {r.runs} | {r.return_mean:.1f} | {r.return_std:.1f} "
            f"| {r.iqm:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] | {r.env_steps:.0f} "
            f"| {r.expert_queries:.0f} | {r.wall_clock_s:.1f} |"
        )
    return "\n".join(lines)


def learning_curves(job: Job, tag: str = "rollout/ep_rew_mean") -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of a learner tag from the job's TensorBoard events (may be empty).

    Every logged point: a folder without events (a sweep copied without them) reads as empty.
    """
    return read_scalars(job.folder / "tb" / "learner").get(tag, (np.zeros(0), np.zeros(0)))


def plot(rows: list[Row], out_dir: Path) -> list[Path]:
    """PNG plots into ``out_dir``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    # normalized score per group with its interval
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(rows)))
    y = np.arange(len(rows))
    iqm = np.array([r.iqm for r in rows])
    err = np.array([[r.iqm - r.ci_low for r in rows], [r.ci_high - r.iqm for r in rows]])
    ax.errorbar(iqm, y, xerr=np.nan_to_num(err), fmt="o", capsize=4)
    ax.set_yticks(y, [r.group.label for r in rows])
    ax.set_xlabel("normalized score (IQM, 95% CI)")
    fig.tight_layout()
    written.append(out_dir / "scores.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

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
    jobs, unfinished = read_sweep(sweep_dir)
    for folder in unfinished:
        log.warning("no metrics.json (unfinished or failed), left out: %s", folder)
    if not jobs:
        raise SystemExit(f"no finished runs under {sweep_dir}")
    rows = summarize(group_jobs(jobs), reps)
    table = markdown_table(rows)
    plots = plot(rows, sweep_dir)
    text = f"# {sweep_dir.name}\n\n{table}\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in plots)
    (sweep_dir / "comparison.md").write_text(text + "\n")
    return table, rows
