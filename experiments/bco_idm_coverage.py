"""What limits BCO on gait envs: the inverse-dynamics model's error on the expert's transitions,
by where its training data comes from.

Rolls a published expert out deterministically for ``--test-steps`` env steps (its actions,
which the env executes clipped to the bounds, are the truth), then fits BCO's inverse-dynamics
model (``il_lab.learners.bco``: one frame ``[s, s' - s]``, per-dimension normalization, a
Gaussian head) on ``--train-steps`` transitions from each source:

- ``uniform``: actions drawn uniformly from the action space (BCO's pre-demonstration phase);
- ``expert+N(0, sigma)``: the expert's action plus Gaussian noise of ``sigma`` times the half
  range, clipped (the data a policy near the expert gathers with exploration noise).

and prints, per source and model, the mean squared error of the inferred actions on the expert's
transitions, also as a fraction of a constant guess's (the actions' variance). One process, one
torch thread; each fit is timed.

    python experiments/bco_idm_coverage.py --env Hopper-v5 \
        --expert experiments/inputs/hopper/expert_ppo_seed1.pt [--sigmas 0.3 1.0] \
        [--widths 64 256] [--gradient-steps 3000] [--train-steps 66000] [--seed 0]
"""

import argparse
import functools
import time

import numpy as np
import torch

from il_lab.analysis.tables import markdown_row, markdown_table
from il_lab.envs import EnvSpec
from il_lab.interaction import Actor, EnvStepper
from il_lab.learners.bco import build_idm, idm_inputs, perturbed
from il_lab.learners.supervised import fit
from il_lab.networks import MLPNet
from il_lab.rl.policy import PPOPolicy


def gather(env: EnvSpec, expert: PPOPolicy, n_steps: int, sigma: float | None, seed: int):
    """``n_steps`` transitions: the expert's action (plus noise ``sigma``), or uniform if None."""
    rng = np.random.default_rng(seed)
    space = env.action_space
    space.seed(seed)
    actor = Actor(expert, deterministic=True)

    def act(obs: np.ndarray, episode_start: bool) -> np.ndarray:
        action = actor(obs, episode_start)
        return space.sample() if sigma is None else perturbed(action, sigma, space, rng)

    stepper = EnvStepper(env, rng)
    try:
        steps = stepper.step(n_steps, act)
    finally:
        stepper.close()
    return steps


def idm_error(env, train, test, width: int, gradient_steps: int, seed: int) -> tuple[float, float]:
    """The model's mean squared error on ``test``'s actions after fitting on ``train``."""
    torch.manual_seed(seed)
    network = functools.partial(MLPNet, hidden_sizes=[width, width], activation="relu")
    idm = build_idm(network, env)
    inputs = idm_inputs(train.obs, train.next_obs)
    idm.fit_normalization(inputs[:, 0])
    started = time.perf_counter()
    fit(
        idm,
        inputs,
        train.acts,
        gradient_steps=gradient_steps,
        batch_size=256,
        learning_rate=1e-3,
        weight_decay=0.0,
        val_fraction=0.1,
        val_interval=gradient_steps,
        patience=gradient_steps,
        rng=np.random.default_rng(seed),
        logger=None,
        desc=f"inverse dynamics {width}x{width}",
    )
    seconds = time.perf_counter() - started
    inferred = idm.act_on_windows(idm_inputs(test.obs, test.next_obs))
    return float(np.mean((inferred - test.acts) ** 2)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--expert", required=True, help="an il_lab PPO expert (.pt)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.3, 1.0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--gradient-steps", type=int, default=3000)
    parser.add_argument("--train-steps", type=int, default=66_000)
    parser.add_argument("--test-steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    env = EnvSpec(args.env)
    expert = PPOPolicy.load(args.expert, env, "cpu")
    test = gather(env, expert, args.test_steps, 0.0, args.seed + 1)
    constant = float(np.mean((test.acts - test.acts.mean(0)) ** 2))
    print(f"{args.env}: expert returns {[round(r) for r in test.episode_returns]}")
    sources = {"uniform": None, **{f"expert+N(0, {s})": s for s in args.sigmas}}
    rows = []
    for name, sigma in sources.items():
        train = gather(env, expert, args.train_steps, sigma, args.seed)
        returns = train.episode_returns
        mean_return = f"{np.mean(returns):.0f}" if returns else "-"
        for width in args.widths:
            mse, seconds = idm_error(env, train, test, width, args.gradient_steps, args.seed)
            rows.append(
                [
                    name,
                    mean_return,
                    f"{width}x{width}",
                    f"{mse:.4f}",
                    f"{mse / constant:.2f}",
                    f"{seconds:.0f}",
                ]
            )
            print(markdown_row(rows[-1]), flush=True)
    print(
        f"\nconstant guess: {constant:.4f} ({args.gradient_steps} gradient steps per fit, "
        f"{args.train_steps} training transitions, {args.test_steps} expert transitions)\n"
    )
    print(markdown_table(HEADER, rows))


HEADER = [
    "training data",
    "its episodes' mean return",
    "model",
    "MSE on the expert's actions",
    "of a constant guess",
    "fit s",
]

if __name__ == "__main__":
    main()
