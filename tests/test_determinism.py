"""Same config and seed on CPU, same metrics.json: every learner, both experts, fresh caches.

Every combination runs twice: once in this process, and once in a ``python run.py -m`` sweep,
a separate process with another hash seed. Each side has its own cache, so the experts and the
demonstrations are built (trained, rolled out) on both sides too.
"""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, run_pipeline

from il_lab.runtime.metrics import METRICS_KEYS

pytestmark = pytest.mark.slow  # every combination twice, one side in a subprocess sweep

EXPERTS = ("sb3_ppo", "ppo")
LEARNERS = ("mlp_bc", "transformer_bc", "dagger", "bco", "gail")
COMMON = ["debug=smoke", "device=cpu", "video.enabled=false"]
# cache hits depend on which test (or xdist worker) built the shared cache first
COMPARED = [k for k in METRICS_KEYS if not k.startswith("timing/") and not k.endswith("cache_hit")]


@pytest.fixture(scope="module")
def sweep_metrics(tmp_path_factory) -> dict[tuple[str, str], dict]:
    """metrics.json of every (expert, learner), from one ``python run.py -m`` process."""
    tmp = tmp_path_factory.mktemp("determinism_sweep")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "-m",
            *COMMON,
            f"expert={','.join(EXPERTS)}",
            f"learner={','.join(LEARNERS)}",
            f"paths.cache_dir={tmp}/cache",
            f"hydra.sweep.dir={tmp}/sweep",
        ],
        capture_output=True,
        text=True,
        cwd=tmp,
        timeout=300,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = [json.loads(p.read_text()) for p in (tmp / "sweep").glob("*/metrics.json")]
    return {(m["expert"], m["learner"]): m for m in metrics}


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory):
    """This process's runs, sharing one cache (the sweep's jobs share theirs, in the same order)."""
    return tmp_path_factory.mktemp("determinism_local")


@pytest.mark.parametrize("expert", EXPERTS)
@pytest.mark.parametrize("learner", LEARNERS)
def test_same_seed_gives_identical_metrics(sweep_metrics, local_dir, expert, learner):
    ours = run_pipeline(
        local_dir, [f"expert={expert}", f"learner={learner}", *COMMON], name=f"{expert}-{learner}"
    )
    theirs = sweep_metrics[(expert, learner)]
    assert ours["learner/gradient_steps"] > 0
    differing = [key for key in COMPARED if ours[key] != theirs[key]]
    assert not differing, {key: (ours[key], theirs[key]) for key in differing}
