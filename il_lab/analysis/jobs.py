"""The finished jobs of sweeps: read from sweep folders or runs files, grouped by swept settings.

A job is one run folder's overrides and ``metrics.json``. A group is every job that shares all
swept settings but the seed. The normalized score (:data:`SCORE_KEY`) is ``null`` in
``metrics.json`` when the expert is no better than random (``normalized_score_note`` says so);
:meth:`Group.values` reads it as NaN.
"""

import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

log = logging.getLogger(__name__)

SEED_KEY = "seed"
SCORE_KEY = "learner/eval/normalized_score"
RUNS_SUFFIX = ".jsonl"


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
        """``(n_jobs,)``: each job's ``metrics[key]``; ``null`` (``None``) reads as NaN."""
        values = [j.metrics[key] for j in self.jobs]
        return np.array([math.nan if v is None else v for v in values], dtype=float)


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


def scored_runs_by_seed(
    jobs: list[Job], key: Callable[[Job], Hashable], describe: Callable[[Job], str]
) -> dict[Hashable, dict[int, Job]]:
    """Jobs grouped by ``key(job)``, one per seed within a group, for scores to aggregate.

    Left out, each with a warning naming its folder: a run without a finite normalized score
    (``null`` in metrics.json: expert and random returns equal), and a second run of the same
    group and seed (the one read last is kept: pass older sweeps first); ``describe(job)`` names
    the group in that warning.
    """
    groups: dict[Hashable, dict[int, Job]] = defaultdict(dict)
    for job in jobs:
        score = job.metrics.get(SCORE_KEY)
        if score is None or not math.isfinite(score):  # metrics.json writes NaN as null
            log.warning("normalized score %s, left out: %s", score, job.folder)
            continue
        by_seed = groups[key(job)]
        seed = int(job.metrics[SEED_KEY])
        if seed in by_seed:
            log.warning(
                "%s, seed %d, twice: %s is kept, %s left out",
                describe(job),
                seed,
                job.folder,
                by_seed[seed].folder,
            )
        by_seed[seed] = job
    return groups


def _sortable(value: str) -> tuple[int, float | str]:
    """Numbers in numeric order, before strings; so 25 < 100 and not "100" < "25"."""
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)
