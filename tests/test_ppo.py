"""Our PPO (``expert=ppo``): GAE and episode ends, determinism, learning, files, TensorBoard.

One torch thread, as conftest sets for every test; the learning figures were read that way.
"""

import inspect
import logging
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import CONF, compose_config, run_pipeline
from hydra.utils import instantiate
from omegaconf import OmegaConf
from stable_baselines3.common.buffers import RolloutBuffer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from il_lab.envs import EnvSpec
from il_lab.errors import ConfigError
from il_lab.evaluation import RandomPolicy, eval_seeds, evaluate
from il_lab.experts.ppo import SELECTION_FIRST_SEED, PPOExpert
from il_lab.rl import (
    PPOHyperparameters,
    PPOPolicy,
    PPOTrainer,
    clipped_surrogate_loss,
    compute_gae,
)
from il_lab.runtime.metrics import EXPERT_TAGS

CARTPOLE = EnvSpec("CartPole-v1")
PENDULUM = EnvSpec("Pendulum-v1")
CPU = torch.device("cpu")


def shipped(**overrides) -> PPOHyperparameters:
    """The defaults of conf/expert/ppo.yaml with a 100k-step budget, then ``overrides``."""
    cfg = OmegaConf.load(CONF / "expert" / "ppo.yaml")
    cfg.total_env_steps = 100_000
    values = OmegaConf.to_container(cfg, resolve=True)
    for expert_only in ("_target_", "path", "seed", "keep_best_every", "keep_best_episodes"):
        del values[expert_only]
    return PPOHyperparameters(**{**values, **overrides})


def tiny(**overrides) -> PPOHyperparameters:
    """Seconds-long settings: rollouts of 4 envs x 32 steps."""
    return shipped(**{"n_envs": 4, "n_steps": 32, "batch_size": 64, "n_epochs": 2, **overrides})


def ppo_expert() -> PPOExpert:
    return instantiate(compose_config(["expert=ppo"]).expert, _convert_="all")


def weights(trainer: PPOTrainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.policy.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# config -------------------------------------------------------------------------------------


def test_ppo_yaml_has_exactly_the_keys_of_sb3_ppo_yaml():
    ours = OmegaConf.load(CONF / "expert" / "ppo.yaml")
    theirs = OmegaConf.load(CONF / "expert" / "sb3_ppo.yaml")
    assert set(theirs) - set(ours) == {"use_sde", "sde_sample_freq"}  # SB3's gSDE only
    assert set(ours) - set(theirs) == {"keep_best_every", "keep_best_episodes"}  # ours only
    assert ours._target_ == "il_lab.experts.ppo.PPOExpert" != theirs._target_
    assert OmegaConf.to_yaml(ours).count("${budget.expert_env_steps}") == 1
    parameters = inspect.signature(PPOExpert).parameters
    # clip_range_vf: SB3's default (no value clipping) in both, so neither file sets it
    assert set(parameters) == set(ours) - {"_target_"} | {"clip_range_vf"}
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())


def test_expert_ppo_composes_and_instantiates():
    expert = ppo_expert()
    assert isinstance(expert, PPOExpert)
    assert expert.file_suffix == ".pt"
    assert expert.total_env_steps == 100_000  # budget.expert_env_steps


# GAE and episode ends ------------------------------------------------------------------------


