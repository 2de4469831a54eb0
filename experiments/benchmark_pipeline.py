"""Stage timings and BC training throughput of one pipeline run.

    python experiments/benchmark_pipeline.py [hydra overrides ...]

Runs the real pipeline twice in a fresh cache (cold: expert trained; warm: everything cached)
and prints each stage's wall-clock seconds, the evaluation return and BC's samples per second.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import open_dict  # noqa: E402

import il_lab.config.resolvers  # noqa: E402, F401
from il_lab import pipeline  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"


def run_once(overrides: list[str], run_dir: Path, cache_dir: Path) -> tuple[dict, float, object]:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.cache_dir = str(cache_dir)
    start = time.perf_counter()
    pipeline.run(cfg)
    return json.loads((run_dir / "metrics.json").read_text()), time.perf_counter() - start, cfg


def main() -> None:
    overrides = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for label in ("cold", "warm"):
            metrics, wall, cfg = run_once(overrides, Path(tmp) / label, Path(tmp) / "cache")
            rows.append((label, metrics, wall))
    stages = ["expert", "demos", "learner", "eval", "video", "total"]
    print(f"overrides: {' '.join(overrides) or '(none)'}")
    print("| run | " + " | ".join(f"{s} s" for s in stages) + " | return | score |")
    print("|---" * (len(stages) + 3) + "|")
    for label, m, _ in rows:
        cells = " | ".join(f"{m[f'timing/{s}_s']:.1f}" for s in stages)
        print(
            f"| {label} | {cells} | {m['learner/eval/return_mean']:.1f} "
            f"| {m['learner/eval/normalized_score']:.3f} |"
        )
    m = rows[-1][1]
    batch = cfg.learner.get("batch_size", 0)
    samples = m["learner/gradient_steps"] * batch
    print(
        f"BC throughput: {m['learner/gradient_steps']} steps x batch {batch} in "
        f"{m['timing/learner_s']:.1f} s = {samples / m['timing/learner_s']:.0f} samples/s "
        "(learner stage, including set-up)"
    )


if __name__ == "__main__":
    main()
