"""The one supervised training loop every BC-style learner shares (BC, and BC inside others).

The data set lives in memory as tensors on the training device; each step draws a shuffled
minibatch by index, which is far cheaper than a per-sample DataLoader for data this small.
A held-out split is scored every ``val_interval`` steps; training stops early after ``patience``
validations without improvement, and the best weights are restored.

``precision="bf16"`` runs the forward pass under ``torch.autocast`` in bfloat16 (CPU or CUDA, from
the policy's device): matrix products in bfloat16, float32 master weights and optimizer state,
the loss computed from float32 outputs, so the logged loss is float32 as in ``fp32``. It pays off
for the large Transformer (``experiments/benchmark_precision.py``); small MLPs gain nothing.
"""

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from il_lab.policies import StackedObsPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitTags:
    """TensorBoard tag names, so the same loop logs BC as ``bc`` and an inverse model as ``idm``."""

    train_loss: str = "train/bc_loss"
    train_accuracy: str | None = "train/accuracy"
    val_loss: str | None = "val/bc_loss"
    val_accuracy: str | None = None


BC_TAGS = FitTags()

FUSED_ADAMW_DEVICES = ("cpu", "cuda")

# The root config key ``precision``: the autocast dtype of the forward pass (None: plain float32).
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The forward pass's autocast context for ``precision`` (disabled for ``fp32``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; allowed: one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


@dataclass(frozen=True)
class FitResult:
    gradient_steps: int
    train_loss: float
    val_loss: float | None
    stopped_early: bool