def test_gae_bootstraps_truncations_not_terminations_and_skips_reset_steps():
    # Two envs, gamma = lambda = 0.5. Env 0: a truncation at t=1 (its final observation is
    # row 2's, value 4), a termination at t=3 (row 4 holds a final observation of value 8 that
    # must not be used), reset steps at t=2 and t=4. Env 1: no episode end.
    rewards = torch.tensor([[1.0, 1], [1, 1], [0, 1], [1, 1], [0, 1], [1, 1]])
    values = torch.tensor([[1.0, 0], [2, 0], [4, 0], [3, 0], [8, 0], [2, 0]])
    next_value = torch.tensor([4.0, 0])
    terminated = torch.zeros(6, 2, dtype=torch.bool)
    truncated = torch.zeros(6, 2, dtype=torch.bool)
    valid = torch.ones(6, 2, dtype=torch.bool)
    truncated[1, 0] = terminated[3, 0] = True
    valid[2, 0] = valid[4, 0] = False

    advantages, returns = compute_gae(
        rewards, values, next_value, terminated, truncated, valid, gamma=0.5, gae_lambda=0.5
    )

    # Env 0, by hand:
    #   t=5: 1 + 0.5 * 4 - 2 = 1
    #   t=3 (terminated, no bootstrap): 1 - 3 = -2
    #   t=1 (truncated, bootstraps from the final observation's value 4): 1 + 0.5 * 4 - 2 = 1
    #   t=0: delta 1 + 0.5 * 2 - 1 = 1, plus 0.25 * A_1 = 1.25
    #   reset steps: 0
    # Env 1: every delta is 1, so A_t = 1 + 0.25 * A_{t+1}, from A_5 = 1.
    expected = torch.tensor(
        [
            [1.25, 1.3330078125],
            [1.0, 1.33203125],
            [0.0, 1.328125],
            [-2.0, 1.3125],
            [0.0, 1.25],
            [1.0, 1.0],
        ]
    )
    torch.testing.assert_close(advantages, expected, rtol=0, atol=1e-7)
    torch.testing.assert_close(returns, expected + values, rtol=0, atol=1e-7)


def random_next_step_rollout(seed: int, n_steps: int, n_envs: int) -> dict[str, torch.Tensor]:
    """Random rewards, values and episode ends in our layout: a reset row after every end."""
    g = torch.Generator().manual_seed(seed)
    terminated = torch.zeros(n_steps, n_envs, dtype=torch.bool)
    truncated = torch.zeros(n_steps, n_envs, dtype=torch.bool)
    valid = torch.ones(n_steps, n_envs, dtype=torch.bool)
    draws = torch.rand(n_steps, n_envs, generator=g)
    for e in range(n_envs):
        for t in range(n_steps):
            if t > 0 and (terminated[t - 1, e] or truncated[t - 1, e]):
                valid[t, e] = False
            elif draws[t, e] < 0.1:
                terminated[t, e] = True
            elif draws[t, e] < 0.2:
                truncated[t, e] = True
    return {
        "rewards": torch.randn(n_steps, n_envs, generator=g),
        "values": torch.randn(n_steps, n_envs, generator=g),
        "next_value": torch.randn(n_envs, generator=g),
        "terminated": terminated,
        "truncated": truncated,
        "valid": valid,
    }


def sb3_advantages_and_returns(
    r: dict[str, torch.Tensor], env: int, gamma: float, gae_lambda: float
) -> tuple[np.ndarray, np.ndarray]:
    """One env of ``r`` through SB3's ``RolloutBuffer``, the way SB3's PPO fills it.

    SB3's vector envs reset within the step, so there are no reset rows, and a time-limit
    truncation adds ``gamma * V(final observation)`` to the step's reward.
    """
    rows = torch.nonzero(r["valid"][:, env]).flatten().tolist()
    n_steps = r["valid"].shape[0]
    buffer = RolloutBuffer(
        len(rows),
        gym.spaces.Box(-1, 1, (1,)),
        gym.spaces.Discrete(2),
        device="cpu",
        gae_lambda=gae_lambda,
        gamma=gamma,
        n_envs=1,
    )
    episode_start = False
    for t in rows:
        reward = r["rewards"][t, env].item()
        if r["truncated"][t, env]:
            final_value = r["values"][t + 1, env] if t + 1 < n_steps else r["next_value"][env]
            reward += gamma * final_value.item()
        buffer.add(
            np.zeros((1, 1), np.float32),
            np.zeros((1, 1)),
            np.array([reward]),
            np.array([episode_start]),
            r["values"][t, env].reshape(1),
            torch.zeros(1),
        )
        episode_start = bool(r["terminated"][t, env] or r["truncated"][t, env])
    buffer.compute_returns_and_advantage(
        last_values=r["next_value"][env].reshape(1), dones=np.array([episode_start])
    )
    return buffer.advantages[:, 0], buffer.returns[:, 0]


