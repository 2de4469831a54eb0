"""Check a finished run of a reproduction preset against what its write-up published.

A preset lists its checks under ``report.checks``: a metric (a ``metrics.json`` key, or
``tb/<stage>/<tag>@first`` or ``@last`` for the first or last logged value of a TensorBoard tag),
the published number, and a rule with its threshold (``at_least``, ``at_most``, or
``min_at_least`` for a list).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from il_lab.analysis.events import read_scalars


@dataclass(frozen=True)
class CheckResult:
    run: Path
    metric: str
    published: object
    ours: object
    rule: str
    threshold: float
    passed: bool


_EVENT_POSITIONS = {"first": 0, "last": -1}


def _metric(run: Path, name: str):
    if name.startswith("tb/"):
        path, _, position = name.rpartition("@")
        if position not in _EVENT_POSITIONS:
            raise SystemExit(f"report check {name!r}: allowed: tb/<stage>/<tag>@first or @last")
        _, stage, tag = path.split("/", 2)
        scalars = read_scalars(run / "tb" / stage)
        if tag not in scalars:
            raise SystemExit(f"report check {name!r}: {run / 'tb' / stage} has no tag {tag!r}")
        _, values = scalars[tag]
        return float(values[_EVENT_POSITIONS[position]])
    return json.loads((run / "metrics.json").read_text())[name]


RULES = {
    "at_least": lambda ours, threshold: ours >= threshold,
    "at_most": lambda ours, threshold: ours <= threshold,
    "min_at_least": lambda ours, threshold: min(ours) >= threshold,
}


def check_run(run: Path) -> list[CheckResult]:
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    checks = (config.get("report") or {}).get("checks")
    if not checks:
        raise SystemExit(f"{run} was not run from a reproduction preset (no report.checks)")
    results = []
    for check in checks:
        ours = _metric(run, check["metric"])
        passed = RULES[check["rule"]](ours, check["value"])
        results.append(
            CheckResult(
                run,
                check["metric"],
                check["published"],
                ours,
                check["rule"],
                check["value"],
                bool(passed),
            )
        )
    return results


def runs_under(folder: Path) -> list[Path]:
    """The run itself, or every finished run of a sweep folder."""
    if (folder / "metrics.json").is_file():
        return [folder]
    return sorted(p.parent for p in folder.glob("*/metrics.json"))
