"""The stages of a run, each a function of typed inputs: expert, demonstrations, learner,
evaluation, video. ``il_lab.pipeline.run`` calls them in order; nothing here reads a config.
"""

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from il_lab.datasets.npz import save_trajectories
from il_lab.datasets.sources import load_trajectories, record_source
from il_lab.datasets.trajectories import Trajectory, cap_transitions, subsample
from il_lab.envs import EnvSpec
from il_lab.errors import ConfigError
from il_lab.evaluation import EvalResult, RandomPolicy, evaluate, normalized_score
from il_lab.interfaces import Expert, Learner, LearnerInputs, Policy
from il_lab.rollout import rollout
from il_lab.runtime.cache import ArtifactCache, content_key
from il_lab.runtime.checkpoint import Checkpoint
from il_lab.runtime.identity import demo_seeds, demos_identity
from il_lab.video import record_episode

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CheckpointPolicy:
    """Where and how often long loops save their state (``checkpoint`` in the config)."""

    enabled: bool
    expert_env_steps: int
    min_interval_s: float


def build_expert(
    trainer: Expert,
    env: EnvSpec,
    *,
    identity: dict,
    seed: int,
    cache: ArtifactCache,
    tb_dir: Path,
    device,
    checkpoints: CheckpointPolicy,
) -> tuple[Policy, bool]:
    """Load the expert ``identity`` names from the cache, or train and cache it.

    Returns the expert (always the cached copy, so a first and a second run act alike) and
    whether the cache had it.
    """
    key = content_key(identity)
    # Beside the cache entry, opened under its lock: whichever job builds the expert next (a
    # rerun, a requeued or another sweep job) continues from here.
    checkpoint_path = cache.checkpoint_path("experts", key)

    def train(tmp: Path) -> None:
        checkpoint = Checkpoint(
            checkpoint_path, config_hash=key, events_dir=tb_dir, enabled=checkpoints.enabled
        )
        policy = trainer.train(
            env,
            seed=seed,
            tb_dir=tb_dir,
            device=device,
            checkpoint=checkpoint,
            checkpoint_env_steps=checkpoints.expert_env_steps,
        )
        trainer.save(policy, tmp)

    path, hit = cache.get_or_build("experts", identity, trainer.file_suffix, train)
    checkpoint_path.unlink(missing_ok=True)  # the expert is in the cache: nothing to resume
    return trainer.load(path, env, device, key="cached expert"), hit


def evaluate_baselines(
    expert: Policy, env: EnvSpec, seeds: list[int], random_seed: int
) -> tuple[EvalResult, EvalResult]:
    """The expert's and a uniform random policy's returns on the evaluation seeds."""
    expert_eval = evaluate(expert, env, seeds, desc="eval expert")
    # A copy: seeding the env's own space would change what learners later sample from it.
    random_eval = evaluate(RandomPolicy(copy.deepcopy(env.action_space), random_seed), env, seeds)
    return expert_eval, random_eval


def expert_shortfall(expert: EvalResult, random: EvalResult, env: EnvSpec) -> str | None:
    """Why normalized scores against this expert mean nothing, or None if they do.

    The expert must beat the random policy by more than a tenth of the random returns' spread
    (and by anything at all where random returns do not vary): an expert no better than random
    turns the score's denominator into noise.
    """
    margin = 0.1 * random.std
    if expert.mean - random.mean > margin and expert.mean > random.mean:
        return None
    return (
        f"the expert ({expert.mean:.1f}) is not clearly better than the random policy "
        f"({random.mean:.1f} +- {random.std:.1f}) on {env.id}"
    )


def check_expert(
    expert: EvalResult, random: EvalResult, env: EnvSpec, *, strict: bool
) -> str | None:
    """Warn (or with ``strict``, refuse) when the expert has not learned; return the reason."""
    reason = expert_shortfall(expert, random, env)
    threshold = env.reward_threshold
    if (
        reason is None
        and threshold is not None
        and expert.mean < random.mean + 0.5 * (threshold - random.mean)
    ):
        log.warning(
            "the expert (%.1f) is less than halfway from random (%.1f) to %s's reward threshold "
            "(%.1f): normalized scores compare against a weak expert",
            expert.mean,
            random.mean,
            env.id,
            threshold,
        )
    if reason is None:
        return None
    advice = "use an env preset, raise budget.expert_env_steps, or load one with expert.path="
    if strict:
        raise ConfigError(f"strict_expert=true: {reason}; {advice}")
    log.warning("%s: normalized scores are written as null; %s", reason, advice)
    return reason


