"""Checkpoints in the run folder, so that the same command into the same folder resumes a run.

A learner saves its whole state (weights, optimizer, normalizer statistics, generators, counters,
its data set) every so often through a ``Checkpoint``; rerunning the command finds the file and
the learner continues from it. Everything needed for that lives here:

- Files are written atomically: ``torch.save`` to a temporary file in the same folder, then
  ``os.replace``. A kill leaves the previous checkpoint or the new one, never half of one.
- Each checkpoint carries a hash of the run's config (``config_hash``): a checkpoint of another
  config is refused with one line, never silently used.
- Torch's, NumPy's and Python's global generators are saved with every checkpoint and put back
  on resume (a learner saves its own ``np.random.Generator`` and torch generators itself).
- TensorBoard: at each save the stage's writer is flushed and the size of every event file is
  recorded. On resume the files are cut back to those sizes (a file the checkpoint does not know
  is removed), so the points logged after the checkpoint, which the resumed run logs again, are
  not duplicated, and none before it is lost. TensorBoard's own ``purge_step`` cannot do this for
  a folder whose tags count different steps (env steps and gradient steps in one writer).
"""

import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from il_lab.errors import ConfigError

log = logging.getLogger(__name__)

_EVENT_FILES = "events.out.tfevents.*"


def config_hash(config: dict) -> str:
    """A stable hash of a resolved config (plain containers)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_atomic(path: Path, payload: Any) -> None:
    """``torch.save`` into a temporary file beside ``path``, then rename it into place."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: Path) -> Any | None:
    """What ``save_atomic`` wrote, or ``None`` if there is no file."""
    if not path.is_file():
        return None
    # Our own file in our own run folder: it holds pickled generator states and arrays.
    return torch.load(path, map_location="cpu", weights_only=False)


def _global_rng_states() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def _set_global_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


def refuse_other_config(found: str, expected: str, where: Path) -> None:
    if found != expected:
        raise ConfigError(
            f"hydra.run.dir={str(where)!r} holds a run of another config (hash {found}, this "
            f"one is {expected}); allowed: the same command to resume it, or a new run folder"
        )


def claim_run_folder(folder: Path, config_hash: str, config: dict) -> dict | None:
    """Record in ``folder`` the config its run belongs to, or refuse a folder of another one.

    ``checkpoint/config.json`` holds the hash and the config it was computed from.

    Returns:
        The folder's ``metrics.json`` if this config's run there has finished, else None.

    Raises:
        ConfigError: ``folder`` holds a run of another config, or results with no record of
            the config that produced them (which this config must not claim as its own).
    """
    record = folder / "checkpoint" / "config.json"
    metrics = folder / "metrics.json"
    if record.is_file():
        refuse_other_config(json.loads(record.read_text())["config_hash"], config_hash, folder)
        return json.loads(metrics.read_text()) if metrics.is_file() else None
    if metrics.is_file():
        raise ConfigError(
            f"hydra.run.dir={str(folder)!r} holds results (metrics.json) but no record of their "
            "config (checkpoint/config.json); allowed: a new run folder"
        )
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f"{record.name}.tmp-{os.getpid()}")
    record_text = json.dumps({"config_hash": config_hash, "config": config}, indent=2, default=str)
    tmp.write_text(record_text)
    os.replace(tmp, record)
    return None


class Checkpoint:
    """One stage's checkpoint file and the TensorBoard folder it keeps in step.

    Args:
        path: the checkpoint file (created on the first ``save``).
        config_hash: the run's ``config_hash``; a file with another is refused.
        events_dir: the stage's TensorBoard folder, written by the writer ``open_writer`` gives.
        enabled: when false, nothing is saved or resumed (the stage starts afresh).
        min_interval_s: skip a save that comes sooner than this after the previous one (or
            after the start), for learners whose rounds take a fraction of a second.
        clock: seconds for ``min_interval_s`` (``time.monotonic``; tests pass their own).

    Raises:
        ConfigError: the file holds a checkpoint of another config.
    """

    def __init__(
        self,
        path: Path,
        *,
        config_hash: str,
        events_dir: Path,
        enabled: bool = True,
        min_interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.min_interval_s = min_interval_s
        self.clock = clock
        self._last_save = clock()
        self.config_hash = config_hash
        self.events_dir = Path(events_dir)
        self.enabled = enabled
        self.writer: SummaryWriter | None = None
        try:
            self._saved = load(self.path) if enabled else None
        except Exception as error:  # torch, zip and pickle errors alike
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ConfigError(
                f"{self.path} is not a readable checkpoint ({first_line}); allowed: a checkpoint "
                "this run wrote, or no file (delete it to start the learner afresh)"
            ) from error
        if self._saved is not None:
            refuse_other_config(self._saved["config_hash"], config_hash, self.path.parent)

    @property
    def found(self) -> bool:
        """A checkpoint to resume from exists."""
        return self._saved is not None

    def open_writer(self) -> SummaryWriter:
        """The stage's writer, its folder cut back to what the checkpoint had logged."""
        self.restore_events()
        self.writer = SummaryWriter(log_dir=str(self.events_dir))
        return self.writer

    def restore_events(self) -> None:
        """Cut the stage's event files back to what the checkpoint had logged.

        Without a checkpoint every event file of the folder is removed: the stage starts again
        from nothing, so nothing an earlier, unfinished attempt logged may stay. For a stage
        whose library writes its own events (SB3's logger), call this before it opens them.
        """
        recorded = self._saved["events"] if self._saved is not None else {}
        if self.events_dir.is_dir():
            for file in sorted(self.events_dir.glob(_EVENT_FILES)):
                size = recorded.get(file.name)
                if size is None:
                    file.unlink()
                elif file.stat().st_size > size:
                    os.truncate(file, size)

    def resume(self) -> dict | None:
        """The state the learner saved, with the global generators put back as they were.

        ``None`` when there is nothing to resume.
        """
        if self._saved is None:
            return None
        _set_global_rng_states(self._saved["global_rng"])
        log.info("resuming from %s (%s)", self.path, self._saved.get("summary", "checkpoint"))
        return self._saved["state"]

    def save(self, state: dict, summary: str = "") -> None:
        """Atomically write ``state`` (anything ``torch.save`` takes) with what resuming needs.

        ``summary`` says in the log where the checkpoint is (e.g. "round 3, 600 env steps").
        """
        if not self.enabled or self.clock() - self._last_save < self.min_interval_s:
            return
        if self.writer is not None:
            self.writer.flush()  # every point logged so far is in the files before we measure
        # A stage with its own writer (SB3's) flushes it before saving.
        events = {f.name: f.stat().st_size for f in self.events_dir.glob(_EVENT_FILES)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save_atomic(
            self.path,
            {
                "config_hash": self.config_hash,
                "summary": summary,
                "state": state,
                "global_rng": _global_rng_states(),
                "events": events,
            },
        )
        self._last_save = self.clock()
        log.debug("checkpoint: %s", summary)

    def remove(self) -> None:
        """Delete the file (the stage's results are safe elsewhere)."""
        self.path.unlink(missing_ok=True)