@pytest.mark.parametrize("seed", range(4))
def test_gae_matches_sb3_rollout_buffer_on_terminations_and_truncations(seed):
    gamma, gae_lambda = 0.98, 0.8
    r = random_next_step_rollout(seed, n_steps=64, n_envs=3)
    assert r["terminated"].any() and r["truncated"].any() and not r["valid"].all()

    advantages, returns = compute_gae(**r, gamma=gamma, gae_lambda=gae_lambda)

    for env in range(3):
        keep = r["valid"][:, env]
        sb3_advantages, sb3_returns = sb3_advantages_and_returns(r, env, gamma, gae_lambda)
        np.testing.assert_allclose(advantages[keep, env].numpy(), sb3_advantages, atol=1e-5)
        np.testing.assert_allclose(returns[keep, env].numpy(), sb3_returns, atol=1e-5)
        assert (advantages[~keep, env] == 0).all()


def test_clipped_surrogate_on_a_hand_made_batch():
    ratio = torch.tensor([0.5, 1.0, 1.5, 1.5, 0.5], requires_grad=True)
    advantages = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0])

    loss = clipped_surrogate_loss(ratio, advantages, clip_range=0.2)
    loss.backward()

    # min(r A, clip(r, 0.8, 1.2) A) per sample: 0.5, 1.0, 1.2, -1.5, -0.8; mean 0.08.
    torch.testing.assert_close(loss, torch.tensor(-0.08))
    # The clipped terms (ratio 1.5 with A > 0, ratio 0.5 with A < 0) pass no gradient; the
    # others pass -A / n.
    torch.testing.assert_close(ratio.grad, torch.tensor([-0.2, -0.2, 0.0, 0.2, 0.0]))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_steps": 0}, "n_steps=0 is not allowed; allowed: an integer >= 1"),
        ({"n_envs": -2}, "n_envs=-2 is not allowed"),
        (
            {"batch_size": 129},
            "batch_size=129 is not allowed; allowed: an integer <= n_envs x n_steps = 128",
        ),
        ({"n_epochs": 1.5}, "n_epochs=1.5 is not allowed"),
        ({"net_arch": []}, "net_arch=\\[\\] is not allowed"),
    ],
)
def test_bad_hyperparameters_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**overrides)


def test_next_step_reset_steps_are_masked():
    """Gymnasium's vector envs reset on the step after an episode ends: no signal there."""
    env = EnvSpec("CartPole-v1", max_episode_steps=5)
    trainer = PPOTrainer(tiny(n_envs=3, n_steps=14, batch_size=16), env=env, seed=0)
    seen = []
    evaluate = trainer.policy.evaluate

    def recording_evaluate(obs, actions):
        seen.append(len(obs))
        return evaluate(obs, actions)

    trainer.policy.evaluate = recording_evaluate
    rollout = trainer.collect_rollout()
    trainer.update(rollout)
    trainer.close()

    done = rollout.terminated | rollout.truncated
    assert rollout.truncated.any()
    assert rollout.valid[0].all()
    assert torch.equal(rollout.valid[1:], ~done[:-1])  # exactly the steps after an episode end
    assert (rollout.rewards[~rollout.valid] == 0).all()
    assert (rollout.rewards[rollout.valid] == 1).all()
    # A reset step acts on the final observation; the step after it sees a fresh reset.
    for t, i in zip(*torch.nonzero(rollout.truncated[:-2], as_tuple=True), strict=True):
        assert not rollout.valid[t + 1, i]
        assert rollout.raw_obs[t + 1, i].abs().max() > 0.05  # moved away from the reset state
        assert rollout.raw_obs[t + 2, i].abs().max() <= 0.05  # CartPole resets within +-0.05
    # Every gradient epoch saw the valid steps only.
    assert sum(seen) == trainer.hp.n_epochs * int(rollout.valid.sum())


# determinism, chunks, reward replacement ----------------------------------------------------


def test_same_seed_same_weights_and_chunks_equal_one_call():
    runs = []
    for seed, chunks in ((0, [512]), (0, [256, 256]), (1, [512])):
        trainer = PPOTrainer(tiny(), env=CARTPOLE, seed=seed, device=CPU)
        for n in chunks:
            trainer.learn(n)
        assert trainer.num_timesteps == 512
        runs.append(weights(trainer))
        trainer.close()
    assert same_weights(runs[0], runs[1])
    assert not same_weights(runs[0], runs[2])


