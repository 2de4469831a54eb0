"""Compare the runs of a sweep.

    python experiments/compare.py <sweep folder> [--reps 2000]

Reads every finished job's metrics.json (warning about unfinished or failed jobs), groups runs by
every swept key except the seed, prints a Markdown table (runs, return mean/std, IQM of the
normalized score with a 95% stratified-bootstrap interval, env steps, expert queries, wall-clock)
and writes it with PNG plots into the sweep folder as comparison.md.
"""

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from il_lab.comparison import compare  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    table, _ = compare(args.sweep_dir, args.reps)
    print(table)
    print(f"\nwritten: {args.sweep_dir / 'comparison.md'} and its plots")


if __name__ == "__main__":
    main()
