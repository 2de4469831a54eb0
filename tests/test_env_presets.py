"""Env presets beyond CartPole: composition, tuned experts, smoke runs, expert files, deps."""

import logging
import subprocess
import sys
from importlib.metadata import version

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from conftest import CONF, ROOT, compose_config, compose_group_option, multirun, run_pipeline
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate

from il_lab import pipeline
from il_lab.envs import EnvSpec
from il_lab.errors import ConfigError
from il_lab.experts.sb3 import NormalizedPolicy, load_model
from il_lab.rl import PPOPolicy

CPU = torch.device("cpu")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


PRESETS = {
    "cartpole": "CartPole-v1",
    "lunarlander": "LunarLander-v3",
    "lunarlander_continuous": "LunarLanderContinuous-v3",
    "pendulum": "Pendulum-v1",
    "hopper": "Hopper-v5",
    "halfcheetah": "HalfCheetah-v5",
    "walker2d": "Walker2d-v5",
}


def test_every_documented_preset_exists():
    assert set(options("env")) == set(PRESETS)


BOX_ONLY = {"dac"}  # SAC's generator acts in Box action spaces only
DISCRETE = {"cartpole", "lunarlander"}
DEFAULT_EXPERTS = {
    "cartpole": "sb3_ppo", "pendulum": "sb3_ppo", "halfcheetah": "sb3_ppo",
    "lunarlander": "ppo", "lunarlander_continuous": "ppo", "hopper": "ppo", "walker2d": "ppo",
}  # fmt: skip


@pytest.mark.parametrize("env", sorted(PRESETS))
def test_each_preset_brings_its_expert_and_a_user_choice_still_wins(env):
    cfg = compose_config([f"env={env}"])
    assert HydraConfig.get().runtime.choices.expert == DEFAULT_EXPERTS[env]
    assert cfg.expert._target_.endswith(
        {"ppo": "PPOExpert", "sb3_ppo": "SB3PPOExpert"}[DEFAULT_EXPERTS[env]]
    )
    other = "ppo" if DEFAULT_EXPERTS[env] == "sb3_ppo" else "sb3_ppo"
    chosen = compose_config([f"env={env}", f"expert={other}"])
    assert HydraConfig.get().runtime.choices.expert == other
    assert chosen.expert._target_ != cfg.expert._target_
    # the default learner passes the gate here; every learner does in the slow test below
    assert pipeline.check(compose_config([f"env={env}"])).env.id == PRESETS[env]


@pytest.mark.slow
@pytest.mark.parametrize("env", sorted(PRESETS))
@pytest.mark.parametrize("expert", ["sb3_ppo", "ppo", "sb3_sac", "sac"])
def test_every_preset_composes_with_every_expert_and_learner(env, expert):
    if expert == "sac" and env in DISCRETE:
        with pytest.raises(
            ConfigError, match=r"expert=sac cannot act in .*allowed: an env with Box"
        ):
            pipeline.check(compose_config([f"env={env}", "expert=sac"]))
        return
    for learner in sorted(set(options("learner")) - (BOX_ONLY if env in DISCRETE else set())):
        cfg = compose_config([f"env={env}", f"expert={expert}", f"learner={learner}"])
        assert cfg.env.id == PRESETS[env]
        checked = pipeline.check(cfg)
        assert checked.env.id == PRESETS[env] and callable(checked.make_learner)
        assert checked.expert_trainer.file_suffix in {".zip", ".pt"}
        if cfg.tuned is not None:  # a tuned file always names the env it was tuned for
            assert cfg.tuned.env_id == PRESETS[env]
            assert cfg.tuned.name == f"{env}_{expert}"


def test_ppo_presets_are_tuned_for_both_ppos():
    for env in set(PRESETS) - {"cartpole"}:  # CartPole's values are the general defaults
        for expert in ("sb3_ppo", "ppo"):
            assert (CONF / "tuned" / f"{env}_{expert}.yaml").is_file(), (env, expert)


