"""The same command gives the same metrics.json as when its golden file was written.

A refactor that means to change no result (schema, stages, packages, config files) must leave
every learner's numbers on CartPole and Pendulum exactly as they were. Torch's float arithmetic
differs in the last bits from CPU to CPU, so a golden file may be per CPU: ``golden/<cpu>/<file>``
where ``<cpu>`` names the processor and the instruction set torch dispatches to (``cpu_key``),
else ``golden/<file>`` (the machine the files were first written on, 2026-12-07). A CPU keeps
only the files where its numbers differ: after writing, delete those equal to the first's. After
a change that alters results on purpose, or on a CPU of a new kind, write them from a commit
whose results are trusted with ``IL_LAB_WRITE_GOLDEN=1 pytest -m slow tests/test_golden.py`` and
say why in the commit.
"""

import json
import os
import re
from pathlib import Path

import pytest
import torch
from conftest import run_pipeline

from il_lab.runtime.metrics import METRICS_KEYS


def cpu_key() -> str:
    """The processor's model name and torch's dispatch level, e.g. ``amd-epyc-avx512``."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = names[0] if names else model
    key = f"{model}-{torch.backends.cpu.get_cpu_capability()}"
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")


GOLDEN = Path(__file__).parent / "golden"
WRITE = os.environ.get("IL_LAB_WRITE_GOLDEN") == "1"


def golden_file(name: str) -> Path:
    """This CPU's file where it has one (or is writing them), else the first machine's."""
    own = GOLDEN / cpu_key() / name
    return own if WRITE or own.exists() else GOLDEN / name


ENVS = ("cartpole", "pendulum")
LEARNERS = ("mlp_bc", "transformer_bc", "dagger", "bco", "gail")
# Wall-clock differs run to run; the versions line is checked by the pipeline tests; whether the
# expert came from the module's cache depends on which test (or xdist worker) ran first.
COMPARED = [
    k for k in METRICS_KEYS
    if not k.startswith("timing/") and k != "libraries" and not k.endswith("cache_hit")
]  # fmt: skip


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("golden_cache")


@pytest.mark.slow
@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("learner", LEARNERS)
def test_metrics_match_the_golden_file(tmp_path, cache_dir, env, learner):
    metrics = run_pipeline(
        tmp_path,
        [f"env={env}", f"learner={learner}", "device=cpu", "video.enabled=false"],
        cache=str(cache_dir),  # an absolute path: one cache for the module's runs
    )
    ours = {key: metrics[key] for key in COMPARED}
    golden = golden_file(f"{env}_{learner}.json")
    if WRITE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(json.dumps(ours, indent=1) + "\n")
    expected = json.loads(golden.read_text())
    # keys added since the file was written are not in it (and change nothing before them)
    differing = {
        k: (ours[k], expected[k]) for k in COMPARED if k in expected and ours[k] != expected[k]
    }
    assert not differing, differing
    assert len(expected) >= len(COMPARED) - 1
