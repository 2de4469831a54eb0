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

from il_lab.analysis.events import read_scalars

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


RUNS_SUFFIX = ".jsonl"


def save_runs(jobs: list[Job], path: Path) -> None:
    """Write finished jobs as JSON lines (folder, overrides, metrics), atomically.

    Run folders hold checkpoints, event files and videos and are not kept; this file is all an
    across-env summary reads, so a results table can be recomputed after they are gone.
    """
    if path.suffix != RUNS_SUFFIX:
        raise ValueError(f"runs file {path}: the name must end in {RUNS_SUFFIX}")
    lines = [
        json.dumps({"folder": str(j.folder), "overrides": j.overrides, "metrics": j.metrics})
        for j in jobs
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(line + "\n" for line in lines))
    partial.replace(path)


def read_runs(path: Path) -> list[Job]:
    """The jobs :func:`save_runs` wrote."""
    jobs = []
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            jobs.append(Job(Path(record["folder"]), record["overrides"], record["metrics"]))
    return jobs


def read_jobs(sources: list[Path]) -> list[Job]:
    """Finished jobs of sweep folders and of runs files (``.jsonl``, :func:`save_runs`), in the
    order given; each unfinished or failed job of a sweep is a warning naming its folder."""
    jobs = []
    for source in sources:
        if source.suffix == RUNS_SUFFIX:
            jobs.extend(read_runs(source))
            continue
        if not source.is_dir():
            raise SystemExit(f"{source}: neither a sweep folder nor a {RUNS_SUFFIX} runs file")
        finished, unfinished = read_sweep(source)
        for folder in unfinished:
            log.warning("no metrics.json (unfinished or failed), left out: %s", folder)
        jobs.extend(finished)
    return jobs


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
    table = markdown_table(rows)
    plots = plot(rows, sweep_dir)
    text = f"# {sweep_dir.name}\n\n{table}\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in plots)
    (sweep_dir / "comparison.md").write_text(text + "\n")
    return table, rows


# across envs ---------------------------------------------------------------------------------

SCORE_KEY = "learner/eval/normalized_score"

# The imitation library's published numbers, shown beside ours and never mixed with them:
# normalized scores per (algorithm, env); the budgets are theirs too.
PUBLISHED_SOURCE = "imitation v1.0 benchmark, seals MuJoCo, 10 seeds, 50 evaluation episodes"
PUBLISHED_ENVS = ("HalfCheetah", "Hopper")
PUBLISHED_SCORES = {  # algorithm -> (scores on PUBLISHED_ENVS, the budget it was given)
    "BC": ((0.92, 1.00), "all of its expert demonstrations"),
    "DAgger": ((1.02, 1.01), "60,000-100,000 expert labels"),
    "GAIL": ((0.96, 0.94), "10,000,000 env steps"),
}


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
    by_env: dict[str, dict[int, Job]] = defaultdict(dict)
    for job in jobs:
        score = job.metrics[SCORE_KEY]
        if score is None or not math.isfinite(score):  # metrics.json writes NaN as null
            log.warning("normalized score %s, left out: %s", score, job.folder)
            continue
        seeds = by_env[job.metrics["env"]]
        seed = int(job.metrics[SEED_KEY])
        if seed in seeds:
            log.warning(
                "%s on %s, seed %d, twice: %s is kept, %s left out",
                job.metrics["learner"],
                job.metrics["env"],
                seed,
                job.folder,
                seeds[seed].folder,
            )
        seeds[seed] = job
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


def across_envs_tables(summaries: list[LearnerSummary]) -> str:
    """The cross-env table, then the learner x env table of IQMs ("-": not run)."""
    lines = [
        "| learner | envs | seeds per env | normalized score IQM [95% CI] | env steps "
        "| expert labels | learner s | total s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.learner} | {len(s.envs)} | {s.seeds_per_env} "
            f"| {s.iqm:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}] | {s.env_steps:.0f} "
            f"| {s.expert_queries:.0f} | {s.learner_s:.1f} | {s.total_s:.1f} |"
        )
    envs = sorted({env for s in summaries for env in s.envs})
    lines += ["", "| learner | " + " | ".join(envs) + " |", "|---" * (len(envs) + 1) + "|"]
    for s in summaries:
        cells = [
            f"{s.per_env[e][0]:.3f} [{s.per_env[e][1]:.3f}, {s.per_env[e][2]:.3f}]"
            if e in s.per_env
            else "-"
            for e in envs
        ]
        lines.append(f"| {s.learner} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def published_table() -> str:
    """The imitation library's published normalized scores, labelled as theirs."""
    lines = [
        "| algorithm (imitation library: theirs) | "
        + " | ".join(PUBLISHED_ENVS)
        + " | their budget |",
        "|---" * (len(PUBLISHED_ENVS) + 2) + "|",
    ]
    for algorithm, (scores, budget) in PUBLISHED_SCORES.items():
        cells = " | ".join(f"{x:.2f}" for x in scores)
        lines.append(f"| {algorithm} | {cells} | {budget} |")
    return "\n".join(lines)


def across_envs_paths(out: Path) -> tuple[Path, Path]:
    """``(markdown, plot)``: ``out`` itself and a ``.png`` of the same stem when it names a
    ``.md`` file, else ``across_envs.md`` and ``across_envs.png`` in the folder ``out``."""
    markdown = out if out.suffix == ".md" else out / "across_envs.md"
    return markdown, markdown.with_suffix(".png")


def compare_across_envs(
    sweep_dirs: list[Path], out: Path, reps: int = 2000
) -> tuple[str, list[LearnerSummary]]:
    """Read several sweeps (one per env; sweep folders or :func:`save_runs` files), summarize per
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
