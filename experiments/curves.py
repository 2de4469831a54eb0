"""Learning curves of online learners (DAC against GAIL): env steps and seconds to a score.

    python experiments/curves.py <sweep folder | curves .jsonl>... [--threshold 0.9]
        [--save-curves experiments/results/runs/<name>_curves.jsonl] [--plot <file>.png]

Reads every finished run's ``rollout/ep_rew_mean`` with its wall-clock times
(``il_lab/analysis/curves.py`` says what the curve is and what it is not) and prints, per env and
learner, how many runs reached the threshold and the median env steps and seconds they took.
``--save-curves`` keeps the curves (small) so the table and plot can be remade after the run
folders are gone; a ``.jsonl`` argument reads them back.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from il_lab.analysis.curves import plot_curves, reach_table, read_curve, read_curves, save_curves
from il_lab.analysis.jobs import read_jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sources", nargs="+", type=Path)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--save-curves", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args(argv)
    curves = []
    for source in args.sources:
        if source.suffix == ".jsonl":
            curves += read_curves(source)
        else:
            curves += [c for c in map(read_curve, read_jobs([source])) if c is not None]
    if not curves:
        raise SystemExit("no run with learning curves among the sources")
    if args.save_curves:
        save_curves(curves, args.save_curves)
    if args.plot:
        plot_curves(curves, args.plot)
    print(reach_table(curves, args.threshold))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
