"""Learning curves of online learners, against env steps and against the wall clock.

What off-policy and on-policy imitation are compared on (DAC against GAIL): how many env steps
and how many seconds each needs to reach a normalized score. A curve is read from a finished
run's TensorBoard events: ``rollout/ep_rew_mean``, the env's own return of the learner's last
100 training episodes (the generator's stochastic policy, never trained on), normalized with the
run's random and expert returns from ``metrics.json``. Seconds count from the learner's first
logged point, so expert, demonstrations and evaluation are left out, and include everything the
learner does between points (its updates, the discriminator's, checkpoints).

The training return lags the deterministic policy the pipeline evaluates at the end (a mean over
100 past episodes of a noisy policy), so a step count to a threshold read here is an upper bound.
Curves are saved as JSON lines beside a results table (``save_curves``), as runs files are.
"""

import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from il_lab.analysis.events import read_timed_scalar
from il_lab.analysis.jobs import SCORE_KEY, Job
from il_lab.analysis.tables import markdown_table
from il_lab.evaluation import normalized_score

CURVE_TAG = "rollout/ep_rew_mean"


@dataclass(frozen=True)
class Curve:
    """One run's normalized training return against env steps and seconds."""

    env_id: str
    learner: str
    seed: int
    env_steps: list[int]
    seconds: list[float]
    scores: list[float]
    final_score: float | None  # the pipeline's deterministic evaluation at the end

    def first_reach(self, threshold: float) -> tuple[int | None, float | None]:
        """Env steps and seconds at the first point at or above ``threshold``, else Nones."""
        for steps, seconds, score in zip(self.env_steps, self.seconds, self.scores, strict=True):
            if score >= threshold:
                return steps, seconds
        return None, None


def read_curve(job: Job) -> Curve | None:
    """``job``'s curve, or None when its events hold no ``CURVE_TAG`` (an offline learner)."""
    steps, wall_times, returns = read_timed_scalar(job.folder / "tb" / "learner", CURVE_TAG)
    if len(steps) == 0:
        return None
    metrics = job.metrics
    random, expert = metrics["random/eval/return_mean"], metrics["expert/eval/return_mean"]
    return Curve(
        env_id=metrics["env"],
        learner=metrics["learner"],
        seed=int(metrics["seed"]),
        env_steps=steps.tolist(),
        seconds=(wall_times - wall_times[0]).round(2).tolist(),
        scores=[round(normalized_score(r, random, expert), 4) for r in returns],
        final_score=metrics[SCORE_KEY],
    )


def save_curves(curves: list[Curve], path: Path) -> None:
    """Curves as JSON lines, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(json.dumps(asdict(c)) + "\n" for c in curves))
    partial.replace(path)


def read_curves(path: Path) -> list[Curve]:
    return [Curve(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


def reach_table(curves: list[Curve], threshold: float) -> str:
    """Per env and learner: runs, median final score, how many runs reached ``threshold`` and
    the median env steps and seconds they took, and env steps per second overall."""
    groups: dict[tuple[str, str], list[Curve]] = defaultdict(list)
    for curve in curves:
        groups[curve.env_id, curve.learner].append(curve)
    rows = []
    for (env_id, learner), group in sorted(groups.items()):
        reached = [c.first_reach(threshold) for c in group]
        reached = [r for r in reached if r[0] is not None]
        finals = [c.final_score for c in group if c.final_score is not None]
        rate = sum(c.env_steps[-1] for c in group) / max(sum(c.seconds[-1] for c in group), 1e-9)
        rows.append(
            [
                env_id,
                learner,
                str(len(group)),
                f"{_median(finals):.3f}",
                f"{len(reached)}/{len(group)}",
                f"{_median([r[0] for r in reached]):,.0f}" if reached else "-",
                f"{_median([r[1] for r in reached]):,.0f}" if reached else "-",
                f"{rate:,.0f}",
            ]
        )
    header = [
        "env",
        "learner",
        "runs",
        "final score (median)",
        f"reached {threshold}",
        "env steps to it (median)",
        "seconds to it (median)",
        "env steps/s",
    ]
    return markdown_table(header, rows)


def plot_curves(curves: list[Curve], path: Path) -> None:
    """One row per env: normalized training return against env steps, and against seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({c.env_id for c in curves})
    learners = sorted({c.learner for c in curves})
    fig, axes = plt.subplots(len(envs), 2, figsize=(11, 3.6 * len(envs)), squeeze=False)
    for row, env_id in zip(axes, envs, strict=True):
        for curve in (c for c in curves if c.env_id == env_id):
            color = f"C{learners.index(curve.learner) % 10}"
            label = (
                curve.learner
                if curve.seed
                == min(c.seed for c in curves if (c.env_id, c.learner) == (env_id, curve.learner))
                else None
            )
            row[0].plot(curve.env_steps, curve.scores, color=color, alpha=0.7, label=label)
            row[1].plot(curve.seconds, curve.scores, color=color, alpha=0.7)
        for ax, xlabel in zip(row, ("env steps", "seconds of learner training"), strict=True):
            ax.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"normalized return ({CURVE_TAG})")
            ax.set_title(env_id)
        row[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
