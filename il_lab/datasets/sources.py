"""Where a run's demonstrations come from, and the record of it in the run folder."""

import json
from pathlib import Path

from il_lab.datasets.minari_io import MINARI_PREFIX, load_minari
from il_lab.datasets.npz import load_npz
from il_lab.datasets.trajectories import Trajectory
from il_lab.envs import EnvSpec

# A run folder's record of the demonstrations file it used (read by the export CLI).
SOURCE_RECORD = "demonstrations.json"


def load_trajectories(path: str | Path, env: EnvSpec, key: str = "demos.path") -> list[Trajectory]:
    """Read and validate demonstrations against ``env``: our ``.npz``, or a Minari dataset.

    ``minari:<dataset id>`` (in Minari's local datasets root) or a folder is read as a Minari
    dataset (``il_lab.datasets.minari_io``); anything else as an ``.npz`` (``il_lab.datasets.npz``).

    Raises:
        ConfigError: naming ``key`` and the source when it is missing, corrupt, or made for
            another env (id, observation shape or action space).
    """
    if str(path).startswith(MINARI_PREFIX) or Path(path).is_dir():
        return load_minari(str(path), env, key=key)
    return load_npz(path, env, key)


def record_source(
    run_dir: Path,
    source: str | Path,
    *,
    env: EnvSpec,
    demo_transitions: int | None,
    by_expert: bool,
    subsample: int = 1,
) -> None:
    """Write into ``run_dir`` which demonstrations it trained on, for the export CLI.

    Args:
        source: the file (recorded as an absolute path) or ``minari:<id>`` they came from.
        demo_transitions: the cap the run applied (``cap_transitions``), None for none.
        by_expert: they are the run's expert's (else the user's own).
        subsample: the run kept one transition every this many steps (``demos.subsample``).
    """
    if not str(source).startswith(MINARI_PREFIX):
        source = Path(source).resolve()
    record = {
        "path": str(source),
        "env_id": env.id,
        "max_episode_steps": env.max_episode_steps,
        "demo_transitions": demo_transitions,
        "by_expert": by_expert,
        "subsample": subsample,
    }
    (run_dir / SOURCE_RECORD).write_text(json.dumps(record, indent=2) + "\n")


def recorded_source(run_dir: Path) -> dict | None:
    """What ``record_source`` wrote for ``run_dir``; None if it wrote nothing (an older run)."""
    record = run_dir / SOURCE_RECORD
    return json.loads(record.read_text()) if record.is_file() else None