def test_hoppers_mlp_bc_is_wider_and_follows_the_gradient_step_budget():
    hopper = compose_config(["env=hopper", "learner=mlp_bc"]).learner
    assert list(hopper.network.hidden_sizes) == [256, 256]
    assert hopper.max_gradient_steps == 4 * 5000  # four times the preset's budget
    assert (
        compose_config(["env=hopper", "learner=mlp_bc", "debug=smoke"]).learner.max_gradient_steps
        == 160
    )
    assert (
        compose_config(
            ["env=hopper", "learner=mlp_bc", "learner.max_gradient_steps=7"]
        ).learner.max_gradient_steps
        == 7
    )
    assert (
        compose_config(["env=hopper", "learner=transformer_bc"]).learner.max_gradient_steps == 20000
    )
    others = compose_config(["env=walker2d", "learner=mlp_bc"]).learner
    assert list(others.network.hidden_sizes) == [64, 64] and others.max_gradient_steps == 5000


def test_specialization_picks_tuned_values_and_an_override_still_wins():
    tuned = compose_config(["env=hopper", "expert=sb3_ppo"])
    assert tuned.tuned.name == "hopper_sb3_ppo"
    assert tuned.expert.learning_rate == pytest.approx(9.80828e-05)  # rl-zoo's Hopper-v4
    assert (tuned.expert.n_envs, tuned.expert.normalize_obs, tuned.expert.log_std_init) == (
        1,
        True,
        -2,
    )
    assert tuned.budget.expert_env_steps == 1_000_000
    ours = compose_config(["env=hopper", "expert=ppo"])
    assert ours.tuned.name == "hopper_ppo" and ours.expert.normalize_reward is True
    overridden = compose_config(
        ["env=hopper", "expert=sb3_ppo", "expert.learning_rate=0.001", "budget.expert_env_steps=7"]
    )
    assert overridden.expert.learning_rate == 0.001
    assert overridden.expert.total_env_steps == 7
    assert overridden.expert.n_steps == 512  # the rest stays tuned
    general = compose_config(["env=cartpole", "expert=sb3_ppo"])
    assert general.tuned is None and general.expert.n_steps == 32


def test_an_env_without_a_preset_runs_on_general_defaults_and_says_so(caplog):
    cfg = compose_config(["env.id=Acrobot-v1"])
    with caplog.at_level(logging.WARNING, logger="il_lab.pipeline"):
        pipeline.check(cfg)
    assert "no tuned sb3_ppo settings exist for env.id=Acrobot-v1" in caplog.text
    caplog.clear()
    cfg = compose_config(["env=hopper", "env.id=Walker2d-v5"])
    with caplog.at_level(logging.WARNING, logger="il_lab.pipeline"):
        pipeline.check(cfg)
    assert "are for Hopper-v5" in caplog.text


def test_a_run_names_the_libraries_that_determine_its_numbers(caplog):
    for env, mujoco in (("hopper", True), ("cartpole", False)):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="il_lab.pipeline"):
            pipeline.check(compose_config([f"env={env}"]))
        (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("libraries")]
        assert f"torch {version('torch')}" in line and f"gymnasium {version('gymnasium')}" in line
        assert ("mujoco " in line) == mujoco, line


# One smoke run per preset, each expert's continuous and discrete paths among them; episodes
# capped at 60 steps so the MuJoCo ones take seconds.
SLOW = pytest.mark.slow
SMOKE = [
    pytest.param("pendulum", "sb3_ppo", marks=SLOW),  # gSDE
    ("lunarlander", "ppo"),
    pytest.param("lunarlander_continuous", "sb3_ppo", marks=SLOW),
    pytest.param("hopper", "sb3_ppo", marks=SLOW),  # VecNormalize statistics inside the zip
    pytest.param("halfcheetah", "ppo", marks=SLOW),  # reward normalization, ReLU, no ortho init
    pytest.param("walker2d", "ppo", marks=SLOW),
]


