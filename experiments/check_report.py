"""Compare a finished reproduction run (or every run of a sweep) with the published numbers.

    python experiments/check_report.py <run or sweep folder>

Prints one line per check and exits non-zero when any run misses its write-up's numbers by more
than the tolerance stated in the preset (conf/experiment/*.yaml, under report.checks).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from il_lab.analysis.report_check import check_run, runs_under  # noqa: E402


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    runs = runs_under(Path(sys.argv[1]))
    if not runs:
        raise SystemExit(f"no finished run (metrics.json) under {sys.argv[1]}")
    failed = 0
    for run in runs:
        for r in check_run(run):
            ours = [round(v, 4) for v in r.ours] if isinstance(r.ours, list) else round(r.ours, 4)
            verdict = "PASS" if r.passed else "FAIL"
            print(
                f"{verdict} {run.name}: {r.metric} = {ours} (published {r.published}; "
                f"required {r.rule} {r.threshold})"
            )
            failed += not r.passed
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
