"""Our PPO (``expert=ppo``) against SB3 PPO (``expert=sb3_ppo``) on an env preset, side by side.

For each seed and each PPO, train with what ``python run.py env=<preset> expert=<name>``
composes (the expert's defaults and the preset's ``conf/tuned/`` values) and every
``--eval-interval`` env steps evaluate the deterministic policy on ``--eval-episodes`` fixed
seeds; report the env steps and training wall-clock (evaluation excluded) until the mean
return first reaches the goal, the throughput (env steps/s, updates included) and the peak
resident memory. Each run is a fresh child process (one at a time), so memory is per run.
Goals, budgets and evaluation intervals default per preset (``GOALS``).

    python experiments/benchmark_ppo.py [--env cartpole] [--seeds 0 1 2 3 4]
        [--sb3-seeds 0 ...] [--env-steps N] [--eval-interval N] [--algos ppo sb3_ppo]
"""

import argparse
import concurrent.futures
import multiprocessing
import resource
import statistics
import sys
import time
import warnings
from dataclasses import dataclass

from benchmarking import fmt_reached, shipped_run, to_threshold

from il_lab.analysis.tables import markdown_table

FIRST_EVAL_SEED = 1_000_000  # the pipeline's eval.first_seed
# preset: (goal return, env-step budget, evaluation interval); the goals of the env-presets
# issue (rl-zoo's published PPO returns, rounded down), CartPole's 475 of issue 3.
GOALS = {
    "cartpole": (475.0, 100_000, 5_000),
    "pendulum": (-200.0, 100_000, 10_000),
    "lunarlander": (200.0, 1_000_000, 50_000),
    "lunarlander_continuous": (200.0, 1_000_000, 50_000),
    "hopper": (1900.0, 1_000_000, 50_000),
    "halfcheetah": (4600.0, 1_000_000, 50_000),
    "walker2d": (2800.0, 1_000_000, 50_000),
}


@dataclass(frozen=True)
class Result:
    algo: str
    seed: int
    steps_to_threshold: int | None
    seconds_to_threshold: float | None
    steps_run: int
    train_seconds: float
    best_return: float
    peak_rss_mb: float

    @property
    def throughput(self) -> float:
        return self.steps_run / self.train_seconds


def composed(
    preset: str, algo: str, env_steps: int, extra: tuple[str, ...] = ()
) -> tuple[str, dict]:
    """The env id and expert keys ``python run.py env=<preset> expert=<algo>`` would use."""
    budget = f"budget.expert_env_steps={env_steps}"
    overrides = [f"env={preset}", f"expert={algo}", budget, *extra]
    values = shipped_run(overrides, ["env", "expert"])
    expert = values["expert"]
    for key in ("_target_", "path", "seed"):
        expert.pop(key)
    return values["env"]["id"], expert


