"""Minari round trip against our .npz: write and read seconds, sizes on disk, identical data.

From a run folder or an .npz (``SRC``), or from ``--episodes`` of a random policy in ``--env``:
reads the .npz (``load_trajectories``), writes it as a Minari dataset (``export_minari``) into a
temporary ``MINARI_DATASETS_PATH``, reads it back through ``demos.path``'s own path
(``load_trajectories("minari:<id>")``), checks every array and end flag is identical, and prints
median seconds over ``--repeats`` and the sizes.

    nice -n 10 python experiments/benchmark_minari.py <run folder | .npz> [--repeats 3]
    nice -n 10 python experiments/benchmark_minari.py --env Hopper-v5 --episodes 10
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from il_lab.datasets.npz import save_trajectories, stored_env_id
from il_lab.datasets.sources import load_trajectories, recorded_source
from il_lab.envs import EnvSpec
from il_lab.evaluation import RandomPolicy
from il_lab.rollout import rollout


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def identical(a, b) -> bool:
    return len(a) == len(b) and all(
        x.obs.dtype == y.obs.dtype
        and x.acts.dtype == y.acts.dtype
        and np.array_equal(x.obs, y.obs)
        and np.array_equal(x.acts, y.acts)
        and np.array_equal(x.rews, y.rews)
        and (x.terminated, x.truncated) == (y.terminated, y.truncated)
        for x, y in zip(a, b, strict=True)
    )


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="benchmark_minari_"))
    try:
        benchmark(work)
    finally:
        shutil.rmtree(work)


def benchmark(work: Path) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", nargs="?", help="a run folder or an .npz")
    parser.add_argument("--env", help="without SRC: record a random policy in this env")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["MINARI_DATASETS_PATH"] = str(work / "minari")
    from il_lab.datasets.minari_io import dataset_folder, export_minari  # after the root is set

    if args.src is None:
        env = EnvSpec(args.env)
        npz = work / "random.npz"
        demos = rollout(RandomPolicy(env.action_space, 0), env, list(range(args.episodes)))
        save_trajectories(npz, demos, env)
    else:
        src = Path(args.src)
        if src.is_dir():
            record = recorded_source(src)
            npz = Path(record["path"])
            env = EnvSpec(record["env_id"], record["max_episode_steps"])
        else:
            npz, env = src, EnvSpec(stored_env_id(src, key="SRC"))

    seconds: dict[str, list[float]] = {"npz read": [], "minari write": [], "minari read": []}
    for i in range(args.repeats):
        start = time.perf_counter()
        demos = load_trajectories(npz, env)
        seconds["npz read"].append(time.perf_counter() - start)
        start = time.perf_counter()
        folder = export_minari(demos, env, f"minari:benchmark-v{i}")
        seconds["minari write"].append(time.perf_counter() - start)
        start = time.perf_counter()
        back = load_trajectories(f"minari:benchmark-v{i}", env)
        seconds["minari read"].append(time.perf_counter() - start)
        assert identical(demos, back), "the round trip changed the data"
    assert folder == dataset_folder(f"benchmark-v{args.repeats - 1}")

    n = sum(len(t) for t in demos)
    print(f"{env.id}: {len(demos)} episodes, {n} transitions; identical after the round trip")
    for what, values in seconds.items():
        print(f"  {what}: {statistics.median(values):.3f} s (median of {len(values)})")
    hdf5 = folder / "data" / "main_data.hdf5"
    print(f"  .npz (compressed): {npz.stat().st_size / 1e6:.2f} MB")
    print(
        f"  Minari dataset: {folder_bytes(folder) / 1e6:.2f} MB "
        f"(main_data.hdf5 {hdf5.stat().st_size / 1e6:.2f} MB, uncompressed)"
    )


if __name__ == "__main__":
    main()
