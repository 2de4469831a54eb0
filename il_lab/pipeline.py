"""The five stages of a run (expert, demonstrations, learner, evaluation, video).

This is the only module that reads a ``DictConfig``: everything below it gets typed arguments.
"""

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import il_lab.config.resolvers  # noqa: F401  (registers the run-folder resolver)
from il_lab.config.validation import check_values
from il_lab.datasets.npz import FORMAT_VERSION, save_trajectories
from il_lab.datasets.sources import load_trajectories, record_source
from il_lab.datasets.trajectories import Trajectory, cap_transitions
from il_lab.envs import EnvSpec
from il_lab.evaluation import RandomPolicy, eval_seeds, evaluate, normalized_score
from il_lab.interfaces import LearnerInputs
from il_lab.rollout import rollout
from il_lab.runtime.cache import ArtifactCache, content_key, libraries_line, library_versions
from il_lab.runtime.checkpoint import Checkpoint, claim_run_folder, config_hash
from il_lab.runtime.metrics import write_hparams, write_metrics_json
from il_lab.runtime.seeding import resolve_device, seed_everything, set_threads
from il_lab.video import record_episode

log = logging.getLogger(__name__)

# Versions of the code that builds each cached artifact: bump one when that code's output changes
# (a new rollout rule, a new training step), and the cache rebuilds instead of serving the old
# artifact. An expert class may declare its own ``BUILD_VERSION`` and ``FILE_FORMAT_VERSION``.
EXPERT_BUILD_VERSION = 1
DEMOS_BUILD_VERSION = 1
# Root keys a resumed run may change (they change no result).
RESUME_IGNORES = ("hydra", "paths", "checkpoint", "video")


