"""The five stages of a run (expert, demonstrations, learner, evaluation, video).

This is the only module that reads a ``DictConfig``: everything below it gets typed arguments.
"""

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import il_lab.resolvers  # noqa: F401  (registers the run-folder resolver)
from il_lab.cache import ArtifactCache, content_key
from il_lab.data import (
    Trajectory,
    cap_transitions,
    load_trajectories,
    record_source,
    save_trajectories,
)
from il_lab.envs import EnvSpec
from il_lab.evaluation import RandomPolicy, eval_seeds, evaluate, normalized_score
from il_lab.metrics import stage_writer, write_hparams, write_metrics_json
from il_lab.rollout import rollout
from il_lab.seeding import resolve_device, seed_everything, set_threads
from il_lab.validation import check_values
from il_lab.video import record_episode

log = logging.getLogger(__name__)


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
    cache = ArtifactCache(cfg.paths.cache_dir)
    rng = seed_everything(cfg.seed)

    with _timed(timings, "expert"):
        if external_expert is not None:
            expert, expert_hit = external_expert, False
            expert_id = {"file_sha256": _file_digest(Path(cfg.expert.path))}
        else:
            expert_id = {
                "env": _plain(cfg.env),
                "expert": _plain(cfg.expert),
                "seed": cfg.seed,
            }
            expert_path, expert_hit = cache.get_or_build(
                "experts",
                expert_id,
                expert_trainer.file_suffix,
                lambda tmp: expert_trainer.save(
                    expert_trainer.train(
                        env, seed=cfg.seed, tb_dir=run_dir / "tb" / "expert", device=device
                    ),
                    tmp,
                ),
            )
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
        learner = make_learner(env=env, demonstrations=demos, expert=expert, rng=rng, device=device)
        learner_writer = stage_writer(run_dir, "learner")
        learner.learn(learner_writer)
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

    with _timed(timings, "video"):
        if cfg.video.enabled:
            video = run_dir / "videos" / f"{choices.learner}.mp4"
            frames = record_episode(policy, env, video, seeds[0], cfg.video.fps, cfg.video.gif)
            log.info("video: %s (%d frames)", video, frames)

    final = {
        "eval/return_mean": learner_eval.mean,
        "eval/return_std": learner_eval.std,
        "eval/normalized_score": score,
    }
    write_hparams(learner_writer, _hyperparameters(cfg, choices), final)
    learner_writer.close()
    timings["total"] = time.perf_counter() - started
    write_metrics_json(
        run_dir / "metrics.json",
        {
            "env": env.id,
            "expert": choices.expert,
            "learner": choices.learner,
            "seed": cfg.seed,
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
            **{f"timing/{stage}_s": round(seconds, 3) for stage, seconds in timings.items()},
        },
    )
    log.info("run folder: %s (%.1f s)", run_dir, timings["total"])
    return score


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
    return env, expert_trainer, make_learner


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