def run_one(
    preset: str,
    algo: str,
    seed: int,
    env_steps: int,
    interval: int,
    episodes: int,
    threshold: float,
    extra: tuple[str, ...] = (),
):
    """One training run in this (child) process; returns a ``Result``."""
    import torch

    torch.set_num_threads(1)
    # Off the clock for both: torch's one-time lazy imports (the first optimizer pulls in
    # torch._dynamo, about a second) are process start-up, not training.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    from il_lab.envs import EnvSpec
    from il_lab.evaluation import eval_seeds, evaluate

    env_id, hp = composed(preset, algo, env_steps, extra)
    env = EnvSpec(env_id)
    seeds = eval_seeds(FIRST_EVAL_SEED, episodes)
    reached: tuple[int, float] | None = None
    best = float("-inf")

    if algo == "ppo":
        from il_lab.rl import PPOHyperparameters, PPOTrainer

        clock = time.perf_counter()
        trainer = PPOTrainer(PPOHyperparameters(**hp), env=env, seed=seed, device="cpu")
        train_seconds = time.perf_counter() - clock
        while trainer.num_timesteps < env_steps:
            clock = time.perf_counter()
            trainer.learn(min(interval, env_steps - trainer.num_timesteps))
            train_seconds += time.perf_counter() - clock
            mean = evaluate(trainer.policy, env, seeds).mean
            best = max(best, mean)
            if mean >= threshold:
                reached = (trainer.num_timesteps, train_seconds)
                break
        steps_run = trainer.num_timesteps
        trainer.close()
    else:
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import BaseCallback

        from il_lab.experts.sb3 import acting_policy, make_training_env
        from il_lab.experts.sb3_ppo import SB3PPOExpert

        class EvalEvery(BaseCallback):
            """Evaluates right after an update (at a rollout's start), off the clock."""

            def __init__(self) -> None:
                super().__init__()
                self.next_eval = interval
                self.paused = 0.0
                self.done = False

            def _on_rollout_start(self) -> None:
                nonlocal best, reached
                if self.num_timesteps < self.next_eval or self.done:
                    return
                pause = time.perf_counter()
                self.next_eval = (self.num_timesteps // interval + 1) * interval
                mean = evaluate(acting_policy(self.model, venv), env, seeds).mean
                best = max(best, mean)
                if mean >= threshold:
                    reached = (self.num_timesteps, pause - clock - self.paused)
                    self.done = True
                self.paused += time.perf_counter() - pause

            def _on_step(self) -> bool:
                return not self.done

        clock = time.perf_counter()
        expert = SB3PPOExpert(**hp)
        venv = make_training_env(
            env, expert.n_envs, seed, expert.normalize_obs, expert.normalize_reward, expert.gamma
        )
        model = PPO(
            "MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **expert.algorithm_kwargs
        )
        callback = EvalEvery()
        model.learn(total_timesteps=env_steps, callback=callback)
        train_seconds = time.perf_counter() - clock - callback.paused
        if not callback.done:  # the final policy, evaluated like the others
            mean = evaluate(acting_policy(model, venv), env, seeds).mean
            best = max(best, mean)
            if mean >= threshold:
                reached = (model.num_timesteps, train_seconds)
        steps_run = model.num_timesteps
        venv.close()

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return Result(
        algo=algo,
        seed=seed,
        steps_to_threshold=reached[0] if reached else None,
        seconds_to_threshold=reached[1] if reached else None,
        steps_run=steps_run,
        train_seconds=train_seconds,
        best_return=best,
        peak_rss_mb=peak,
    )


TABLE_HEADER = [
    "expert",
    "seed",
    "env steps to threshold",
    "wall-clock s to threshold",
    "env steps run",
    "env steps/s",
    "best eval return",
    "peak RSS MB",
]


def table(results: list[Result]) -> str:
    rows = [
        [
            r.algo,
            str(r.seed),
            fmt_reached(r.steps_to_threshold, "d"),
            fmt_reached(r.seconds_to_threshold, ".2f"),
            str(r.steps_run),
            f"{r.throughput:,.0f}",
            f"{r.best_return:.1f}",
            f"{r.peak_rss_mb:.0f}",
        ]
        for r in results
    ]
    return markdown_table(TABLE_HEADER, rows, ["default"] + ["right"] * 7)


def summary(results: list[Result], algos: list[str], threshold: float) -> str:
    lines = []
    medians: dict[str, float] = {}
    for algo in algos:
        runs = [r for r in results if r.algo == algo]
        solved = [r for r in runs if r.seconds_to_threshold is not None]
        seconds = [to_threshold(r.seconds_to_threshold) for r in runs]
        steps = [to_threshold(r.steps_to_threshold) for r in runs]
        medians[algo] = statistics.median(seconds)
        lines.append(
            f"- {algo}: reached {threshold:g} in {len(solved)}/{len(runs)} seeds; median "
            f"{statistics.median(seconds):.2f} s and {statistics.median(steps):,.0f} env steps; "
            f"median throughput {statistics.median(r.throughput for r in runs):,.0f} env steps/s; "
            f"max peak RSS {max(r.peak_rss_mb for r in runs):.0f} MB"
        )
    if {"ppo", "sb3_ppo"} <= medians.keys() and medians["sb3_ppo"] > 0:
        ratio = medians["ppo"] / medians["sb3_ppo"]
        lines.append(
            f"- median wall-clock to threshold, ppo / sb3_ppo: {ratio:.3f} "
            f"({'meets' if ratio <= 1 / 3 else 'misses'} the <= 1/3 goal)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="cartpole", choices=sorted(GOALS), help="env preset")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--sb3-seeds", type=int, nargs="+", help="SB3's seeds (default: --seeds)")
    parser.add_argument("--env-steps", type=int, help="budget per run (default: the preset's)")
    parser.add_argument("--eval-interval", type=int, help="env steps (default: the preset's)")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--threshold", type=float, help="goal return (default: the preset's)")
    parser.add_argument("--algos", nargs="+", default=["ppo", "sb3_ppo"])
    parser.add_argument(
        "--set", nargs="*", default=[], help="overrides for every run, e.g. expert.n_epochs=10"
    )
    args = parser.parse_args(argv)
    goal, budget, interval = GOALS[args.env]
    args.threshold = goal if args.threshold is None else args.threshold
    args.env_steps = budget if args.env_steps is None else args.env_steps
    args.eval_interval = interval if args.eval_interval is None else args.eval_interval
    sb3_seeds = args.seeds if args.sb3_seeds is None else args.sb3_seeds

    jobs = [
        (algo, seed)
        for seed in sorted(set(args.seeds) | set(sb3_seeds))
        for algo in args.algos
        if seed in (sb3_seeds if algo == "sb3_ppo" else args.seeds)
    ]
    results: list[Result] = []
    context = multiprocessing.get_context("spawn")
    for algo, seed in jobs:  # one child at a time: a fresh process per run, for peak memory
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            result = pool.submit(
                run_one,
                args.env,
                algo,
                seed,
                args.env_steps,
                args.eval_interval,
                args.eval_episodes,
                args.threshold,
                tuple(args.set),
            ).result()
        results.append(result)
        print(f"{args.env}: {table([result]).splitlines()[-1]}", file=sys.stderr, flush=True)
    results.sort(key=lambda r: (args.algos.index(r.algo), r.seed))
    print(
        f"env={args.env}: env steps and training wall-clock (evaluation excluded) until the "
        f"deterministic policy's mean return over {args.eval_episodes} episodes reaches "
        f">= {args.threshold:g}; evaluated every {args.eval_interval} env steps; budget "
        f"{args.env_steps} env steps; torch threads 1.\n"
    )
    print(table(results))
    print()
    print(summary(results, args.algos, args.threshold))


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    main()
