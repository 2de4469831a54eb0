"""Every option of every group composes and instantiates; bad input stops the run cleanly."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import CONF, ROOT, compose_config
from hydra.utils import instantiate

from il_lab.envs import EnvSpec
from il_lab.evaluation import RandomPolicy
from il_lab.interfaces import LearnerInputs
from il_lab.rollout import rollout

CARTPOLE = EnvSpec("CartPole-v1")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_every_group_has_options():
    assert {"sb3_ppo"} <= set(options("expert"))
    assert {"mlp_bc", "transformer_bc"} <= set(options("learner"))
    assert "cartpole" in options("env")
    assert "smoke" in options("debug")


@pytest.mark.parametrize("expert", options("expert"))
def test_every_expert_instantiates(expert):
    cfg = compose_config([f"expert={expert}"])
    trainer = instantiate(cfg.expert)
    assert trainer.file_suffix in {".zip", ".pt"}


# Every learner, and each BC network inside the learners that wrap BC (learner/bc).
LEARNERS = options("learner") + [
    f"{learner} learner/bc={bc}" for learner in ("dagger", "bco") for bc in options("learner/bc")
]


@pytest.mark.parametrize("learner", LEARNERS)
@pytest.mark.parametrize("debug", [None, "smoke"])
def test_every_learner_instantiates_and_acts(learner, debug):
    name, *sub_groups = learner.split()
    overrides = [f"learner={name}", *sub_groups] + ([f"debug={debug}"] if debug else [])
    cfg = compose_config(overrides)
    demos = rollout(RandomPolicy(CARTPOLE.action_space, 0), CARTPOLE, [0, 1])
    # As in the pipeline: Hydra would turn a dataclass argument into a config, so the runtime
    # objects go to the partial.
    learner_obj = instantiate(cfg.learner, _partial_=True)(
        inputs=LearnerInputs(
            env=CARTPOLE,
            demonstrations=demos,
            expert=RandomPolicy(CARTPOLE.action_space, 0),
            rng=np.random.default_rng(0),
        )
    )
    actions, _ = learner_obj.policy.predict(demos[0].obs[:3])
    assert actions.shape == (3,)


@pytest.mark.parametrize("env", options("env"))
def test_every_env_builds(env):
    cfg = compose_config([f"env={env}"])
    spec = EnvSpec(cfg.env.id, cfg.env.max_episode_steps)
    spec.check_supported()


def test_episode_cap_is_one_override_away():
    cfg = compose_config(["env.max_episode_steps=200"])
    spec = EnvSpec(cfg.env.id, cfg.env.max_episode_steps)
    lean = rollout(_Lean(), spec, [0])
    assert len(lean[0]) == 200 and lean[0].truncated


class _Lean:
    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return (observation[:, 2] + observation[:, 3] > 0).astype(np.int64), state


def run_cli(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "debug=smoke",
            f"paths.cache_dir={tmp_path}/cache",
            f"hydra.run.dir={tmp_path}/run",
            *overrides,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("learner=nope", "learner"),
        (
            "learner.learning_rate=-1",
            "learner.learning_rate=-1 is not allowed; allowed: a number > 0",
        ),
        ("learner.context_len=0", "learner.context_len=0 is not allowed"),
        ("learner.batch_size=abc", "learner.batch_size='abc' is not allowed; allowed: an integer"),
        ("budget.demo_episodes=0", "budget.demo_episodes=0 is not allowed"),
        ("budget.eval_episodes=0", "budget.eval_episodes=0 is not allowed"),
        ("env.id=CartPol-v1", "env.id='CartPol-v1' is not a registered gymnasium env id"),
        ("learner.network.n_heads=3", "divisible by learner.network.n_heads=3"),
        ("device=tpu", "device='tpu' is not allowed"),
        ("precision=fp16", "precision='fp16' is not allowed; allowed: one of fp32, bf16"),
        ("learner=dagger learner.beta_schedule=cosine", "learner.beta_schedule='cosine' is not"),
        ("learner.obs_norm=zscore", "allowed: one of per_dim, shared, none"),
        ("learner=gail learner.reward=exp", "learner.reward='exp' is not allowed; allowed: one"),
        ("video.enabled=ture", "video.enabled='ture' is not allowed; allowed: true or false"),
        (
            "expert.batch_size=512",
            "expert.batch_size=512 is not allowed; allowed: an integer <= "
            "expert.n_envs x expert.n_steps = 256",
        ),
    ],
)
def test_bad_override_stops_with_one_clear_line(tmp_path, override, expected):
    result = run_cli(tmp_path, *override.split())
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output
    assert "Traceback" not in output
    assert not (tmp_path / "cache").exists()


def test_bad_demonstrations_file_stops_before_any_work(tmp_path):
    bad = tmp_path / "mine.npz"
    bad.write_text("garbage")
    result = run_cli(tmp_path, f"demos.path={bad}")
    assert result.returncode != 0
    assert "demos.path=" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("preset", options("experiment"))
def test_every_experiment_preset_composes(preset):
    from il_lab.pipeline import check_config

    first_line = (CONF / "experiment" / f"{preset}.yaml").read_text().splitlines()[1]
    assert first_line.startswith("# python run.py") and f"+experiment={preset}" in first_line
    cfg = compose_config([f"+experiment={preset}"])
    env, expert_trainer, make_learner = check_config(cfg)
    assert env.id == cfg.env.id and callable(make_learner)


def test_run_folder_names_are_flat():
    from il_lab.config.resolvers import _suffix

    assert _suffix("") == ""
    assert _suffix("learner/bc=mlp,seed=1") == "_learner.bc=mlp,seed=1"
