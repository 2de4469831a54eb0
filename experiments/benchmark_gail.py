"""GAIL (``learner=gail``) on CartPole-v1: env steps and wall-clock until it imitates the expert.

For each seed: train our PPO expert with the shipped ``conf/expert/ppo.yaml`` (cached under
``--cache-dir``, keyed like the pipeline's: env, expert settings, seed), roll it out
deterministically for ``--demo-episodes`` episodes, then run GAIL with the shipped
``conf/learner/gail.yaml`` (plus ``--set`` overrides). Every ``--eval-interval`` generator env
steps the deterministic policy is evaluated on ``--eval-episodes`` fixed seeds (the pipeline's
evaluation seeds); the table gives the env steps and the GAIL wall-clock (construction and
training; expert, demonstrations and evaluation excluded) until the mean return first reaches
``--threshold``. "action agreement" is how often the final deterministic policy picks the
expert's action in the expert's own states on the evaluation seeds: on CartPole a positive
reward alone (a frozen discriminator, ``--set discriminator.learning_rate=1e-12``) also balances
the pole, at about 0.5 agreement, so this column shows the imitation. One process, one run at a
time, one torch thread.

    python experiments/benchmark_gail.py [--seeds 0 1 2 3 4] [--env-steps 150000]
        [--eval-interval 4096] [--set reward=airl discriminator.learning_rate=3e-4 ...]
    # the CartPole write-up's setting: 200-step episodes, one expert episode
    python experiments/benchmark_gail.py --max-episode-steps 200 --demo-episodes 1 \
        --threshold 195
"""

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from benchmarking import ROOT, fmt_reached, shipped, to_threshold

from il_lab.analysis.tables import markdown_table

ENV_ID = "CartPole-v1"
FIRST_EVAL_SEED = 1_000_000  # the pipeline's eval.first_seed
EXPERT_ENV_STEPS = 100_000  # the pipeline's budget.expert_env_steps


@dataclass(frozen=True)
class Result:
    seed: int
    expert_return: float
    demo_transitions: int
    steps_to_threshold: int | None
    seconds_to_threshold: float | None
    steps_run: int
    train_seconds: float
    best_return: float
    final_return: float
    agreement: float


