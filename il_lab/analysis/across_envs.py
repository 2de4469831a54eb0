"""Summarize learners across envs: per learner, one IQM over every (env, seed) it ran.

Scores are aggregated with rliable (Agarwal et al. 2021): the interquartile mean of the
normalized score over the ``(n_seeds, n_envs)`` matrix with a 95% stratified-bootstrap
confidence interval (seeds resampled within each env). The written summary ends with the
imitation library's published scores (:mod:`il_lab.analysis.published`) in a table of their own.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from il_lab.analysis.comparison import interval_plot, iqm_with_ci
from il_lab.analysis.jobs import SCORE_KEY, Job, read_jobs, scored_runs_by_seed
from il_lab.analysis.published import PUBLISHED_SOURCE, published_table
from il_lab.analysis.tables import markdown_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LearnerSummary:
    """One learner over every env it ran on: rliable's IQM over all (env, seed) scores with a
    95% stratified-bootstrap interval (seeds resampled within each env), per-env IQMs, and the
    means over the same runs of its cost."""

    learner: str
    envs: tuple[str, ...]
    seeds_per_env: int
    iqm: float
    ci_low: float
    ci_high: float
    per_env: dict[str, tuple[float, float, float]]
    env_steps: float
    expert_queries: float
    learner_s: float  # timing/learner_s: the learner's training alone
    total_s: float  # timing/total_s: the whole job, with whatever expert or demos it built


def score_matrix(jobs: list[Job]) -> tuple[np.ndarray, tuple[str, ...], list[Job]]:
    """``(scores (n_seeds, n_envs), envs, jobs used)`` for one learner's jobs.

    Left out, each with a warning naming its folder: a run without a finite normalized score
    (``null`` in metrics.json: expert and random returns equal); a second run of the same
    (env, seed) (the one read last is kept: pass older sweeps first); and, because rliable's
    stratified bootstrap needs as many runs in every env, the seeds above the smallest count
    ``n`` of any env (each env keeps its lowest ``n`` seeds).
    """
    by_env = scored_runs_by_seed(
        jobs,
        key=lambda job: job.metrics["env"],
        describe=lambda job: f"{job.metrics['learner']} on {job.metrics['env']}",
    )
    if not by_env:
        raise ValueError("no run with a finite normalized score")
    envs = tuple(sorted(by_env))
    n = min(len(v) for v in by_env.values())
    used = []
    for env in envs:
        ordered = [by_env[env][seed] for seed in sorted(by_env[env])]
        for dropped in ordered[n:]:
            log.warning(
                "%s on %s: %d seeds here, %d in another env; left out: %s",
                dropped.metrics["learner"],
                env,
                len(ordered),
                n,
                dropped.folder,
            )
        used.extend(ordered[:n])
    scores = np.array(
        [[j.metrics[SCORE_KEY] for j in used if j.metrics["env"] == env] for env in envs],
        dtype=float,
    ).T  # (n_seeds, n_envs)
    return scores, envs, used


def summarize_across_envs(jobs: list[Job], reps: int = 2000, seed: int = 0) -> list[LearnerSummary]:
    """Per learner (``metrics["learner"]``), every env's and every seed's normalized score.

    A learner with no finished run on an env that others ran on is summarized over the envs it
    has (the table's ``envs`` column says how many), with a warning.
    """
    by_learner: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_learner[job.metrics["learner"]].append(job)
    all_envs = {job.metrics["env"] for job in jobs}
    summaries = []
    for learner in sorted(by_learner):
        try:
            scores, envs, used = score_matrix(by_learner[learner])
        except ValueError as error:  # every run of it without a score: the others still count
            log.warning("%s left out: %s", learner, error)
            continue
        if missing := sorted(all_envs - set(envs)):
            log.warning(
                "%s has no finished run on %s: its IQM is over %d of %d envs",
                learner,
                ", ".join(missing),
                len(envs),
                len(all_envs),
            )
        iqm, low, high = iqm_with_ci(scores, reps, seed)

        def mean(key: str, used: list[Job] = used) -> float:
            return float(np.mean([j.metrics[key] for j in used]))

        summaries.append(
            LearnerSummary(
                learner=learner,
                envs=envs,
                seeds_per_env=scores.shape[0],
                iqm=iqm,
                ci_low=low,
                ci_high=high,
                per_env={env: iqm_with_ci(scores[:, i], reps, seed) for i, env in enumerate(envs)},
                env_steps=mean("learner/env_steps"),
                expert_queries=mean("learner/expert_queries"),
                learner_s=mean("timing/learner_s"),
                total_s=mean("timing/total_s"),
            )
        )
    return summaries


ACROSS_ENVS_HEADER = [
    "learner",
    "envs",
    "seeds per env",
    "normalized score IQM [95% CI]",
    "env steps",
    "expert labels",
    "learner s",
    "total s",
]


def _iqm_cell(iqm: float, low: float, high: float) -> str:
    return f"{iqm:.3f} [{low:.3f}, {high:.3f}]"


def across_envs_tables(summaries: list[LearnerSummary]) -> str:
    """The cross-env table, then the learner x env table of IQMs ("-": not run)."""
    overall = [
        [
            s.learner,
            str(len(s.envs)),
            str(s.seeds_per_env),
            _iqm_cell(s.iqm, s.ci_low, s.ci_high),
            f"{s.env_steps:.0f}",
            f"{s.expert_queries:.0f}",
            f"{s.learner_s:.1f}",
            f"{s.total_s:.1f}",
        ]
        for s in summaries
    ]
    envs = sorted({env for s in summaries for env in s.envs})
    per_env = [
        [s.learner, *(_iqm_cell(*s.per_env[e]) if e in s.per_env else "-" for e in envs)]
        for s in summaries
    ]
    return (
        markdown_table(ACROSS_ENVS_HEADER, overall)
        + "\n\n"
        + markdown_table(["learner", *envs], per_env)
    )


def across_envs_paths(out: Path) -> tuple[Path, Path]:
    """``(markdown, plot)``: ``out`` itself and a ``.png`` of the same stem when it names a
    ``.md`` file, else ``across_envs.md`` and ``across_envs.png`` in the folder ``out``."""
    markdown = out if out.suffix == ".md" else out / "across_envs.md"
    return markdown, markdown.with_suffix(".png")


def compare_across_envs(
    sweep_dirs: list[Path], out: Path, reps: int = 2000
) -> tuple[str, list[LearnerSummary]]:
    """Read several sweeps (one per env; sweep folders or
    :func:`~il_lab.analysis.jobs.save_runs` files), summarize per
    learner across envs, and write the tables (ours, then the imitation library's published
    ones) and the interval plot to :func:`across_envs_paths` of ``out``."""
    jobs = read_jobs(sweep_dirs)
    if not jobs:
        raise SystemExit(f"no finished runs under {', '.join(map(str, sweep_dirs))}")
    summaries = summarize_across_envs(jobs, reps)
    tables = across_envs_tables(summaries)
    markdown, png = across_envs_paths(out)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    interval_plot(
        [f"{s.learner} ({len(s.envs)} envs x {s.seeds_per_env} seeds)" for s in summaries],
        [(s.iqm, s.ci_low, s.ci_high) for s in summaries],
        png,
    )
    experts: dict[str, set[str]] = defaultdict(set)
    for job in jobs:
        experts[job.metrics["env"]].add(str(job.metrics["expert"]))
    experts_line = "; ".join(f"{e}: {', '.join(sorted(x))}" for e, x in sorted(experts.items()))
    libraries: dict[str, set[str]] = defaultdict(set)
    for job in jobs:  # runs from before metrics.json recorded them say so
        libraries[job.metrics["env"]].add(job.metrics.get("libraries") or "not recorded")
    libraries_lines = [f"- {e}: {'; '.join(sorted(x))}" for e, x in sorted(libraries.items())]
    text = "\n".join(
        [
            "# Across envs (ours)",
            "",
            "Sweeps:",
            *(f"- `{d}`" for d in sweep_dirs),
            "",
            f"Experts: {experts_line}",
            "",
            "Libraries:",
            *libraries_lines,
            "",
            "Per learner: the interquartile mean of the normalized score over every (env, seed) "
            "with rliable's 95% stratified-bootstrap interval (seeds resampled within each env); "
            "env steps, expert labels and seconds are means over the same runs. Then the IQM "
            "[95% CI] of each env over its seeds.",
            "",
            tables,
            "",
            f"![normalized score IQM per learner]({png.name})",
            "",
            "## Published by the imitation library (theirs, not ours)",
            "",
            f"Normalized scores from the {PUBLISHED_SOURCE}. Other envs (seals' fixed-horizon "
            "variants), experts, demonstrations and budgets than ours: a scale to read ours "
            "against, not a run-for-run comparison.",
            "",
            published_table(),
            "",
        ]
    )
    markdown.write_text(text)
    return tables, summaries