def run(cfg: DictConfig) -> float:
    """Run every stage for ``cfg``; return the learner's normalized score (for sweepers)."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    choices = HydraConfig.get().runtime.choices

    env, expert_trainer, make_learner = check_config(cfg)
    device = resolve_device(cfg.device)
    set_threads(cfg.torch_threads)
    user_demos = load_trajectories(cfg.demos.path, env) if cfg.demos.path else None
    external_expert = expert_trainer.load(cfg.expert.path, env, device) if cfg.expert.path else None

    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # The run folder belongs to one config: the same command resumes it (or, finished, returns
    # its score); another config is refused. Where files go, whether checkpoints are written and
    # whether a video is made change no result, so they are not part of it.
    identity = {k: _plain(cfg[k]) for k in cfg if k not in RESUME_IGNORES}
    run_hash = config_hash(identity)
    claim_run_folder(run_dir, run_hash, identity)
    if (run_dir / "metrics.json").is_file():
        score = json.loads((run_dir / "metrics.json").read_text())["learner/eval/normalized_score"]
        log.info("%s has finished already (metrics.json): not run again", run_dir)
        return math.nan if score is None else score
    cache = ArtifactCache(cfg.paths.cache_dir)

    with _timed(timings, "expert"):
        if external_expert is not None:
            expert, expert_hit = external_expert, False
            expert_id = {"file_sha256": _file_digest(Path(cfg.expert.path))}
        else:
            # The expert's own seed is inside cfg.expert: every learner seed imitates it.
            expert_id = {
                "env": _plain(cfg.env),
                "expert": _plain(cfg.expert),
                "build_version": [
                    EXPERT_BUILD_VERSION,
                    getattr(expert_trainer, "BUILD_VERSION", None),
                ],
                "file_format": [
                    expert_trainer.file_suffix,
                    getattr(expert_trainer, "FILE_FORMAT_VERSION", None),
                ],
                "versions": library_versions(env.id),
            }
            expert_tb = run_dir / "tb" / "expert"
            expert_key = content_key(expert_id)

            def train_expert(tmp: Path) -> None:
                # Beside the cache entry, opened under its lock: whichever job builds the
                # expert next (a rerun, a requeued or another sweep job) continues from here.
                expert_checkpoint = Checkpoint(
                    cache.checkpoint_path("experts", expert_key),
                    config_hash=expert_key,
                    events_dir=expert_tb,
                    enabled=cfg.checkpoint.enabled,
                )
                expert_trainer.save(
                    expert_trainer.train(
                        env,
                        seed=cfg.expert.seed,
                        tb_dir=expert_tb,
                        device=device,
                        checkpoint=expert_checkpoint,
                        checkpoint_env_steps=cfg.checkpoint.expert_env_steps,
                    ),
                    tmp,
                )

            expert_path, expert_hit = cache.get_or_build(
                "experts", expert_id, expert_trainer.file_suffix, train_expert
            )
            # The expert is in the cache: nothing is left to resume.
            cache.checkpoint_path("experts", expert_key).unlink(missing_ok=True)
            # Always act with the cached copy, so a first and a second run behave alike.
            expert = expert_trainer.load(expert_path, env, device, key="cached expert")
        log.info("expert: %s", "from the cache" if expert_hit else "ready")

    with _timed(timings, "demos"):
        if user_demos is not None:
            demos, demos_hit, demos_source = user_demos, False, cfg.demos.path
        else:
            demos, demos_hit, demos_source = _expert_demonstrations(
                cache, expert, expert_id, env, cfg.budget.demo_episodes, cfg.seed
            )
        record_source(
            run_dir,
            demos_source,
            env=env,
            demo_transitions=cfg.budget.demo_transitions,
            by_expert=user_demos is None,
        )
        demos = cap_transitions(demos, cfg.budget.demo_transitions)
        n_transitions = sum(len(t) for t in demos)
        log.info("demonstrations: %d episodes, %d transitions", len(demos), n_transitions)

    with _timed(timings, "learner"):
        # Seeded here, after the expert stage: SB3's load() reseeds the global generators with
        # the expert's own seed, which would otherwise give every learner seed the same start.
        rng = seed_everything(cfg.seed)
        inputs = LearnerInputs(env=env, demonstrations=demos, expert=expert, rng=rng, device=device)
        learner = make_learner(inputs=inputs)
        checkpoint = Checkpoint(
            run_dir / "checkpoint" / "learner.pt",
            config_hash=run_hash,
            events_dir=run_dir / "tb" / "learner",
            enabled=cfg.checkpoint.enabled,
            min_interval_s=cfg.checkpoint.min_interval_s,
        )
        learner_writer = checkpoint.open_writer()
        try:
            learner.learn(learner_writer, checkpoint)
        except BaseException:
            learner_writer.close()  # no thread left writing into files a resumed run cuts back
            raise
        policy = learner.policy
        if hasattr(policy, "save"):
            policy.save(run_dir / "learner.pt")

    with _timed(timings, "eval"):
        seeds = eval_seeds(cfg.eval.first_seed, cfg.budget.eval_episodes)
        learner_eval = evaluate(policy, env, seeds, desc="eval learner")
        expert_eval = evaluate(expert, env, seeds, desc="eval expert")
        random_eval = evaluate(RandomPolicy(env.action_space, cfg.seed), env, seeds)
        score = normalized_score(learner_eval.mean, random_eval.mean, expert_eval.mean)
        log.info(
            "eval over %d episodes: learner %.1f +- %.1f, expert %.1f, random %.1f, score %.3f",
            len(seeds),
            learner_eval.mean,
            learner_eval.std,
            expert_eval.mean,
            random_eval.mean,
            score,
        )

    # Results first: the video is decoration, and a render failure must not lose the run.
    final = {
        "eval/return_mean": learner_eval.mean,
        "eval/return_std": learner_eval.std,
        "eval/normalized_score": score,
    }
    write_hparams(learner_writer, _hyperparameters(cfg, choices), final)
    learner_writer.close()
    results = {
        "env": env.id,
        "expert": choices.expert,
        "learner": choices.learner,
        "seed": cfg.seed,
        "libraries": libraries_line(env.id),
        "expert/eval/return_mean": expert_eval.mean,
        "random/eval/return_mean": random_eval.mean,
        "learner/eval/return_mean": learner_eval.mean,
        "learner/eval/return_std": learner_eval.std,
        "learner/eval/returns": learner_eval.returns,
        "learner/eval/normalized_score": score,
        "expert/cache_hit": expert_hit,
        "demos/cache_hit": demos_hit,
        "demos/n_episodes": len(demos),
        "demos/n_transitions": n_transitions,
        "learner/env_steps": learner.env_steps,
        "learner/expert_queries": learner.expert_queries,
        "learner/gradient_steps": learner.gradient_steps,
    }
    timings["video"] = None  # not measured yet: rewritten below once the video is done
    _write_results(run_dir, results, timings, started)
    checkpoint.remove()  # the results are safe: nothing is left to resume

    with _timed(timings, "video"):
        if cfg.video.enabled:
            video = run_dir / "videos" / f"{choices.learner}.mp4"
            try:
                frames = record_episode(policy, env, video, seeds[0], cfg.video.fps, cfg.video.gif)
                log.info("video: %s (%d frames)", video, frames)
            except Exception as error:  # any render or encoder failure: the results stand
                video.unlink(missing_ok=True)  # no half-written file that looks like a video
                log.warning("no video (%s: %s); the results are kept", type(error).__name__, error)
    _write_results(run_dir, results, timings, started)
    log.info("run folder: %s (%.1f s)", run_dir, timings["total"])
    return score


def _write_results(
    run_dir: Path, results: dict, timings: dict[str, float | None], started: float
) -> None:
    timings["total"] = time.perf_counter() - started
    write_metrics_json(
        run_dir / "metrics.json",
        {
            **results,
            **{
                f"timing/{stage}_s": None if seconds is None else round(seconds, 3)
                for stage, seconds in timings.items()
            },
        },
    )


def check_config(cfg: DictConfig) -> tuple[EnvSpec, object, Callable]:
    """Everything a user can get wrong in the config, checked before any work or cache write.

    Returns the env, the expert trainer and the learner factory the config describes.

    Raises:
        ConfigError: naming the key and what is allowed.
    """
    check_values({key: _plain(cfg[key]) for key in cfg if key != "hydra"})
    env = EnvSpec(id=cfg.env.id, max_episode_steps=cfg.env.max_episode_steps)
    env.check_supported()
    resolve_device(cfg.device)
    expert_trainer = instantiate(cfg.expert, _convert_="all")
    make_learner = instantiate(cfg.learner, _partial_=True, _convert_="all")
    _check_networks(cfg.learner, env)
    _log_tuning(cfg, env)
    # in run.log, so a figure taken from a run folder says which install produced it
    log.info("libraries: %s", libraries_line(env.id))
    return env, expert_trainer, make_learner


def _log_tuning(cfg: DictConfig, env: EnvSpec) -> None:
    """Say which expert settings a run uses: a preset's tuned values, or general defaults."""
    expert = HydraConfig.get().runtime.choices.get("expert")
    if cfg.expert.path:
        return
    if cfg.get("tuned") is None:
        if env.id != "CartPole-v1":  # the experts' general defaults are CartPole's
            log.warning(
                "no tuned %s settings exist for env.id=%s: general defaults (conf/expert/%s.yaml)",
                expert,
                env.id,
                expert,
            )
    elif cfg.tuned.env_id != env.id:
        log.warning(
            "env.id=%s, but the tuned %s settings in use (%s) are for %s",
            env.id,
            expert,
            cfg.tuned.name,
            cfg.tuned.env_id,
        )
    else:
        log.info("expert settings: conf/tuned/%s.yaml", cfg.tuned.name)


