"""A run: the gate, then the stages (``il_lab.stages``) in order, then ``metrics.json``.

This is the only module that reads a ``DictConfig`` (and Hydra's globals): everything below it
gets typed arguments.
"""

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import il_lab.config.resolvers  # noqa: F401  (registers the resolvers the configs use)
from il_lab import stages
from il_lab.config.gate import Checked, check_config
from il_lab.datasets.sources import load_trajectories
from il_lab.evaluation import eval_seeds, evaluate
from il_lab.interfaces import LearnerInputs
from il_lab.runtime.cache import ArtifactCache, libraries_line
from il_lab.runtime.checkpoint import Checkpoint, claim_run_folder, config_hash
from il_lab.runtime.identity import expert_identity, file_identity
from il_lab.runtime.metrics import write_hparams, write_metrics_json
from il_lab.runtime.seeding import resolve_device, seed_everything, set_threads

log = logging.getLogger(__name__)

# Root keys a resumed run may change (they change no result).
RESUME_IGNORES = ("hydra", "paths", "checkpoint", "video")
# The learner's costs, as the Learner protocol names them (metrics.json: learner/<key>).
COST_KEYS = ("env_steps", "expert_queries", "gradient_steps")


def run(cfg: DictConfig) -> float:
    """Run every stage for ``cfg``; return the learner's normalized score (for sweepers)."""
    started, timings = time.perf_counter(), {}
    choices = HydraConfig.get().runtime.choices
    config = {key: _plain(cfg[key]) for key in cfg if key != "hydra"}
    checked = check(cfg)
    env = checked.env
    device = resolve_device(cfg.device)
    set_threads(cfg.torch_threads)
    user_demos, external = _user_files(config, checked, device)
    run_dir = Path(cfg.paths.output_dir)
    run_hash, stored = _claim(run_dir, config)
    if stored is not None:
        log.info("%s has finished already (metrics.json): not run again", run_dir)
        return _objective(stored["learner/eval/normalized_score"])
    cache = ArtifactCache(cfg.paths.cache_dir)
    checkpoints = stages.CheckpointPolicy(**config["checkpoint"])
    seeds = eval_seeds(cfg.eval.first_seed, cfg.budget.eval_episodes)

    with _timed(timings, "expert"):
        expert, expert_hit, expert_id = _expert(
            config, checked, external, cache, run_dir / "tb" / "expert", device, checkpoints
        )
        expert_eval, random_eval = stages.evaluate_baselines(expert, env, seeds, cfg.seed)
        shortfall = stages.check_expert(expert_eval, random_eval, env, strict=cfg.strict_expert)
    with _timed(timings, "demos"):
        demos, demos_hit = stages.demonstrations(
            expert, env, user_demos=user_demos, user_path=cfg.demos.path, expert_id=expert_id,
            seed=cfg.seed, n_episodes=cfg.budget.demo_episodes, cache=cache, run_dir=run_dir,
            max_transitions=cfg.budget.demo_transitions, subsample_every=cfg.demos.subsample,
        )  # fmt: skip
    with _timed(timings, "learner"):
        learner, writer, checkpoint = _learner(
            checked, demos, expert, device, cfg.seed, run_dir, run_hash, checkpoints
        )
    with _timed(timings, "eval"):
        learner_eval = evaluate(learner.policy, env, seeds, desc="eval learner")
        score = stages.score(learner_eval, expert_eval, random_eval, shortfall)
    results = {
        "env": env.id, "expert": choices.expert, "learner": choices.learner, "seed": cfg.seed,
        "libraries": libraries_line(env.id), "expert/cache_hit": expert_hit,
        "demos/cache_hit": demos_hit, "demos/n_episodes": len(demos),
        "demos/n_transitions": sum(t.n_kept for t in demos),  # what the learner saw
        "demos/subsample": cfg.demos.subsample,
        **stages.eval_metrics(learner_eval, expert_eval, random_eval, score, shortfall),
        **{f"learner/{k}": getattr(learner, k) for k in COST_KEYS},
    }  # fmt: skip
    write_hparams(writer, _hyperparameters(config, choices), stages.tensorboard_final(results))
    writer.close()
    timings["video"] = None  # not measured yet: rewritten below once the video is done
    _write_results(run_dir, results, timings, started)  # results first: the video may fail
    checkpoint.remove()  # the results are safe: nothing is left to resume
    with _timed(timings, "video"):
        if cfg.video.enabled:
            video = run_dir / "videos" / f"{choices.learner}.mp4"
            stages.record_video(learner.policy, env, video, seed=seeds[0], **_video(config))
    _write_results(run_dir, results, timings, started)
    log.info("run folder: %s (%.1f s)", run_dir, timings["total"])
    return _objective(score)


