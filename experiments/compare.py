"""Compare the runs of a sweep, or of several sweeps across envs.

    python experiments/compare.py <sweep folder> [--reps 2000]
    python experiments/compare.py --across-envs <sweep folder | runs.jsonl> ... \\
        [--out experiments/results/across_envs.md] [--reps 2000]
    python experiments/compare.py <sweep folder>... --save-runs experiments/results/runs/<env>.jsonl

One sweep: reads every finished job's metrics.json (warning about unfinished or failed jobs),
groups runs by every swept key except the seed, prints a Markdown table (runs, return mean/std,
IQM of the normalized score with a 95% stratified-bootstrap interval, env steps, expert queries,
wall-clock) and writes it with PNG plots into the sweep folder as comparison.md.

Across envs (e.g. one ``+experiment=benchmark`` sweep per env): per learner, the IQM of the
normalized score over every env and seed with rliable's 95% stratified-bootstrap interval (seeds
resampled within each env), its mean env steps, expert labels, learner and total seconds, a
learner x env table of IQMs, and beside them the imitation library's published v1.0 scores.
``--out`` names the Markdown file (the plot is written beside it, same name, ``.png``) or a
folder (``across_envs.md`` and ``across_envs.png`` in it); default: the current folder.

``--save-runs`` writes every finished job of the given sweeps (overrides and metrics.json) as JSON
lines, then does what the other arguments ask. Run folders are not kept; a runs file is small
enough to commit beside a results table, and ``--across-envs`` reads it in place of the sweep.
"""

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from il_lab.analysis.across_envs import across_envs_paths, compare_across_envs  # noqa: E402
from il_lab.analysis.comparison import compare  # noqa: E402
from il_lab.analysis.jobs import read_jobs, save_runs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("sweep_dirs", type=Path, nargs="+")
    parser.add_argument("--across-envs", action="store_true", help="summarize across sweeps")
    parser.add_argument(
        "--out", type=Path, default=Path("."), help="--across-envs: a .md file, or a folder"
    )
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument(
        "--save-runs", type=Path, metavar="FILE.jsonl", help="write the finished jobs read"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    one_sweep = len(args.sweep_dirs) == 1 and args.sweep_dirs[0].is_dir()
    if args.save_runs:
        jobs = read_jobs(args.sweep_dirs)
        if not jobs:
            parser.error(f"no finished runs under {', '.join(map(str, args.sweep_dirs))}")
        try:
            save_runs(jobs, args.save_runs)
        except ValueError as error:
            parser.error(f"--save-runs: {error}")
        print(f"written: {args.save_runs} ({len(jobs)} runs)")
        if not args.across_envs and not one_sweep:
            return  # saved is all that was asked; one sweep folder is also compared
    if args.across_envs:
        tables, _ = compare_across_envs(args.sweep_dirs, args.out, args.reps)
        print(tables)
        print("\nwritten: {} and {}".format(*across_envs_paths(args.out)))
        return
    if not one_sweep:
        parser.error("one sweep folder, or several (and runs files) with --across-envs")
    table, _ = compare(args.sweep_dirs[0], args.reps)
    print(table)
    print(f"\nwritten: {args.sweep_dirs[0] / 'comparison.md'} and its plots")


if __name__ == "__main__":
    main()