def fit(
    policy: StackedObsPolicy,
    windows: np.ndarray,
    actions: np.ndarray,
    *,
    gradient_steps: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    val_fraction: float,
    val_interval: int,
    patience: int,
    rng: np.random.Generator,
    logger: SummaryWriter | None,
    step_offset: int = 0,
    tags: FitTags = BC_TAGS,
    desc: str = "BC",
    resume: dict | None = None,
    on_validation: Callable[[dict], None] | None = None,
    precision: str = "fp32",
) -> FitResult:
    """Train ``policy`` on ``windows (N, K, obs_dim)`` -> ``actions (N, ...)``.

    ``policy`` is a ``StackedObsPolicy`` or any module like it: ``policy(windows)`` gives the
    action distribution's parameters, ``policy.head.loss``/``accuracy`` score them (GAIL's
    warm start passes its PPO actor this way).

    Logs ``tags`` (by default ``train/bc_loss``, ``train/accuracy`` for discrete actions and
    ``val/bc_loss``) every ``val_interval`` steps against the global gradient step
    ``step_offset + step``; the training figures are means over the steps since the last log.

    After each validation that does not stop training, ``on_validation(state)`` receives the
    loop's whole state (weights, optimizer, split, shuffling generator, early-stopping record);
    ``fit(..., resume=state)`` on the same data continues from it exactly as if never stopped,
    provided ``rng`` is in the state it had then (the loop draws from it only at the start).
    """
    device = policy.device
    x = torch.as_tensor(windows, dtype=torch.float32, device=device)  # (N, K, obs_dim)
    y = torch.as_tensor(actions, device=device)  # (N, *action_shape)
    order = rng.permutation(len(x)) if resume is None else resume["order"]
    n_val = int(len(x) * val_fraction) if len(x) > 1 else 0
    val_idx = torch.as_tensor(order[:n_val], device=device)
    train_idx = torch.as_tensor(order[n_val:], device=device)
    x_val, y_val = x[val_idx], y[val_idx]
    x_train, y_train = x[train_idx], y[train_idx]
    n_train = len(x_train)
    batch_size = min(batch_size, n_train)
    steps_per_epoch = max(1, n_train // batch_size)

    optimizer = torch.optim.AdamW(
        policy.parameters(),
        lr=learning_rate,
        weight_decay=weight_decay,
        # One fused kernel instead of ~10 ops per parameter tensor: on the report's Transformer
        # (1 thread) 58.7 -> 49.0 ms/step in fp32, 41.1 -> 35.1 in bf16.
        fused=device.type in FUSED_ADAMW_DEVICES,
    )
    generator = torch.Generator(device="cpu")
    best_val, best_state, bad_validations = math.inf, None, 0
    val_loss, stopped_early, loss_value = None, False, math.nan
    step = 0
    if resume is None:
        generator.manual_seed(int(rng.integers(2**31)))
    else:
        generator.set_state(resume["generator"])
        policy.load_state_dict(resume["policy"])
        optimizer.load_state_dict(resume["optimizer"])
        permutation = resume["permutation"].to(device)
        step, val_loss, loss_value = resume["step"], resume["val_loss"], resume["loss_value"]
        best_val, best_state = resume["best_val"], resume["best_state"]
        bad_validations = resume["bad_validations"]
    policy.train()
    interval_loss, interval_accuracy, interval_steps = 0.0, 0.0, 0
    bar = tqdm(total=gradient_steps, initial=step, desc=desc, leave=False, mininterval=1.0)
    while step < gradient_steps:
        if step % steps_per_epoch == 0:
            permutation = torch.randperm(n_train, generator=generator).to(device)
        start = (step % steps_per_epoch) * batch_size
        batch = permutation[start : start + batch_size]
        with autocast(device, precision):
            params = policy(x_train[batch])
        # The loss from float32 outputs, whatever the forward pass ran in: it is what is logged.
        params = params.float()
        loss = policy.head.loss(params, y_train[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        bar.update()
        # Summed as tensors so that logging reports the interval's mean, not one noisy batch.
        interval_loss = interval_loss + loss.detach()
        accuracy = policy.head.accuracy(params.detach(), y_train[batch])
        interval_accuracy = None if accuracy is None else interval_accuracy + accuracy
        interval_steps += 1

        if step % val_interval == 0 or step == gradient_steps:
            loss_value = interval_loss.item() / interval_steps
            global_step = step_offset + step
            if logger is not None:
                logger.add_scalar(tags.train_loss, loss_value, global_step)
                if interval_accuracy is not None and tags.train_accuracy:
                    mean_accuracy = interval_accuracy.item() / interval_steps
                    logger.add_scalar(tags.train_accuracy, mean_accuracy, global_step)
            interval_loss, interval_accuracy, interval_steps = 0.0, 0.0, 0
            if n_val:
                val_loss, val_accuracy = _score(policy, x_val, y_val, batch_size, precision)
                if logger is not None and tags.val_loss:
                    logger.add_scalar(tags.val_loss, val_loss, global_step)
                if logger is not None and tags.val_accuracy and val_accuracy is not None:
                    logger.add_scalar(tags.val_accuracy, val_accuracy, global_step)
                bar.set_postfix(loss=f"{loss_value:.4f}", val=f"{val_loss:.4f}")
                if val_loss < best_val - 1e-6:
                    best_val, bad_validations = val_loss, 0
                    best_state = copy.deepcopy(policy.state_dict())
                else:
                    bad_validations += 1
                    if bad_validations >= patience:
                        stopped_early = step < gradient_steps
                        break
            if on_validation is not None:
                on_validation(
                    {
                        "step": step,
                        "order": order,
                        "generator": generator.get_state(),
                        "permutation": permutation.cpu(),
                        "policy": policy.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "best_val": best_val,
                        "best_state": best_state,
                        "bad_validations": bad_validations,
                        "val_loss": val_loss,
                        "loss_value": loss_value,
                    }
                )
    bar.close()
    if best_state is not None:
        policy.load_state_dict(best_state)
    policy.eval()
    if stopped_early:
        log.info("%s stopped early after %d steps (best val loss %.4f)", desc, step, best_val)
    return FitResult(step, loss_value, None if best_val == math.inf else best_val, stopped_early)


@torch.no_grad()
def _score(
    policy: StackedObsPolicy, x: torch.Tensor, y: torch.Tensor, batch_size: int, precision: str
) -> tuple[float, float | None]:
    """Mean loss and (discrete actions) accuracy on held-out data."""
    policy.eval()
    loss, correct = 0.0, 0.0
    for start in range(0, len(x), 4 * batch_size):
        chunk = slice(start, start + 4 * batch_size)
        with autocast(policy.device, precision):
            params = policy(x[chunk])
        params = params.float()
        loss += policy.head.loss(params, y[chunk]).item() * len(x[chunk])
        accuracy = policy.head.accuracy(params, y[chunk])
        correct = None if accuracy is None else correct + accuracy.item() * len(x[chunk])
    policy.train()
    return loss / len(x), None if correct is None else correct / len(x)
