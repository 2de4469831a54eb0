"""Every option of every group composes and instantiates; bad input stops the run cleanly."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import CONF, ROOT, compose_config, plain
from hydra.utils import instantiate

from il_lab import pipeline
from il_lab.config.gate import check_config
from il_lab.envs import EnvSpec
from il_lab.errors import ConfigError
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
# DAC's generator is SAC, for Box actions: it is built on Pendulum in tests/test_dac.py.
LEARNERS = sorted(set(options("learner")) - {"dac"}) + [
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


# Held-out bad overrides: each is refused by the gate in one line naming the key, before any
# work (the cache folder is never created).
BAD_OVERRIDES = [
    ("learner.learning_rate=-1", "learner.learning_rate=-1 is not allowed; allowed: a number > 0"),
    ("learner.context_len=0", "learner.context_len=0 is not allowed; allowed: an integer >= 1"),
    ("learner.batch_size=abc", "learner.batch_size='abc' is not allowed; allowed: an integer"),
    ("budget.demo_episodes=0", "budget.demo_episodes=0 is not allowed; allowed: an integer >= 1"),
    ("budget.eval_episodes=0", "budget.eval_episodes=0 is not allowed"),
    ("budget.demo_transitions=0", "allowed: null (whole episodes) or an integer >= 1"),
    ("env.id=CartPol-v1", "env.id='CartPol-v1' is not a registered gymnasium env id"),
    ("env.max_episode_steps=0", "allowed: null (the env's own limit) or an integer >= 1"),
    ("learner.network.n_heads=3", "divisible by learner.network.n_heads=3"),
    ("device=tpu", "device='tpu' is not allowed; allowed: one of auto, cpu, cuda"),
    ("precision=fp16", "precision='fp16' is not allowed; allowed: one of fp32, bf16"),
    ("seed=-1", "seed=-1 is not allowed; allowed: an integer >= 0"),
    ("torch_threads=0", "torch_threads=0 is not allowed"),
    ("eval.first_seed=-5", "eval.first_seed=-5 is not allowed"),
    ("checkpoint.min_interval_s=-1", "checkpoint.min_interval_s=-1 is not allowed"),
    ("strict_expert=maybe", "strict_expert='maybe' is not allowed; allowed: true or false"),
    ("learner.obs_norm=zscore", "allowed: one of per_dim, shared, none"),
    ("video.enabled=ture", "video.enabled='ture' is not allowed; allowed: true or false"),
    ("+learner.learnin_rate=0.1", "learner.learnin_rate is not a key of BC; allowed: batch_size"),
    ("+budget.demo_epsiodes=3", "budget.demo_epsiodes is not a key of Budget"),
    ("learner=mlp_bc learner.network.hidden_sizes=[]", "learner.network.hidden_sizes=[] is not"),
    ("learner=mlp_bc learner.network.activation=sigmoid", "allowed: one of relu, tanh, gelu"),
    ("learner=dagger learner.beta_schedule=cosine", "learner.beta_schedule='cosine' is not"),
    (
        "learner=dagger learner.beta0=2",
        "learner.beta0=2 is not allowed; allowed: a number in [0, 1]",
    ),  # noqa: E501
    ("learner=dagger learner.bc.patience=0", "learner.bc.patience=0 is not allowed"),
    ("learner=bco learner.alpha=-1", "learner.alpha=-1 is not allowed; allowed: a number >= 0"),
    ("learner=gail learner.reward=exp", "learner.reward='exp' is not allowed; allowed: one of"),
    (
        "learner=gail learner.absorbing=ture",
        "learner.absorbing='ture' is not allowed; allowed: true",
    ),  # noqa: E501
    ("learner=gail learner.discriminator.grad_penalty=-1", "discriminator.grad_penalty=-1 is not"),
    (
        "learner=gail learner.ppo.batch_size=99999",
        "learner.ppo.batch_size=99999 is not allowed; allowed: an integer <= "
        "learner.ppo.n_envs x learner.ppo.n_steps = 1024",
    ),
    (
        "expert.batch_size=512",
        "expert.batch_size=512 is not allowed; allowed: an integer <= "
        "expert.n_envs x expert.n_steps = 256",
    ),
    ("expert=ppo expert.activation=sigmoid", "expert.activation='sigmoid' is not allowed"),
    ("expert=ppo expert.ent_coef=auto", "expert.ent_coef='auto' is not allowed; allowed: a number"),
    ("expert=sb3_ppo expert.sde_sample_freq=-2", "expert.sde_sample_freq=-2 is not allowed"),
    ("expert=sb3_sac expert.gradient_steps=-2", "allowed: an integer, >= 1, or -1"),
    ("expert=sb3_sac expert.ent_coef=autox", "expert.ent_coef='autox' is not allowed"),
    ("expert=sb3_sac expert.tau=0", "expert.tau=0 is not allowed; allowed: a number in (0, 1]"),
]


@pytest.mark.parametrize(("override", "expected"), BAD_OVERRIDES)
def test_the_gate_refuses_a_bad_override_in_one_line_before_any_work(tmp_path, override, expected):
    cfg = compose_config(["debug=smoke", *override.split()], tmp_path / "run", tmp_path / "cache")
    with pytest.raises(ConfigError) as refusal:
        pipeline.run(cfg)
    message = str(refusal.value)
    assert expected in message
    assert "\n" not in message
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "override",
    ["expert=sb3_sac expert.gradient_steps=-1", "expert=sb3_sac expert.ent_coef=auto_0.1"],
)
def test_the_gate_accepts_what_the_component_documents(override):
    cfg = compose_config(override.split())
    checked = check_config(plain(cfg), cfg.expert, cfg.learner)
    assert checked.expert_trainer.algorithm_kwargs["gradient_steps"] == cfg.expert.gradient_steps


def test_an_unusable_mujoco_gl_is_refused_only_when_a_video_is_made(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "bogus")
    cfg = compose_config(["env=hopper"])
    with pytest.raises(ConfigError, match="MUJOCO_GL='bogus' cannot render on this machine"):
        check_config(plain(cfg), cfg.expert, cfg.learner)
    cfg = compose_config(["env=hopper", "video.enabled=false"])
    check_config(plain(cfg), cfg.expert, cfg.learner)
    assert os.environ["MUJOCO_GL"] == "disable"


def test_the_cli_prints_the_gates_line_and_exits_2(tmp_path):
    result = subprocess.run(
        [
            sys.executable, str(ROOT / "run.py"), "env=pendulum", "learner=gail",
            "learner.absorbing=ture", f"paths.cache_dir={tmp_path}/cache",
            f"hydra.run.dir={tmp_path}/run",
        ],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    errors = [line for line in output.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and errors[0].endswith(
        "learner.absorbing='ture' is not allowed; allowed: true or false"
    )
    assert "Traceback" not in output and not (tmp_path / "cache").exists()


def test_an_unknown_group_option_is_refused_with_the_options_that_exist():
    with pytest.raises(Exception, match="nope") as refusal:
        compose_config(["learner=nope"])
    assert all(option in str(refusal.value) for option in ("mlp_bc", "gail", "dagger"))


def test_bad_demonstrations_file_stops_before_any_work(tmp_path):
    bad = tmp_path / "mine.npz"
    bad.write_text("garbage")
    cfg = compose_config([f"demos.path={bad}"], tmp_path / "run", tmp_path / "cache")
    with pytest.raises(ConfigError, match=r"demos.path=.* is not a readable il_lab demonstrations"):
        pipeline.run(cfg)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("preset", options("experiment"))
def test_every_experiment_preset_composes(preset):
    first_line = (CONF / "experiment" / f"{preset}.yaml").read_text().splitlines()[1]
    assert first_line.startswith("# python run.py") and f"+experiment={preset}" in first_line
    cfg = compose_config([f"+experiment={preset}"])
    checked = check_config(plain(cfg), cfg.expert, cfg.learner)
    assert checked.env.id == cfg.env.id and callable(checked.make_learner)


def test_run_folder_names_are_flat():
    from il_lab.config.resolvers import _suffix

    assert _suffix("") == ""
    assert _suffix("learner/bc=mlp,seed=1") == "_learner.bc=mlp,seed=1"


def test_a_long_sweep_names_its_folders_within_the_filesystems_limit(tmp_path):
    """Many overrides once made a folder name past 255 bytes, and the sweep died at its first
    job: long names are cut and end in a hash of the whole, so two such runs still differ."""
    from il_lab.config.resolvers import MAX_SUFFIX_BYTES, _suffix

    overrides = ",".join(f"learner.discriminator.key_{i}=value_{i}" for i in range(12))
    names = {_suffix(overrides + f",seed={seed}") for seed in range(3)}
    assert len(names) == 3
    for name in names:
        assert len(name.encode()) == MAX_SUFFIX_BYTES
        assert name.startswith("_learner.discriminator.key_0=value_0,")
        (tmp_path / f"12_{name}").mkdir()  # the filesystem takes it