def _expert_demonstrations(
    cache: ArtifactCache,
    expert,
    expert_id: dict,
    env: EnvSpec,
    n_episodes: int,
    seed: int,
) -> tuple[list[Trajectory], bool, Path]:
    """The expert's deterministic trajectories on seeds derived from the run's seed, cached.

    Returns the trajectories, whether the cache had them, and their file in the cache.
    """
    seeds = np.random.default_rng([seed, 1]).integers(2**31, size=n_episodes).tolist()

    def collect(tmp: Path) -> None:
        trajectories = rollout(expert, env, seeds, desc="demonstrations")
        save_trajectories(tmp, trajectories, env)

    payload = {
        "expert": content_key(expert_id),
        "env": env.id,
        "seeds": seeds,
        "max_episode_steps": env.max_episode_steps,
        "build_version": DEMOS_BUILD_VERSION,
        "format_version": FORMAT_VERSION,
        "versions": library_versions(env.id),
    }
    path, hit = cache.get_or_build("demos", payload, ".npz", collect)
    return load_trajectories(path, env, key="cached demonstrations"), hit, path


def _hyperparameters(cfg: DictConfig, choices) -> dict:
    flat = {
        "env": cfg.env.id,
        "expert": choices.expert,
        "learner": choices.learner,
        "seed": cfg.seed,
        **{f"budget.{k}": v for k, v in cfg.budget.items()},
    }
    learner = _plain(cfg.learner)

    def flatten(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if key.startswith("_"):
                continue
            if isinstance(value, dict):
                flatten(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    flatten(learner, "learner.")
    return flat


def _check_networks(node: DictConfig, env: EnvSpec) -> None:
    """Build every network the learner config names once, to refuse impossible shapes now."""
    if "network" in node and "context_len" in node:
        instantiate(node.network)(obs_dim=env.obs_dim, context_len=node.context_len)
    for value in node.values():
        if isinstance(value, DictConfig):
            _check_networks(value, env)


def _plain(node):
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - start
