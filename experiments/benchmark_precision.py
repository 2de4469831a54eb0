"""fp32 against bf16 (``precision=bf16``) for the supervised loop, on the report's Transformer.

Trains the network of ``conf/experiment/report_transformer_bc.yaml`` (4 stacked observations,
d_model 256, 4 heads, 3 layers, dropout 0.1, batch 128, lr 3e-4) for ``--steps`` gradient steps
with ``il_lab.learners.supervised.fit`` in each precision. Speed: the median milliseconds per
step over ``--rounds`` blocks of ``--block`` steps, fp32 and bf16 blocks alternating (after one
warm-up round), so load from other processes on a shared machine hits both alike; with one
thread the CPU milliseconds per step are the figure a busy machine cannot inflate. Quality: one
uninterrupted run of ``--steps`` per precision from the same initial weights and minibatch order;
the training loss (mean over its last fifth) and the loss on every transition, in float32. The
same for BC's default MLP (64x64, batch 256, the size of BCO's inverse-dynamics model and GAIL's
discriminator), to show where bf16 does not pay.

    nice -n 10 python experiments/benchmark_precision.py [--steps 1000] [--threads 2]
        [--rounds 5] [--block 50] [--demos <.npz | minari:<id>>]

Without ``--demos`` the data are 60 episodes of a hand-written CartPole controller.
"""

import argparse
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from il_lab.datasets.sources import load_trajectories
from il_lab.datasets.trajectories import windows_and_actions
from il_lab.envs import EnvSpec
from il_lab.learners.bc import build_policy
from il_lab.learners.supervised import fit
from il_lab.networks import MLPNet, TransformerNet
from il_lab.rollout import rollout

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = EnvSpec("CartPole-v1")


class BalancingController:
    """Holds CartPole's pole for all 500 steps: stand-in demonstrations."""

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return (3 * observation[:, 2] + observation[:, 3] > 0).astype(np.int64), state


def report_setting() -> dict:
    preset = OmegaConf.load(ROOT / "conf" / "experiment" / "report_transformer_bc.yaml")
    return OmegaConf.to_container(preset.learner)


def timed_fit(policy, windows, actions, steps, precision, seed, settings):
    """``fit``; returns its wall-clock and CPU seconds and its result."""
    start, cpu_start = time.perf_counter(), time.process_time()
    result = fit(
        policy,
        windows,
        actions,
        gradient_steps=steps,
        val_interval=max(1, steps // 5),
        rng=np.random.default_rng(seed),
        weight_decay=0.0,
        val_fraction=0.0,
        patience=1,
        logger=None,
        precision=precision,
        **settings,
    )
    return time.perf_counter() - start, time.process_time() - cpu_start, result


def compare(network, context_len: int, settings: dict, demos, args) -> dict[str, dict]:
    """Per precision: median ms/step over interleaved blocks, then loss after ``args.steps``."""
    windows, actions = windows_and_actions(demos, context_len)
    precisions = ("fp32", "bf16")

    def fresh():
        torch.manual_seed(0)
        return build_policy(network, CARTPOLE, context_len, demos, torch.device("cpu"))

    # Speed: fp32 and bf16 blocks alternate, so a neighbour's load hits both alike; the first
    # round is warm-up (oneDNN builds its kernels on first use) and is not counted.
    scratch = {p: fresh() for p in precisions}
    block_ms = {p: [] for p in precisions}
    block_cpu_ms = {p: [] for p in precisions}
    for round_ in range(args.rounds + 1):
        for p in precisions:
            seconds, cpu, _ = timed_fit(
                scratch[p], windows, actions, args.block, p, round_, settings
            )
            if round_ > 0:
                block_ms[p].append(1000 * seconds / args.block)
                block_cpu_ms[p].append(1000 * cpu / args.block)

    # Quality: one uninterrupted run per precision from the same weights and minibatch order.
    out = {}
    for p in precisions:
        policy = fresh()
        seconds, _, result = timed_fit(policy, windows, actions, args.steps, p, 0, settings)
        out[p] = {
            "ms_per_step": float(np.median(block_ms[p])),
            "ms_range": (min(block_ms[p]), max(block_ms[p])),
            "cpu_ms_per_step": float(np.median(block_cpu_ms[p])),
            "run_s": seconds,
            "train_loss": result.train_loss,
            "loss": mean_loss(policy, windows, actions),
        }
    return out


@torch.no_grad()
def mean_loss(policy, windows: np.ndarray, actions: np.ndarray, chunk: int = 4096) -> float:
    """The loss on every transition, in float32 (the policy is in eval mode after ``fit``)."""
    x, y = torch.as_tensor(windows), torch.as_tensor(actions)
    total = 0.0
    for i in range(0, len(x), chunk):
        total += policy.head.loss(policy(x[i : i + chunk]), y[i : i + chunk]).item() * len(
            x[i : i + chunk]
        )
    return total / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5, help="timed blocks per precision")
    parser.add_argument("--block", type=int, default=50, help="gradient steps per timed block")
    parser.add_argument("--threads", type=int, default=2, help="the report preset uses 2")
    parser.add_argument("--demos", help="an .npz or minari:<id> of CartPole-v1 demonstrations")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.demos:
        demos = load_trajectories(args.demos, CARTPOLE, key="--demos")
    else:
        demos = rollout(BalancingController(), CARTPOLE, list(range(60)))
    n = sum(len(t) for t in demos)
    print(
        f"{len(demos)} episodes, {n} transitions; {args.steps} timed steps, "
        f"{args.threads} threads, torch {torch.__version__}\n"
    )

    report = report_setting()
    net = report["network"]
    transformer = partial(
        TransformerNet,
        d_model=net["d_model"],
        n_heads=net["n_heads"],
        n_layers=net["n_layers"],
        dim_feedforward=net["dim_feedforward"],
        dropout=net["dropout"],
    )
    cases = {
        f"report Transformer (d_model {net['d_model']}, {net['n_layers']} layers, batch "
        f"{report['batch_size']})": (
            transformer,
            report["context_len"],
            {"batch_size": report["batch_size"], "learning_rate": report["learning_rate"]},
        ),
        "MLP 64x64 (batch 256)": (
            partial(MLPNet, hidden_sizes=[64, 64]),
            1,
            {"batch_size": 256, "learning_rate": 1e-3},
        ),
    }
    print(
        f"| network | precision | ms/step (median of {args.rounds} x {args.block}; range) "
        "| CPU ms/step (median) "
        f"| {args.steps} steps (s) | train loss (last 20%) | loss on all data (fp32) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (network, context_len, settings) in cases.items():
        for p, r in compare(network, context_len, settings, demos, args).items():
            low, high = r["ms_range"]
            print(
                f"| {name} | {p} | {r['ms_per_step']:.2f} ({low:.2f}-{high:.2f}) "
                f"| {r['cpu_ms_per_step']:.2f} "
                f"| {r['run_s']:.1f} | {r['train_loss']:.4f} | {r['loss']:.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
