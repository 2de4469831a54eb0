"""TensorBoard writers, the documented tag names, and ``metrics.json``.

Every tag a stage writes is listed here (and in docs/run_folder.md); a test checks a smoke run
against it.
"""

import json
import math
import os
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

# What Stable-Baselines3's PPO writes into tb/expert (our own PPO uses the same names).
EXPERT_TAGS = frozenset(
    {
        "rollout/ep_rew_mean",
        "rollout/ep_len_mean",
        "time/fps",
        "train/approx_kl",
        "train/clip_fraction",
        "train/clip_range",
        "train/entropy_loss",
        "train/explained_variance",
        "train/learning_rate",
        "train/loss",
        "train/policy_gradient_loss",
        "train/value_loss",
    }
)
# Final evaluation, written by the pipeline into tb/learner with the hyperparameters.
EVAL_TAGS = frozenset({"eval/return_mean", "eval/return_std", "eval/normalized_score"})
SCORE_TAG = "eval/normalized_score"  # absent where the score is null (expert no better than random)
# What each learner (by its config name) writes into tb/learner while training; tags that only
# apply to discrete actions (accuracies) or need a finished episode (rollout/*) may be absent.
_BC = frozenset({"data/n_transitions", "train/bc_loss", "train/accuracy", "val/bc_loss"})
LEARNER_TAGS = {
    "mlp_bc": _BC,
    "transformer_bc": _BC,
    "dagger": frozenset(
        {
            "data/n_transitions",
            "train/bc_loss",
            "train/accuracy",
            "train/beta",
            "rollout/ep_rew_mean",
        }
    ),
    "bco": _BC
    | {
        "train/idm_loss",
        "train/idm_accuracy",  # Discrete actions: held-out accuracy
        "val/idm_loss",  # Box actions: held-out negative log-likelihood
        "data/inferred_action_agreement",  # Discrete: inferred == the file's action (diagnostic)
        "data/inferred_action_mse",  # Box: mean squared error against the file's (diagnostic)
        "rollout/ep_rew_mean",
    },
    # PPO's own tags (the generator, env-reward rollout/ep_rew_mean included), the
    # discriminator's, and train/bc_loss once at step 0 when bc_warm_start_steps > 0.
    "gail": EXPERT_TAGS
    | {
        "train/disc_loss",
        "train/disc_acc_expert",
        "train/disc_acc_policy",
        "train/disc_reward_mean",
        "train/disc_absorbing_reward",  # with absorbing states: the absorbing state's reward
        "train/bc_loss",
    },
    # GAIfO: GAIL's tags; no BC warm start, so never train/bc_loss
    "gaifo": EXPERT_TAGS
    | {
        "train/disc_loss",
        "train/disc_acc_expert",
        "train/disc_acc_policy",
        "train/disc_reward_mean",
        "train/disc_absorbing_reward",
    },
    # DAC: SAC's own tags (il_lab.rl.sac.SAC_TAGS; train/ent_coef_loss only with a learned
    # alpha) and GAIL's discriminator tags, every tag against env steps; train/bc_loss once at
    # step 0 when bc_warm_start_steps > 0, and with SAC's tags when bc_weight > 0
    "dac": frozenset(
        {
            "rollout/ep_rew_mean",
            "rollout/ep_len_mean",
            "time/fps",
            "train/actor_loss",
            "train/critic_loss",
            "train/ent_coef",
            "train/ent_coef_loss",
            "train/disc_loss",
            "train/disc_acc_expert",
            "train/disc_acc_policy",
            "train/disc_reward_mean",
            "train/disc_absorbing_reward",
            "train/disc_reward_std",  # with normalize_reward: the reward's divisor
            "train/disc_absorbing_floor",  # with absorbing_floor_quantile
            "train/bc_loss",
        }
    ),
}

METRICS_KEYS = (
    "env",
    "expert",
    "learner",
    "seed",
    "libraries",  # the versions that determine the numbers: a figure says which install made it
    "expert/eval/return_mean",
    "random/eval/return_mean",
    "learner/eval/return_mean",
    "learner/eval/return_std",
    "learner/eval/returns",
    "learner/eval/normalized_score",  # null when the expert is no better than random
    "learner/eval/normalized_score_note",  # why the score is null (null when it is not)
    "expert/cache_hit",
    "demos/cache_hit",
    "demos/n_episodes",
    "demos/n_transitions",  # kept transitions: what the learner saw
    "demos/subsample",  # one transition kept every N steps (demos.subsample)
    "learner/env_steps",
    "learner/expert_queries",
    "learner/gradient_steps",
    "timing/expert_s",
    "timing/demos_s",
    "timing/learner_s",
    "timing/eval_s",
    "timing/video_s",
    "timing/total_s",
)


def write_hparams(writer: SummaryWriter, hyperparameters: dict, final_metrics: dict) -> None:
    """HParams summary into the writer's own folder (``add_hparams`` would make a new one)."""
    clean = {
        k: v if isinstance(v, int | float | str | bool) else str(v)
        for k, v in hyperparameters.items()
    }
    for summary in hparams(clean, final_metrics):
        writer.file_writer.add_summary(summary)
    for tag, value in final_metrics.items():
        writer.add_scalar(tag, value, 0)


def write_metrics_json(path: Path, metrics: dict) -> None:
    """Atomically: the file's presence means the run finished."""
    missing = set(METRICS_KEYS) - set(metrics)
    extra = set(metrics) - set(METRICS_KEYS)
    if missing or extra:
        raise ValueError(
            f"metrics.json keys differ from METRICS_KEYS: missing {missing}, extra {extra}"
        )
    tmp = path.with_name(path.name + ".tmp")
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
    tmp.write_text(json.dumps({k: clean[k] for k in METRICS_KEYS}, indent=2))
    os.replace(tmp, path)
