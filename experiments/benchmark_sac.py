"""Our SAC (``il_lab.rl.sac``) against SB3's SAC: env steps/s and milliseconds per update.

On HalfCheetah-v5 (by default), for every combination of network width, batch size, torch
threads and (optionally) ``torch.compile`` of the networks, each run in a fresh child process,
one at a time: ``--learning-starts`` env steps of random actions fill the buffer, ten more steps
run untimed (their updates compile), then ``--env-steps`` env steps are timed with one update
per env step (SB3's ``train_freq=1, gradient_steps=1``; our ``updates_per_step=1``), then
``--updates`` updates alone. SB3's SAC runs at the same settings (one env, buffer, widths, batch,
learning rate, learned entropy coefficient). Prints a markdown table; the figures depend on the
machine and its load.

    python experiments/benchmark_sac.py [--env HalfCheetah-v5] [--widths 256 128]
        [--batches 256 128] [--threads 1 2] [--compile] [--no-sb3]
        [--env-steps 2000] [--learning-starts 1000] [--updates 200]
"""

import argparse
import concurrent.futures
import itertools
import multiprocessing
import time
from dataclasses import dataclass

from il_lab.analysis.tables import markdown_row, markdown_table

WARMUP_UPDATES = 10  # untimed: compiling, and acting on one observation as well as on a batch
TABLE_HEADER = ["SAC", "threads", "width", "batch", "compile", "env steps/s", "ms/update"]


@dataclass(frozen=True)
class Setting:
    impl: str  # "ours" or "sb3"
    width: int
    batch: int
    threads: int
    compile: bool = False


def _per_update_ms(update, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        update()
    return (time.perf_counter() - started) / n * 1e3


def run_ours(s: Setting, env_id: str, learning_starts: int, env_steps: int, updates: int):
    from il_lab.envs import EnvSpec
    from il_lab.rl.sac import SACHyperparameters, SACTrainer

    hp = SACHyperparameters(
        total_env_steps=learning_starts + WARMUP_UPDATES + env_steps,
        learning_starts=learning_starts,
        batch_size=s.batch,
        net_arch=(s.width, s.width),
    )
    trainer = SACTrainer(hp, env=EnvSpec(env_id), seed=0)
    if s.compile:
        for module in (trainer.policy, trainer.critic, trainer.critic_target):
            module.compile()  # in place: the state_dict keys stay
    trainer.learn(learning_starts + WARMUP_UPDATES)  # random actions, then the first updates
    started = time.perf_counter()
    trainer.learn(env_steps)
    steps_per_s = env_steps / (time.perf_counter() - started)
    ms = _per_update_ms(trainer.update, updates)
    trainer.close()
    return steps_per_s, ms


def run_sb3(s: Setting, env_id: str, learning_starts: int, env_steps: int, updates: int):
    import gymnasium as gym
    from stable_baselines3 import SAC

    model = SAC(
        "MlpPolicy",
        gym.make(env_id),
        buffer_size=learning_starts + WARMUP_UPDATES + env_steps,
        learning_starts=learning_starts,
        batch_size=s.batch,
        train_freq=1,
        gradient_steps=1,
        policy_kwargs={"net_arch": [s.width, s.width]},
        device="cpu",
        seed=0,
    )
    model.learn(learning_starts + WARMUP_UPDATES)  # random actions, then the first updates
    started = time.perf_counter()
    model.learn(env_steps, reset_num_timesteps=False)
    steps_per_s = env_steps / (time.perf_counter() - started)
    ms = _per_update_ms(lambda: model.train(gradient_steps=1, batch_size=s.batch), updates)
    return steps_per_s, ms


def run(s: Setting, env_id: str, learning_starts: int, env_steps: int, updates: int):
    """One setting, in its own process: threads and compile caches are per process."""
    import torch

    torch.set_num_threads(s.threads)
    runner = run_ours if s.impl == "ours" else run_sb3
    return runner(s, env_id, learning_starts, env_steps, updates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--compile", action="store_true", help="also ours with torch.compile")
    parser.add_argument("--no-sb3", dest="sb3", action="store_false")
    parser.add_argument("--env-steps", type=int, default=2000, help="timed env steps")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=200, help="timed updates alone")
    args = parser.parse_args()

    settings = []
    for threads, width, batch in itertools.product(args.threads, args.widths, args.batches):
        settings.append(Setting("ours", width, batch, threads))
        if args.compile:
            settings.append(Setting("ours", width, batch, threads, compile=True))
        if args.sb3:
            settings.append(Setting("sb3", width, batch, threads))

    print(f"{args.env}: {args.env_steps} env steps timed after {args.learning_starts} random ones")
    print(markdown_table(TABLE_HEADER, []))
    spawn = multiprocessing.get_context("spawn")
    for s in settings:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
            work = (s, args.env, args.learning_starts, args.env_steps, args.updates)
            steps_per_s, ms = pool.submit(run, *work).result()
        compiled = "yes" if s.compile else "no" if s.impl == "ours" else "-"
        cells = [s.impl, str(s.threads), str(s.width), str(s.batch), compiled]
        print(markdown_row([*cells, f"{steps_per_s:.0f}", f"{ms:.2f}"]), flush=True)


if __name__ == "__main__":
    main()