@pytest.mark.parametrize(("env", "expert"), SMOKE)
def test_smoke_run_of_each_preset_writes_metrics_and_a_video(tmp_path, env, expert):
    metrics = run_pipeline(
        tmp_path, [f"env={env}", f"expert={expert}", "learner=mlp_bc", "env.max_episode_steps=60"]
    )
    assert metrics["env"] == PRESETS[env]
    assert len(metrics["learner/eval/returns"]) == 2
    # a smoke expert has not learned: its score is null, with the reason
    score, note = (
        metrics["learner/eval/normalized_score"],
        metrics["learner/eval/normalized_score_note"],
    )
    assert (score is None) == (note is not None) and (score is None or np.isfinite(score))
    (video,) = (tmp_path / "run" / "videos").glob("*.mp4")
    reader = imageio.get_reader(video)
    assert 1 < reader.count_frames() <= 61  # the reset frame and one per step (Hopper may fall)
    assert reader.get_data(0).std() > 0  # a rendered scene, not a blank frame


def test_sb3_normalization_statistics_travel_inside_the_zip(tmp_path):
    cfg = compose_config(["env=pendulum", "expert=sb3_ppo", "expert.normalize_obs=true"])
    trainer = instantiate(cfg.expert, total_env_steps=1024, n_envs=2, n_steps=256, use_sde=False)
    env = EnvSpec("Pendulum-v1")
    policy = trainer.train(env, seed=0, tb_dir=tmp_path / "tb", device=CPU)
    assert isinstance(policy, NormalizedPolicy) and np.any(policy.mean != 0)
    trainer.save(policy, tmp_path / "expert.zip")
    loaded = load_model(tmp_path / "expert.zip", env, CPU)
    assert isinstance(loaded, NormalizedPolicy)
    np.testing.assert_array_equal(loaded.var, policy.var)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(16, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs)[0], policy.predict(obs)[0])
    # Without its statistics the model acts differently: they are really in use.
    raw_actions = loaded.model.predict(obs, deterministic=True)[0]
    assert not np.array_equal(raw_actions, policy.predict(obs)[0])


def test_our_ppo_normalization_survives_save_and_load(tmp_path):
    cfg = compose_config(["env=halfcheetah", "expert=ppo"])
    trainer = instantiate(cfg.expert, total_env_steps=1024, n_steps=256)
    env = EnvSpec("HalfCheetah-v5")
    policy = trainer.train(env, seed=0, tb_dir=tmp_path / "tb", device=CPU)
    trainer.save(policy, tmp_path / "expert.pt")
    loaded = PPOPolicy.load(tmp_path / "expert.pt", env, CPU)
    assert loaded.obs_rms.count > 1000 and (loaded.activation, loaded.ortho_init) == ("relu", False)
    obs = np.random.default_rng(0).normal(size=(16, 17)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs)[0], policy.predict(obs)[0])


def test_expert_path_takes_any_sb3_algorithm_and_refuses_a_mismatch(tmp_path):
    env = EnvSpec("Pendulum-v1")
    sac = instantiate(
        compose_config(["env=pendulum", "expert=sb3_sac"]).expert,
        total_env_steps=150,
        learning_starts=100,
    )
    sac.save(sac.train(env, seed=0, tb_dir=tmp_path / "tb", device=CPU), tmp_path / "sac.zip")
    # Loaded through the PPO expert's loader: the algorithm is read from the file.
    ppo_trainer = instantiate(compose_config(["env=pendulum"]).expert)
    model = ppo_trainer.load(tmp_path / "sac.zip", env, CPU)
    assert type(model).__name__ == "SAC"
    actions, _ = model.predict(np.zeros((4, 3), dtype=np.float32))
    assert actions.shape == (4, 1)

    cartpole = EnvSpec("CartPole-v1")
    ppo = instantiate(compose_config([]).expert, total_env_steps=256)
    ppo.save(ppo.train(cartpole, seed=0, tb_dir=tmp_path / "tb2", device=CPU), tmp_path / "p.zip")
    assert type(load_model(tmp_path / "p.zip", cartpole, CPU)).__name__ == "PPO"
    with pytest.raises(ConfigError, match="expert.path=.*observation space.*Pendulum-v1"):
        load_model(tmp_path / "p.zip", env, CPU)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="is not an SB3 model .zip"):
        load_model(tmp_path / "junk.zip", env, CPU)