def check(cfg: DictConfig) -> Checked:
    """The gate over ``cfg``; then say which install and expert settings the run uses."""
    config = {key: _plain(cfg[key]) for key in cfg if key != "hydra"}
    checked = check_config(config, cfg.expert, cfg.learner)
    _log_setup(config, HydraConfig.get().runtime.choices.expert, checked.env.id)
    return checked


def _user_files(config: dict, checked, device) -> tuple:
    """The user's own demonstrations and expert, read and checked before any work."""
    demos_path, expert_path, env = config["demos"]["path"], config["expert"]["path"], checked.env
    user_demos = load_trajectories(demos_path, env) if demos_path else None
    external = checked.expert_trainer.load(expert_path, env, device) if expert_path else None
    return user_demos, external


def _claim(run_dir: Path, config: dict) -> tuple[str, dict | None]:
    """The run's config hash, and its stored metrics if this config finished there already."""
    identity = {k: v for k, v in config.items() if k not in RESUME_IGNORES}
    run_hash = config_hash(identity)
    return run_hash, claim_run_folder(run_dir, run_hash, identity)


def _video(config: dict) -> dict:
    return {"fps": config["video"]["fps"], "gif": config["video"]["gif"]}


def _expert(config, checked, external, cache, tb_dir, device, checkpoints) -> tuple:
    """The user's expert file, or the cached (else trained) one; with its cache identity."""
    if external is not None:
        return external, False, file_identity(Path(config["expert"]["path"]))
    trainer, env = checked.expert_trainer, checked.env
    identity = expert_identity(config["env"], config["expert"], trainer, env.id)
    expert, hit = stages.build_expert(
        trainer, env, identity=identity, seed=config["expert"]["seed"], cache=cache,
        tb_dir=tb_dir, device=device, checkpoints=checkpoints,
    )  # fmt: skip
    return expert, hit, identity


def _learner(checked, demos, expert, device, seed, run_dir, run_hash, checkpoints) -> tuple:
    """The trained learner, its open TensorBoard writer and its checkpoint in the run folder."""
    # Seeded here, after the expert stage: SB3's load() reseeds the global generators with the
    # expert's own seed, which would otherwise give every learner seed the same start.
    inputs = LearnerInputs(
        env=checked.env, demonstrations=demos, expert=expert, rng=seed_everything(seed),
        device=device,
    )  # fmt: skip
    checkpoint = Checkpoint(
        run_dir / "checkpoint" / "learner.pt", config_hash=run_hash,
        events_dir=run_dir / "tb" / "learner", enabled=checkpoints.enabled,
        min_interval_s=checkpoints.min_interval_s,
    )  # fmt: skip
    learner, writer = stages.train_learner(checked.make_learner, inputs, checkpoint)
    if hasattr(learner.policy, "save"):
        learner.policy.save(run_dir / "learner.pt")
    return learner, writer, checkpoint


def _objective(score: float | None) -> float:
    """What a sweeper optimizes: the score, NaN where it is null."""
    return math.nan if score is None else score


def _write_results(
    run_dir: Path, results: dict, timings: dict[str, float | None], started: float
) -> None:
    timings["total"] = time.perf_counter() - started
    seconds = {f"timing/{k}_s": None if v is None else round(v, 3) for k, v in timings.items()}
    write_metrics_json(run_dir / "metrics.json", {**results, **seconds})


def _log_setup(config: dict, expert: str, env_id: str) -> None:
    """Say which install and which expert settings a run uses (a preset's, or the defaults)."""
    log.info("libraries: %s", libraries_line(env_id))  # a figure in run.log says its install
    tuned = config.get("tuned")
    if config["expert"].get("path"):
        return
    if tuned is None:
        if env_id != "CartPole-v1":  # the experts' general defaults are CartPole's
            log.warning(
                "no tuned %s settings exist for env.id=%s: general defaults (conf/expert/%s.yaml)",
                expert, env_id, expert,
            )  # fmt: skip
    elif tuned["env_id"] != env_id:
        log.warning(
            "env.id=%s, but the tuned %s settings in use (%s) are for %s",
            env_id, expert, tuned["name"], tuned["env_id"],
        )  # fmt: skip
    else:
        log.info("expert settings: conf/tuned/%s.yaml", tuned["name"])


def _hyperparameters(config: dict, choices) -> dict:
    """The flat hyperparameters of a run, for TensorBoard's HParams view."""
    flat = {
        "env": config["env"]["id"], "expert": choices.expert, "learner": choices.learner,
        "seed": config["seed"], **{f"budget.{k}": v for k, v in config["budget"].items()},
    }  # fmt: skip

    def flatten(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                flatten(value, f"{prefix}{key}.")
            elif not key.startswith("_"):
                flat[f"{prefix}{key}"] = value

    flatten(config["learner"], "learner.")
    return flat


def _plain(node):
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - start
