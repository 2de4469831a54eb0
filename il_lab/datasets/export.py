"""Demonstrations on the command line: share what a run trained on as a Minari dataset.

    python -m il_lab.datasets.export export SRC --to minari:<dataset id> [--ref-min R --ref-max R]

SRC is a run folder or an ``.npz`` written by il_lab. A run folder names the demonstrations it
trained on, their env and transition cap (``demonstrations.json``, written by the pipeline), and
its random and expert evaluation returns (``metrics.json``), which become the dataset's
``ref_min_score`` and ``ref_max_score``: ``minari.get_normalized_score`` then equals the run's
normalized score. A run with ``demos.subsample=N`` exports its whole episodes (a Minari episode is
a sequence of steps, not a sample of them); the dataset's description and the log name N and the
run's seed, and ``demos.subsample=N seed=<seed>`` keeps the same transitions from the dataset
(the offsets depend on the seed alone). The dataset lands in Minari's local datasets root
(``MINARI_DATASETS_PATH``, else ``~/.minari/datasets``); ``demos.path=minari:<dataset id>``
trains on it.
"""

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from il_lab.datasets.npz import stored_env_id
from il_lab.datasets.sources import SOURCE_RECORD, load_trajectories, recorded_source
from il_lab.datasets.trajectories import Trajectory, cap_transitions
from il_lab.envs import EnvSpec
from il_lab.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Export:
    """What to write: the trajectories, their env, and what Minari records about them."""

    trajectories: list[Trajectory]
    env: EnvSpec
    ref_min_score: float | None
    ref_max_score: float | None
    ref_episodes: int | None
    algorithm_name: str
    description: str


def from_run_folder(run_dir: Path) -> Export:
    """The demonstrations a run trained on (its transition cap applied), and its scores.

    Raises:
        ConfigError: naming SRC when the folder is not an il_lab run that recorded them.
    """
    record = recorded_source(run_dir)
    if record is None:
        raise ConfigError(
            f"SRC={str(run_dir)!r} is not a run folder that names its demonstrations; allowed: "
            f"a run folder with {SOURCE_RECORD}, or an .npz"
        )
    env = EnvSpec(id=record["env_id"], max_episode_steps=record["max_episode_steps"])
    trajectories = load_trajectories(record["path"], env, key=str(run_dir / SOURCE_RECORD))
    trajectories = cap_transitions(trajectories, record["demo_transitions"])
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    if not metrics:
        log.warning("%s has no metrics.json (unfinished run): no reference scores", run_dir)
    by = f"il_lab {metrics.get('expert')} expert" if record["by_expert"] else "user's own"
    every = record.get("subsample", 1)
    kept = ""
    if every > 1:
        kept = (
            f" The run kept one transition every {every} steps of each episode: "
            f"demos.subsample={every} seed={metrics.get('seed')} keeps the same ones."
        )
        log.info("whole episodes exported; the run trained on a subsample.%s", kept)
    return Export(
        trajectories=trajectories,
        env=env,
        ref_min_score=metrics.get("random/eval/return_mean"),
        ref_max_score=metrics.get("expert/eval/return_mean"),
        ref_episodes=len(metrics["learner/eval/returns"]) if metrics else None,
        algorithm_name=by,
        description=(
            f"{len(trajectories)} episodes of {env.id} ({by}) that an il_lab run trained on; "
            "ref_min_score / ref_max_score: the random policy's and the expert's mean return on "
            "the run's evaluation seeds." + kept
        ),
    )


def from_npz(path: Path, max_episode_steps: int | None) -> Export:
    """An ``.npz`` of demonstrations, checked against the env it names."""
    env = EnvSpec(id=stored_env_id(path, key="SRC"), max_episode_steps=max_episode_steps)
    trajectories = load_trajectories(path, env, key="SRC")
    return Export(
        trajectories=trajectories,
        env=env,
        ref_min_score=None,
        ref_max_score=None,
        ref_episodes=None,
        algorithm_name="il_lab demonstrations",
        description=f"{len(trajectories)} episodes of {env.id}, exported by il_lab from an .npz.",
    )


def export(args: argparse.Namespace) -> Path:
    """The ``export`` command; returns the dataset's folder."""
    from il_lab.datasets.minari_io import export_minari

    src = Path(args.src)
    if src.is_dir():
        what = from_run_folder(src)
    elif src.suffix == ".npz" or src.is_file():
        what = from_npz(src, args.max_episode_steps)
    else:
        raise ConfigError(f"SRC={args.src!r} does not exist; allowed: a run folder or an .npz")
    ref_min = what.ref_min_score if args.ref_min is None else args.ref_min
    ref_max = what.ref_max_score if args.ref_max is None else args.ref_max
    started = time.perf_counter()
    folder = export_minari(
        what.trajectories,
        what.env,
        args.to,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        ref_episodes=what.ref_episodes,
        algorithm_name=what.algorithm_name,
        description=what.description,
        author=args.author,
        author_email=args.author_email,
        code_permalink=args.code_permalink,
    )
    log.info(
        "wrote %s: %d episodes, %d transitions of %s, ref scores %s..%s, in %.2f s, at %s",
        args.to,
        len(what.trajectories),
        sum(len(t) for t in what.trajectories),
        what.env.id,
        ref_min,
        ref_max,
        time.perf_counter() - started,
        folder,
    )
    return folder


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="python -m il_lab.datasets.export", description=__doc__.split("\n")[0]
    )
    commands = main.add_subparsers(dest="command", required=True)
    out = commands.add_parser(
        "export",
        help="write demonstrations as a Minari dataset",
        description="Write a run's demonstrations (or an .npz) as a Minari dataset.",
    )
    out.add_argument("src", metavar="SRC", help="a run folder, or an .npz written by il_lab")
    out.add_argument("--to", required=True, help="minari:<dataset id>, e.g. minari:il_lab/cp-v0")
    out.add_argument(
        "--ref-min", type=float, help="random policy's mean return (a run folder: its metrics)"
    )
    out.add_argument(
        "--ref-max", type=float, help="expert's mean return (a run folder: its metrics)"
    )
    out.add_argument(
        "--max-episode-steps", type=int, help="an .npz's episode cap (default: the env's own)"
    )
    out.add_argument("--author")
    out.add_argument("--author-email")
    out.add_argument("--code-permalink")
    return main


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parser().parse_args(argv)
    try:
        export(args)
    except ConfigError as error:  # a user's mistake: one line, no traceback
        log.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