@pytest.mark.slow  # a subprocess: python run.py from the start
def test_a_missing_env_dependency_is_refused_in_one_line(tmp_path):
    """Box2D made unimportable for real: gymnasium's own import guard raises, we refuse."""
    code = (
        "import sys, runpy; sys.modules['Box2D'] = None; "
        f"sys.argv = ['run.py', 'env=lunarlander', 'paths.cache_dir={tmp_path}/cache', "
        f"'hydra.run.dir={tmp_path}/run']; "
        f"runpy.run_path({str(ROOT / 'run.py')!r}, run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() + result.stdout.splitlines() if line]
    refusal = [line for line in errors if "env.id='LunarLander-v3'" in line]
    assert len(refusal) == 1 and "pip install 'gymnasium[box2d]'" in refusal[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_a_sweep_over_seeds_imitates_one_expert(tmp_path):
    multirun(tmp_path, "learner=mlp_bc", "seed=0,1,2")
    assert len(list((tmp_path / "cache" / "experts").glob("*.zip"))) == 1
    assert len(list((tmp_path / "cache" / "demos").glob("*.npz"))) == 3


@pytest.mark.parametrize("env", sorted(set(PRESETS) - {"cartpole"}))
def test_online_learners_are_specialized_per_env(env):
    """DAgger, BCO and GAIL get the env's budgets, and GAIL's generator our PPO's values for the
    env: the very file the ppo expert's tuned settings include (on Walker2d, whose expert takes
    rl-zoo's one-env values, the CleanRL values Hopper's expert and generator share). BCO on
    the gait envs Hopper and Walker2d: a million env steps in noisy rounds, the same on both."""
    dagger = compose_config([f"env={env}", "learner=dagger"]).learner
    assert dagger.total_env_steps == 20_000 and dagger.round_env_steps == 2000
    bco = compose_config([f"env={env}", "learner=bco"]).learner
    if env == "walker2d":
        assert bco == compose_config(["env=hopper", "learner=bco"]).learner
    if env in ("hopper", "walker2d"):
        assert bco.total_env_steps == 1_000_000 and bco.exploration_noise > 0
        assert bco.idm_buffer_size < bco.total_env_steps
    else:
        assert bco.total_env_steps == 200_000 and bco.exploration_noise is None
    gail = compose_config([f"env={env}", "learner=gail"]).learner
    assert gail.total_env_steps == gail.ppo.total_env_steps <= 1_000_000
    generator = instantiate(gail.ppo, _convert_="all")  # every key is one PPO takes
    expert = compose_config([f"env={env}", "expert=ppo"]).expert
    shared = compose_group_option("ppo_settings", env)
    generator_settings = compose_group_option(
        "ppo_settings", "cleanrl_mujoco" if env == "walker2d" else env
    )
    # LunarLander's generator discounts at 0.99 (absorbing-state weight); HalfCheetah's keeps the
    # expert's policy but a cheaper update schedule (conf/tuned_learner/halfcheetah_gail.yaml)
    departures = {"gamma"} | (
        {"n_envs", "n_steps", "batch_size", "n_epochs", "learning_rate"}
        if env == "halfcheetah"
        else set()
    )
    for key, value in shared.items():
        assert expert[key] == value, key
    for key, value in generator_settings.items():
        if key not in departures:
            assert getattr(generator, key) == (tuple(value) if key == "net_arch" else value), key
    # the gradient penalty, and a BC warm start where it measurably helped (not on Pendulum)
    assert gail.discriminator.grad_penalty == 10
    assert gail.bc_warm_start_steps == {"pendulum": 0, "halfcheetah": 5000}.get(env, 1000)
    # a global budget still overrides every learner's own
    overridden = compose_config([f"env={env}", "learner=gail", "budget.learner_env_steps=7"])
    assert overridden.learner.total_env_steps == 7