def test_reward_fn_replaces_the_training_reward_but_not_the_reported_one():
    calls = []

    terminations = []

    def zero_reward(obs, acts, next_obs, terminated):
        calls.append((obs.shape, acts.shape, acts.dtype, next_obs.shape))
        assert set(acts.tolist()) <= {0, 1} and terminated.shape == (len(obs),)
        terminations.append(int(terminated.sum()))
        return torch.zeros(len(obs))

    replaced = PPOTrainer(tiny(), env=CARTPOLE, seed=0, reward_fn=zero_reward)
    replaced.learn(512)
    true = PPOTrainer(tiny(), env=CARTPOLE, seed=0)
    true.learn(512)

    assert len(calls) == 512 // replaced.rollout_size
    n = calls[0][0][0]
    assert calls[0] == ((n, 4), (n,), torch.long, (n, 4))
    assert 0 < n <= replaced.rollout_size
    assert not same_weights(weights(replaced), weights(true))
    assert np.mean(replaced.episode_returns) > 5  # still the env's own reward
    # Every CartPole episode of a barely trained policy ends by falling: a termination each.
    assert sum(terminations) == len(replaced.episode_lengths) > 5
    replaced.close()
    true.close()


def test_reward_fn_is_told_terminations_never_time_limits():
    """Pendulum never terminates; its episodes end only at the 200-step limit."""
    seen = []

    def spy(obs, acts, next_obs, terminated):
        seen.append(terminated.clone())
        return torch.zeros(len(obs))

    trainer = PPOTrainer(tiny(n_steps=128), env=PENDULUM, seed=0, reward_fn=spy)
    trainer.learn(1024)
    trainer.close()
    assert len(trainer.episode_lengths) >= 4  # episodes did end, by truncation
    assert not torch.cat(seen).any()


# keep the best ------------------------------------------------------------------------------


def test_keep_best_selects_the_best_evaluation_and_never_changes_training(tmp_path, caplog):
    settings = dict(total_env_steps=4096, n_envs=4, n_steps=32, batch_size=64, n_epochs=2)

    def train(**keep_best):
        expert = instantiate(
            compose_config(["expert=ppo"]).expert, **settings, **keep_best, _convert_="all"
        )
        return expert.train(CARTPOLE, seed=0, tb_dir=tmp_path / "tb", device=CPU)

    final = train(keep_best_every=0)
    with caplog.at_level(logging.INFO, logger="il_lab.experts.ppo"):
        best = train(keep_best_every=1024, keep_best_episodes=5)
    scores = [float(s) for s in re.findall(r"selection return (-?[\d.]+)", caplog.text)]
    assert len(scores) == 4  # at 1024, 2048, 3072 and 4096 env steps
    seeds = eval_seeds(SELECTION_FIRST_SEED, 5)
    assert evaluate(best, CARTPOLE, seeds).mean == pytest.approx(max(scores), abs=0.05)
    # the last selection scored the final policy of the run without selections: same training
    assert evaluate(final, CARTPOLE, seeds).mean == pytest.approx(scores[-1], abs=0.05)
    assert max(scores) > scores[0]  # something was learned, so the pick mattered


# learning ----------------------------------------------------------------------------------


def test_discrete_ppo_learns_cartpole():
    trainer = PPOTrainer(shipped(), env=CARTPOLE, seed=0)
    trainer.learn(20_000)
    trainer.close()
    seeds = eval_seeds(1000, 10)
    random = evaluate(RandomPolicy(CARTPOLE.action_space, 0), CARTPOLE, seeds).mean
    learned = evaluate(trainer.policy, CARTPOLE, seeds).mean
    assert random < 40
    assert learned > 150, learned  # 500.0 when written; seeds 1-3 give 159-476 at this budget