def expert_demonstrations(
    expert: Policy,
    env: EnvSpec,
    *,
    expert_id: dict,
    seed: int,
    n_episodes: int,
    cache: ArtifactCache,
) -> tuple[list[Trajectory], bool, Path]:
    """The expert's deterministic episodes on seeds derived from ``seed``, cached.

    Returns the trajectories, whether the cache had them, and their file in the cache.
    """

    def collect(tmp: Path) -> None:
        save_trajectories(tmp, rollout(expert, env, seeds, desc="demonstrations"), env)

    seeds = demo_seeds(seed, n_episodes)
    path, hit = cache.get_or_build("demos", demos_identity(expert_id, env, seeds), ".npz", collect)
    return load_trajectories(path, env, key="cached demonstrations"), hit, path


def demonstrations(
    expert: Policy,
    env: EnvSpec,
    *,
    user_demos: list[Trajectory] | None,
    user_path: str | None,
    expert_id: dict,
    seed: int,
    n_episodes: int,
    max_transitions: int | None,
    subsample_every: int,
    cache: ArtifactCache,
    run_dir: Path,
) -> tuple[list[Trajectory], bool]:
    """The user's demonstrations or the expert's, capped, then subsampled (offsets seeded by
    ``seed``), recorded in the run folder."""
    if user_demos is not None:
        demos, hit, source = user_demos, False, user_path
    else:
        demos, hit, source = expert_demonstrations(
            expert, env, expert_id=expert_id, seed=seed, n_episodes=n_episodes, cache=cache
        )
    record_source(
        run_dir, source, env=env, demo_transitions=max_transitions, by_expert=user_demos is None,
        subsample=subsample_every,
    )  # fmt: skip
    demos = cap_transitions(demos, max_transitions)
    demos = subsample(demos, subsample_every, np.random.default_rng([seed, 2]))
    if not any(t.n_kept for t in demos):
        raise ConfigError(
            f"demos.subsample={subsample_every} keeps no transition of {len(demos)} episodes "
            f"({sum(len(t) for t in demos)} transitions); allowed: a value below their length"
        )
    log.info(
        "demonstrations: %d episodes, %d transitions kept of %d",
        len(demos), sum(t.n_kept for t in demos), sum(len(t) for t in demos),
    )  # fmt: skip
    return demos, hit


def train_learner(
    make_learner, inputs: LearnerInputs, checkpoint: Checkpoint
) -> tuple[Learner, SummaryWriter]:
    """Build the learner and train it, resuming from ``checkpoint`` if it holds a state.

    Returns the learner and its open TensorBoard writer (evaluation writes into it too).
    """
    learner = make_learner(inputs=inputs)
    writer = checkpoint.open_writer()
    try:
        learner.learn(writer, checkpoint)
    except BaseException:
        writer.close()  # no thread left writing into files a resumed run cuts back
        raise
    return learner, writer


def score(
    learner: EvalResult, expert: EvalResult, random: EvalResult, shortfall: str | None
) -> float | None:
    """The learner's normalized score; None where the expert has not learned (``shortfall``)."""
    value = None if shortfall else normalized_score(learner.mean, random.mean, expert.mean)
    log.info(
        "eval over %d episodes: learner %.1f +- %.1f, expert %.1f, random %.1f, score %s",
        len(learner.returns), learner.mean, learner.std, expert.mean, random.mean,
        "null" if value is None else f"{value:.3f}",
    )  # fmt: skip
    return value


def eval_metrics(
    learner: EvalResult,
    expert: EvalResult,
    random: EvalResult,
    score: float | None,
    shortfall: str | None,
) -> dict:
    """The evaluation's ``metrics.json`` keys."""
    return {
        "expert/eval/return_mean": expert.mean,
        "random/eval/return_mean": random.mean,
        "learner/eval/return_mean": learner.mean,
        "learner/eval/return_std": learner.std,
        "learner/eval/returns": learner.returns,
        "learner/eval/normalized_score": score,
        "learner/eval/normalized_score_note": shortfall,
    }


def tensorboard_final(results: dict) -> dict:
    """The final evaluation's TensorBoard scalars (no score where it is null)."""
    final = {
        "eval/return_mean": results["learner/eval/return_mean"],
        "eval/return_std": results["learner/eval/return_std"],
    }
    if results["learner/eval/normalized_score"] is not None:
        final["eval/normalized_score"] = results["learner/eval/normalized_score"]
    return final


def record_video(
    policy: Policy, env: EnvSpec, path: Path, *, seed: int, fps: int, gif: bool
) -> None:
    """One episode as mp4 (and gif); a render or encoder failure is logged, never raised."""
    try:
        frames = record_episode(policy, env, path, seed, fps, gif)
        log.info("video: %s (%d frames)", path, frames)
    except Exception as error:  # the results are written already: they stand
        path.unlink(missing_ok=True)  # no half-written file that looks like a video
        log.warning("no video (%s: %s); the results are kept", type(error).__name__, error)
