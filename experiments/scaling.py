"""Normalized score against demonstration transitions (``+experiment=demo_scaling`` sweeps).

    python experiments/scaling.py <sweep folder | runs .jsonl>... [--plot <file>.png]
        [--reps 2000]

Reads every finished run (sweep folders, or runs files ``experiments/compare.py --save-runs``
wrote) and prints, per env, a table with one row per learner, ``demos.subsample`` and number of
demonstration episodes: the mean transitions the learner saw, the seeds, and the IQM of the
normalized score with its 95% bootstrap interval. ``--plot`` draws the same points, one panel per
env (``il_lab/analysis/scaling.py`` says what a point is and what it is not).
"""

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from il_lab.analysis.jobs import read_jobs
from il_lab.analysis.scaling import plot_scaling, scaling_points, scaling_tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sources", nargs="+", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    points = scaling_points(read_jobs(args.sources), args.reps)
    if not points:
        raise SystemExit("no finished run with a normalized score among the sources")
    if args.plot:
        plot_scaling(points, args.plot)
    for env_id, table in scaling_tables(points).items():
        print(f"## {env_id}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