def expert_and_demos(seed: int, max_episode_steps: int | None, n_episodes: int, cache_dir: Path):
    """The pipeline's ``expert=ppo`` for this seed (cached) and its deterministic episodes."""
    import torch

    from il_lab.envs import EnvSpec
    from il_lab.experts.ppo import PPOExpert
    from il_lab.rollout import rollout
    from il_lab.runtime.cache import ArtifactCache
    from il_lab.runtime.identity import demo_seeds, expert_identity

    env = EnvSpec(ENV_ID, max_episode_steps)
    # the expert node python run.py expert=ppo expert.seed=<seed> composes, so the pipeline's
    # cache entry and this one are the same
    values = {**shipped("expert", "ppo", total_env_steps=EXPERT_ENV_STEPS), "seed": seed}
    expert_trainer = PPOExpert(**{k: v for k, v in values.items() if k != "_target_"})
    env_config = {"id": ENV_ID, "max_episode_steps": max_episode_steps}
    key = expert_identity(env_config, values, expert_trainer, ENV_ID)
    cpu = torch.device("cpu")

    def build(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as tb:
            policy = expert_trainer.train(env, seed=seed, tb_dir=Path(tb), device=cpu)
        expert_trainer.save(policy, tmp)

    path, _ = ArtifactCache(cache_dir).get_or_build("experts", key, ".pt", build)
    expert = expert_trainer.load(path, env, cpu)
    return env, expert, rollout(expert, env, demo_seeds(seed, n_episodes))


def run_one(seed: int, args: argparse.Namespace) -> Result:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from il_lab.evaluation import eval_seeds, evaluate
    from il_lab.interfaces import LearnerInputs
    from il_lab.rollout import rollout
    from il_lab.runtime.seeding import seed_everything

    env, expert, demos = expert_and_demos(
        seed, args.max_episode_steps, args.demo_episodes, args.cache_dir
    )
    seeds = eval_seeds(FIRST_EVAL_SEED, args.eval_episodes)
    expert_runs = rollout(expert, env, seeds)  # held-out expert episodes (the eval seeds)
    expert_return = float(np.mean([t.episode_return for t in expert_runs]))
    expert_obs = np.concatenate([t.obs[:-1] for t in expert_runs])
    expert_acts = np.concatenate([t.acts for t in expert_runs])

    cfg = OmegaConf.load(ROOT / "conf" / "learner" / "gail.yaml")
    cfg.total_env_steps = args.env_steps  # replaces ${budget.learner_env_steps}
    cfg.merge_with_dotlist(args.set)
    rng = seed_everything(seed)
    clock = time.perf_counter()
    gail = instantiate(cfg, _partial_=True)(
        inputs=LearnerInputs(env=env, demonstrations=demos, rng=rng)
    )
    train_seconds = time.perf_counter() - clock
    reached: tuple[int, float] | None = None
    best = final = float("-inf")
    try:
        while gail.env_steps < args.env_steps:
            clock = time.perf_counter()
            gail.run_rounds(min(args.eval_interval, args.env_steps - gail.env_steps))
            train_seconds += time.perf_counter() - clock
            final = evaluate(gail.policy, env, seeds).mean
            best = max(best, final)
            if args.verbose:
                print(f"  seed {seed}: {gail.env_steps} steps, return {final:.1f}", file=sys.stderr)
            if final >= args.threshold and reached is None:
                reached = (gail.env_steps, train_seconds)
                if not args.run_full_budget:
                    break
    finally:
        gail.close()
    agreement = float(np.mean(gail.policy.predict(expert_obs)[0] == expert_acts))
    return Result(
        seed=seed,
        expert_return=expert_return,
        demo_transitions=sum(len(t) for t in demos),
        steps_to_threshold=reached[0] if reached else None,
        seconds_to_threshold=reached[1] if reached else None,
        steps_run=gail.env_steps,
        train_seconds=train_seconds,
        best_return=best,
        final_return=final,
        agreement=agreement,
    )


TABLE_HEADER = [
    "seed",
    "expert return",
    "demo transitions",
    "env steps to threshold",
    "wall-clock s to threshold",
    "env steps run",
    "train s",
    "best eval return",
    "last eval return",
    "action agreement",
]


def table(results: list[Result]) -> str:
    rows = [
        [
            str(r.seed),
            f"{r.expert_return:.1f}",
            str(r.demo_transitions),
            fmt_reached(r.steps_to_threshold, ",d"),
            fmt_reached(r.seconds_to_threshold, ".2f"),
            f"{r.steps_run:,d}",
            f"{r.train_seconds:.2f}",
            f"{r.best_return:.1f}",
            f"{r.final_return:.1f}",
            f"{r.agreement:.3f}",
        ]
        for r in results
    ]
    return markdown_table(TABLE_HEADER, rows, ["right"] * len(TABLE_HEADER))


def summary(results: list[Result], threshold: float) -> str:
    solved = [r for r in results if r.seconds_to_threshold is not None]
    seconds = statistics.median(to_threshold(r.seconds_to_threshold) for r in results)
    steps = statistics.median(to_threshold(r.steps_to_threshold) for r in results)
    throughput = statistics.median(r.steps_run / r.train_seconds for r in results)
    last = statistics.median(r.final_return for r in results)
    agreement = statistics.median(r.agreement for r in results)
    return (
        f"- reached {threshold:g} in {len(solved)}/{len(results)} seeds; median {seconds:.2f} s "
        f"and {steps:,.0f} generator env steps to it; median throughput {throughput:,.0f} env "
        f"steps/s (discriminator included); median last eval return {last:.1f}; median action "
        f"agreement with the expert {agreement:.3f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--env-steps", type=int, default=150_000, help="generator budget")
    parser.add_argument("--eval-interval", type=int, default=4096, help="generator env steps")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--demo-episodes", type=int, default=10)
    parser.add_argument("--max-episode-steps", type=int, default=None)
    parser.add_argument(
        "--set", nargs="*", default=[], help="overrides of conf/learner/gail.yaml, key=value"
    )
    parser.add_argument(
        "--run-full-budget", action="store_true", help="keep training after the threshold"
    )
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "benchmark_gail")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    # Off the clock: torch's one-time lazy imports (the first optimizer pulls in torch._dynamo).
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])

    results = []
    for seed in args.seeds:
        result = run_one(seed, args)
        results.append(result)
        print(
            f"seed {seed}: {fmt_reached(result.steps_to_threshold, 'd')} steps, "
            f"{fmt_reached(result.seconds_to_threshold, '.2f')} s, best {result.best_return:.1f}",
            file=sys.stderr,
            flush=True,
        )
    cap = args.max_episode_steps or "the env's own (500)"
    print(
        f"{ENV_ID} (episode cap: {cap}), GAIL from {args.demo_episodes} expert episode(s) of "
        f"our PPO expert ({EXPERT_ENV_STEPS:,d} steps, per seed): generator env steps and "
        f"GAIL wall-clock (evaluation excluded) until the deterministic policy's mean return "
        f"over {args.eval_episodes} episodes reaches >= {args.threshold:g}; evaluated every "
        f"{args.eval_interval} generator env steps; budget {args.env_steps:,d}; torch threads 1; "
        f"overrides: {' '.join(args.set) or 'none'}.\n"
    )
    print(table(results))
    print()
    print(summary(results, args.threshold))


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    main()
