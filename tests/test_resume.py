"""Resume: the same command into the same run folder continues a killed run from its checkpoint.

Where the learner's envs can be saved mid-episode (BC, DAgger and BCO on CartPole), a resumed run
ends exactly where an uninterrupted one does; GAIL's generator restarts its episodes, so only its
counters and the TensorBoard steps must match.
"""

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import ROOT, compose_config
from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

from il_lab import pipeline
from il_lab.errors import ConfigError
from il_lab.runtime.checkpoint import Checkpoint
from il_lab.runtime.metrics import METRICS_KEYS

COMMON = ["debug=smoke", "video.enabled=false", "device=cpu"]
RESULTS = [k for k in METRICS_KEYS if not k.startswith("timing/") and not k.endswith("cache_hit")]
COUNTERS = ["learner/env_steps", "learner/expert_queries", "learner/gradient_steps"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One cache for the module: each expert is trained once."""
    return tmp_path_factory.mktemp("resume_cache")


def run(run_dir: Path, cache: Path, overrides: list[str]) -> dict:
    pipeline.run(compose_config([*COMMON, *overrides], run_dir, cache))
    return json.loads((run_dir / "metrics.json").read_text())


def points(run_dir: Path, stage: str = "learner") -> Counter:
    """How many times each ``(tag, step, value)`` of tb/<stage> was written, read raw."""
    written = Counter()
    for file in sorted((run_dir / "tb" / stage).glob("events.out.tfevents.*")):
        for event in LegacyEventFileLoader(str(file)).Load():  # as written
            for value in event.summary.value:
                if value.HasField("simple_value") and value.tag != "time/fps":
                    written[(value.tag, event.step, value.simple_value)] += 1
    return written


def steps_of(written: Counter) -> Counter:
    return Counter((tag, step) for (tag, step, _), n in written.items() for _ in range(n))


class Interrupted(Exception):
    pass


def interrupt_after_saves(monkeypatch, n_saves: int) -> list[tuple[str, dict]]:
    """Make the n-th checkpoint save the last thing the run does; returns what was saved."""
    real_save = Checkpoint.save
    saved = []

    def save(self, state, summary=""):
        real_save(self, state, summary)
        saved.append((summary, state))
        if len(saved) == n_saves:
            raise Interrupted(summary)

    monkeypatch.setattr(Checkpoint, "save", save)
    return saved


@pytest.mark.parametrize(
    ("learner", "overrides", "n_saves", "exact"),
    [
        ("transformer_bc", ["learner.val_interval=10"], 3, True),
        (
            "dagger",
            ["learner/bc=transformer", "learner.mixture=per_episode", "learner.beta0=0.5"],
            3,  # round 2: an episode is under way (asserted below)
            True,
        ),
        ("bco", ["learner/bc=transformer"], 2, True),  # iteration 1: likewise
        (  # the noise's draws and the capped inverse-dynamics data come back too
            "bco",
            [
                "learner.exploration_noise=0.5",
                "learner.exploration_noise_final=0.1",
                "learner.idm_buffer_size=500",
            ],
            3,
            True,
        ),
        ("gail", ["budget.learner_env_steps=4096"], 3, False),
    ],
)
def test_an_interrupted_run_resumes_where_it_stopped(
    tmp_path, cache, monkeypatch, caplog, learner, overrides, n_saves, exact
):
    caplog.set_level(logging.INFO)
    overrides = [f"learner={learner}", *overrides]
    reference = run(tmp_path / "reference", cache, overrides)

    saves = interrupt_after_saves(monkeypatch, n_saves)
    with pytest.raises(Interrupted):
        run(tmp_path / "resumed", cache, overrides)
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    monkeypatch.undo()
    resumed = run(tmp_path / "resumed", cache, overrides)

    summary, state = saves[-1]
    checkpoint = tmp_path / "resumed" / "checkpoint" / "learner.pt"
    assert len(saves) == n_saves and f"resuming from {checkpoint} ({summary})" in caplog.text
    if "stepper" in state:  # DAgger, BCO: stopped mid-episode, so the episode must go on
        assert state["stepper"]["env"] is not None and len(state["stepper"]["episode_obs"]) > 1
    assert not checkpoint.exists()
    ours, theirs = points(tmp_path / "resumed"), points(tmp_path / "reference")
    assert max(steps_of(ours).values()) == 1  # no (tag, step) twice
    assert steps_of(ours) == steps_of(theirs)  # and none missing
    if exact:
        assert {k: resumed[k] for k in RESULTS} == {k: reference[k] for k in RESULTS}
        assert ours == theirs
    else:
        assert {k: resumed[k] for k in COUNTERS} == {k: reference[k] for k in COUNTERS}


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_from_the_same_command(tmp_path, cache):
    """A real ``python run.py`` killed with signal 9 in DAgger's rounds, then run again."""
    overrides = ["learner=dagger", "budget.learner_env_steps=3000", "learner.round_env_steps=100"]
    command = [
        sys.executable,
        str(ROOT / "run.py"),
        *COMMON,
        *overrides,
        f"paths.cache_dir={cache}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    first = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "run" / "checkpoint" / "learner.pt"
    deadline = time.monotonic() + 240
    # Killed once a later round has saved too (the file changed since the first save): the
    # rounds are under way, whatever the machine's speed; 30 rounds leave it far from done.
    first_save = None
    while first_save is None or checkpoint.stat().st_mtime_ns == first_save:
        assert first.poll() is None, first.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        if first_save is None and checkpoint.exists():
            first_save = checkpoint.stat().st_mtime_ns
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    assert not (tmp_path / "run" / "metrics.json").exists()

    second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    log = (tmp_path / "run" / "run.log").read_text()
    assert "resuming from" in log and "DAgger round" in log
    assert max(steps_of(points(tmp_path / "run")).values()) == 1

    uninterrupted = run(tmp_path / "reference", cache, overrides)
    resumed = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {k: resumed[k] for k in RESULTS} == {k: uninterrupted[k] for k in RESULTS}
    assert steps_of(points(tmp_path / "run")) == steps_of(points(tmp_path / "reference"))


def test_a_finished_run_is_not_redone(tmp_path, cache, caplog):
    caplog.set_level(logging.INFO)
    score = pipeline.run(compose_config([*COMMON, "learner=mlp_bc"], tmp_path / "run", cache))
    written = (tmp_path / "run" / "metrics.json").read_bytes()
    again = pipeline.run(compose_config([*COMMON, "learner=mlp_bc"], tmp_path / "run", cache))
    assert again == score or (math.isnan(again) and math.isnan(score))
    assert (tmp_path / "run" / "metrics.json").read_bytes() == written
    assert "has finished already (metrics.json): not run again" in caplog.text


def test_a_folder_of_another_config_is_refused_in_one_line(tmp_path, cache, monkeypatch):
    interrupt_after_saves(monkeypatch, 1)
    with pytest.raises(Interrupted):
        run(tmp_path / "run", cache, ["learner=mlp_bc", "learner.val_interval=10"])
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="holds a run of another config") as refused:
        run(tmp_path / "run", cache, ["learner=mlp_bc", "learner.val_interval=10", "seed=1"])
    assert "\n" not in str(refused.value) and "allowed:" in str(refused.value)


def test_a_checkpoint_of_another_config_is_refused(tmp_path):
    events = tmp_path / "tb"
    Checkpoint(tmp_path / "ckpt.pt", config_hash="aaaa", events_dir=events).save({"x": 1})
    assert Checkpoint(tmp_path / "ckpt.pt", config_hash="aaaa", events_dir=events).resume() == {
        "x": 1
    }
    with pytest.raises(ConfigError, match="hash aaaa, this one is bbbb"):
        Checkpoint(tmp_path / "ckpt.pt", config_hash="bbbb", events_dir=events)
    # A floor between saves: a save sooner than 0.2 s after the start or the last one is skipped.
    now = [100.0]
    spaced = Checkpoint(
        tmp_path / "spaced.pt", config_hash="a", events_dir=events, min_interval_s=0.2,
        clock=lambda: now[0],
    )  # fmt: skip
    now[0] += 0.19
    spaced.save({"x": 1})
    assert not (tmp_path / "spaced.pt").exists()
    now[0] += 0.02
    spaced.save({"x": 2})
    spaced.save({"x": 3})
    assert Checkpoint(tmp_path / "spaced.pt", config_hash="a", events_dir=events).resume() == {
        "x": 2
    }
    (tmp_path / "broken.pt").write_bytes(b"half a checkpoint")
    with pytest.raises(ConfigError, match="is not a readable checkpoint") as refused:
        Checkpoint(tmp_path / "broken.pt", config_hash="aaaa", events_dir=events)
    assert "\n" not in str(refused.value)
    # Checkpointing off: nothing saved, nothing resumed, nothing refused.
    off = Checkpoint(tmp_path / "ckpt.pt", config_hash="bbbb", events_dir=events, enabled=False)
    off.save({"x": 2})
    assert off.resume() is None


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended while we looked
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


@pytest.mark.slow
def test_submitit_requeue_resumes_a_preempted_job(tmp_path, cache):
    """submitit's preemption signal to a ``submitit_local`` job: the job checkpoints, exits,
    is requeued in the same folder, and resumes there (what ``max_num_timeout`` does on SLURM)."""
    overrides = ["learner=dagger", "budget.learner_env_steps=3000", "learner.round_env_steps=100"]
    sweep = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "-m",
            *COMMON,
            *overrides,
            f"paths.cache_dir={cache}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not list((tmp_path / "sweep").glob("0*/checkpoint/learner.pt")):
        assert sweep.poll() is None, sweep.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (job,) = [
        pid
        for pid in descendants(sweep.pid)
        if b"submitit.core._submit" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    os.kill(job, signal.SIGUSR2)  # submitit's local stand-in for SLURM's preemption signal
    _, stderr = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, stderr[-3000:]

    (run_dir,) = (tmp_path / "sweep").glob("0*")
    logs = (tmp_path / "sweep" / ".submitit").rglob("*_log.*")
    submitit_log = "".join(p.read_text() for p in logs)
    assert "Caught signal SIGUSR2" in submitit_log and "Requeued job" in submitit_log
    assert "resuming from" in (run_dir / "run.log").read_text()
    assert max(steps_of(points(run_dir)).values()) == 1
    resumed = json.loads((run_dir / "metrics.json").read_text())
    uninterrupted = run(tmp_path / "reference", cache, overrides)
    assert {k: resumed[k] for k in RESULTS} == {k: uninterrupted[k] for k in RESULTS}


# Experts: their checkpoint lives beside the cache entry, so any job that builds it resumes.


@pytest.mark.parametrize("expert", ["ppo", "sb3_ppo"])
def test_expert_training_resumes_from_its_checkpoint(tmp_path, monkeypatch, expert):
    overrides = [
        "learner=mlp_bc",
        f"expert={expert}",
        "budget.expert_env_steps=6144",
        "checkpoint.expert_env_steps=2048",
    ]
    saved = interrupt_after_saves(monkeypatch, 2)
    with pytest.raises(Interrupted):
        run(tmp_path / "run", tmp_path / "cache", overrides)
    assert saved[-1][0].endswith("4096 env steps")
    (checkpoint,) = (tmp_path / "cache" / "experts").glob("*.checkpoint")
    assert not list((tmp_path / "cache" / "experts").glob("*.pt")) + list(
        (tmp_path / "cache" / "experts").glob("*.zip")
    )  # no expert was cached
    monkeypatch.undo()

    metrics = run(tmp_path / "run", tmp_path / "cache", overrides)
    assert not metrics["expert/cache_hit"]
    assert not checkpoint.exists()  # the expert is cached: nothing left to resume
    steps = steps_of(points(tmp_path / "run", "expert"))
    assert max(steps.values()) == 1  # no point logged twice
    env_steps = sorted({step for (_, step) in steps})
    assert env_steps[0] <= 2048 and env_steps[-1] >= 6144  # none lost before the checkpoint


@pytest.mark.slow
def test_an_expert_killed_with_sigkill_resumes_in_the_rerun(tmp_path):
    """A real ``python run.py`` killed with signal 9 while our PPO expert trains."""
    command = [
        sys.executable,
        str(ROOT / "run.py"),
        *COMMON,
        "learner=mlp_bc",
        "expert=ppo",
        "budget.expert_env_steps=300000",
        "checkpoint.expert_env_steps=20000",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    first = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list((tmp_path / "cache" / "experts").glob("*.checkpoint")):
        assert first.poll() is None, first.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    assert not list((tmp_path / "cache" / "experts").glob("*.pt.tmp*"))  # nothing half-written

    second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    log = (tmp_path / "run" / "run.log").read_text()
    assert "resuming from" in log and "PPO expert" in log
    assert max(steps_of(points(tmp_path / "run", "expert")).values()) == 1
    entries = sorted(p.name for p in (tmp_path / "cache" / "experts").iterdir())
    assert [name for name in entries if ".tmp-" in name or name.endswith(".checkpoint")] == []
    assert len([name for name in entries if name.endswith(".pt")]) == 1
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["learner/env_steps"] == 0