def test_box_ppo_runs_saves_loads_and_acts_within_bounds(tmp_path):
    trainer = PPOTrainer(tiny(n_envs=4, n_steps=50), env=PENDULUM, seed=0)
    trainer.learn(1000)
    trainer.close()
    policy = trainer.policy
    assert policy.head.log_std is not None and trainer.n_updates > 0
    assert all(torch.isfinite(p).all() for p in policy.parameters())
    assert len(trainer.episode_returns) == 4  # Pendulum truncates at 200 steps
    obs = np.random.default_rng(0).normal(scale=5, size=(64, 3)).astype(np.float32)
    for deterministic in (True, False):
        actions, state = policy.predict(obs, deterministic=deterministic)
        assert actions.shape == (64, 1) and actions.dtype == np.float32 and state is None
        assert (actions >= -2).all() and (actions <= 2).all()
    huge = torch.tensor([[-50.0], [0.5], [50.0]])
    np.testing.assert_array_equal(policy.env_actions(huge), [[-2.0], [0.5], [2.0]])
    single, _ = policy.predict(obs[0])
    assert single.shape == (1,)

    path = tmp_path / "pendulum.pt"
    ppo_expert().save(policy, path)
    loaded = ppo_expert().load(path, PENDULUM, CPU)
    for deterministic in (True, False):
        torch.manual_seed(1)
        expected, _ = policy.predict(obs, deterministic=deterministic)
        torch.manual_seed(1)
        actions, _ = loaded.predict(obs, deterministic=deterministic)
        np.testing.assert_array_equal(actions, expected)
    with pytest.raises(ConfigError, match="expert.path="):
        ppo_expert().load(path, CARTPOLE, CPU)


# files -------------------------------------------------------------------------------------


@pytest.fixture
def saved_policy(tmp_path) -> tuple[PPOPolicy, Path]:
    trainer = PPOTrainer(tiny(normalize_obs=True), env=CARTPOLE, seed=0)
    trainer.learn(512)
    trainer.close()
    path = tmp_path / "expert.pt"
    ppo_expert().save(trainer.policy, path)
    return trainer.policy, path


def test_save_load_round_trip_gives_identical_actions(saved_policy):
    policy, path = saved_policy
    loaded = ppo_expert().load(path, CARTPOLE, CPU)
    assert loaded.normalize_obs and torch.equal(loaded.obs_rms.var, policy.obs_rms.var)
    assert loaded.obs_rms.count > 512  # the statistics travelled with the weights
    obs = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    actions, _ = loaded.predict(obs)
    np.testing.assert_array_equal(actions, policy.predict(obs)[0])
    assert actions.dtype == np.int64 and actions.shape == (100,)
    assert loaded.predict(obs[0])[0] == actions[0]


def test_load_refuses_mismatched_env_and_bad_files(saved_policy, tmp_path):
    _, path = saved_policy
    expert = ppo_expert()
    with pytest.raises(ConfigError, match="expert.path=.*observation space") as error:
        expert.load(path, PENDULUM, CPU)
    assert "\n" not in str(error.value)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a policy")
    for bad in (junk, tmp_path / "missing.pt"):
        with pytest.raises(ConfigError, match="expert.path=") as error:
            expert.load(bad, CARTPOLE, CPU)
        assert "\n" not in str(error.value)
    torch.save({"something": "else"}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not a policy file saved by expert=ppo"):
        expert.load(tmp_path / "other.pt", CARTPOLE, CPU, key="cached expert")


# TensorBoard and the pipeline ---------------------------------------------------------------


def test_train_writes_exactly_sb3s_tags(tmp_path):
    cfg = compose_config(["expert=ppo", "debug=smoke", "expert.n_envs=8", "expert.n_steps=32"])
    expert = instantiate(cfg.expert, _convert_="all")
    policy = expert.train(CARTPOLE, seed=0, tb_dir=tmp_path / "tb", device=CPU)
    assert isinstance(policy, PPOPolicy)
    assert [p.name for p in (tmp_path / "tb").iterdir()][0].startswith("events.out.tfevents")
    assert len(list((tmp_path / "tb").iterdir())) == 1  # no sub-folders
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == EXPERT_TAGS
    steps = [e.step for e in events.Scalars("train/learning_rate")]
    assert steps == [256 * (i + 1) for i in range(len(steps))]  # x-axis: env steps
    assert steps[-1] >= cfg.budget.expert_env_steps


def test_pipeline_trains_caches_and_reloads_expert_ppo(tmp_path):
    overrides = ["expert=ppo", "video.enabled=false"]
    first = run_pipeline(tmp_path, overrides, name="first")
    assert first["expert"] == "ppo" and not first["expert/cache_hit"]
    assert len(list((tmp_path / "cache" / "experts").glob("*.pt"))) == 1
    assert (tmp_path / "first" / "tb" / "expert").is_dir()
    again = run_pipeline(tmp_path, overrides, name="again")
    assert again["expert/cache_hit"]
    assert again["expert/eval/return_mean"] == first["expert/eval/return_mean"]
