"""DAC: rewards from the current discriminator, absorbing rows on both sides, resume, every env
preset, the pipeline's tags, and that it learns Pendulum (one torch thread, as conftest sets)."""

import numpy as np
import pytest
import torch
from conftest import CONF, compose_config, run_pipeline
from hydra.utils import instantiate
from test_continuous import SwingUp
from test_pipeline import scalar_tags

from il_lab import pipeline
from il_lab.datasets.trajectories import Trajectory
from il_lab.envs import EnvSpec
from il_lab.errors import ConfigError
from il_lab.evaluation import RandomPolicy, eval_seeds, evaluate
from il_lab.interfaces import LearnerInputs
from il_lab.learners.dac import DAC, REWARD_STD_FLOOR
from il_lab.learners.discriminator import (
    DiscriminatorHyperparameters,
    absorbing_reward,
    reward_from_logits,
)
from il_lab.rl.sac import SAC_TAGS, SACHyperparameters
from il_lab.rollout import rollout
from il_lab.runtime.checkpoint import Checkpoint
from il_lab.runtime.metrics import EVAL_TAGS, EXPERT_TAGS, LEARNER_TAGS, SCORE_TAG

PENDULUM = EnvSpec("Pendulum-v1")
# Random actions topple the pole within a few dozen steps: every episode ends in a terminal state.
INVERTED_PENDULUM = EnvSpec("InvertedPendulum-v5")


def make_dac(env=PENDULUM, demos=None, total_env_steps=600, sac=None, disc=None, **overrides):
    """A seconds-long DAC: small networks and batches, seeded."""
    torch.manual_seed(0)
    sac_values = dict(
        total_env_steps=total_env_steps,
        learning_starts=100,
        batch_size=32,
        learning_rate=1e-3,
        net_arch=(32, 32),
    )
    disc_values = dict(hidden_sizes=(32, 32), learning_rate=1e-3, batch_size=64, grad_penalty=10.0)
    kwargs = dict(
        sac=SACHyperparameters(**{**sac_values, **(sac or {})}),
        discriminator=DiscriminatorHyperparameters(**{**disc_values, **(disc or {})}),
        total_env_steps=total_env_steps,
        disc_update_interval=200,
        n_disc_updates=5,
        inputs=LearnerInputs(
            env=env,
            demonstrations=demos if demos is not None else rollout(SwingUp(), PENDULUM, [0, 1]),
            rng=np.random.default_rng(0),
        ),
    )
    return DAC(**{**kwargs, **overrides})


# the generator's reward ------------------------------------------------------------------------


def test_the_same_batch_earns_a_new_reward_after_a_discriminator_update():
    """No stale rewards: SAC's targets for one sampled batch follow the discriminator."""
    dac = make_dac(total_env_steps=400)
    dac.learn(None)
    trainer = dac.trainer
    assert trainer.n_updates == 300 and dac.gradient_steps == 300 + 2 * 5
    env_rewards = trainer.buffer.data["rews"][: trainer.buffer.size].clone()
    batch = trainer.buffer.sample(64, trainer.generator)
    ent_coef, generator_state = torch.tensor(0.1), trainer.generator.get_state()

    def training_rewards_and_targets():
        acts = trainer.policy.to_env(batch["acts"])
        rewards = trainer.reward_fn(batch["obs"], acts, batch["next_obs"], batch["terminated"])
        trainer.generator.set_state(generator_state)  # the same next actions each time
        return rewards, trainer.td_target(batch, ent_coef)

    before, targets_before = training_rewards_and_targets()
    dac.update_discriminator()
    after, targets_after = training_rewards_and_targets()

    assert (before - after).abs().min() > 0  # every transition's reward moved
    with torch.no_grad():  # ... to exactly what the updated discriminator says
        logits = dac.discriminator(batch["obs"], trainer.policy.to_env(batch["acts"]))
    torch.testing.assert_close(after, reward_from_logits(logits, "airl"), rtol=0, atol=0)
    # and SAC's critic targets for that batch moved by the same amounts
    torch.testing.assert_close(targets_after - targets_before, after - before)
    # the buffer still holds the env's rewards: nothing was stored
    assert torch.equal(trainer.buffer.data["rews"][: trainer.buffer.size], env_rewards)


def test_a_terminal_transition_earns_the_absorbing_states_discounted_tail():
    dac = make_dac(total_env_steps=200)
    obs = torch.as_tensor(rollout(SwingUp(), PENDULUM, [3])[0].obs[:4])  # (4, 3)
    acts = torch.tensor([[-2.0], [-1.0], [0.5], [2.0]])
    terminated = torch.tensor([False, True, False, True])
    rewards = dac.trainer.reward_fn(obs, acts, obs, terminated)
    plain = dac.reward(obs, acts)
    gamma = dac.trainer.hp.gamma
    tail = gamma * dac.absorbing_reward() / (1 - gamma)
    torch.testing.assert_close(rewards, plain + terminated.float() * tail)
    dac.absorbing = False
    torch.testing.assert_close(dac.trainer.reward_fn(obs, acts, obs, terminated), plain)
    dac.close()


def test_normalize_reward_divides_by_the_reward_std_over_the_policy_pairs():
    dac = make_dac(total_env_steps=400, normalize_reward=True)
    dac.learn(None)  # its last act is a discriminator update
    obs, acts, _ = dac.policy_pairs()
    std = dac.reward(obs, acts).std().item()
    assert dac._reward_std == pytest.approx(std) and std not in (1.0, REWARD_STD_FLOOR)
    assert dac.state_dict()["reward_std"] == dac._reward_std  # resumes with it
    terminated = torch.tensor([False, True, False, True])
    scaled = dac.trainer.reward_fn(obs[:4], acts[:4], obs[:4], terminated)
    dac.normalize_reward = False
    plain = dac.trainer.reward_fn(obs[:4], acts[:4], obs[:4], terminated)
    torch.testing.assert_close(scaled, plain / std)  # the absorbing tail too, sign kept
    dac.close()


# absorbing states ------------------------------------------------------------------------------


def hand_made_episode(n: int, terminated: bool, kept=None) -> Trajectory:
    obs = np.random.default_rng(n).normal(0, 0.1, (n + 1, 4)).astype(np.float32)
    acts = np.zeros((n, 1), np.float32)
    return Trajectory(obs, acts, np.zeros(n, np.float32), terminated, not terminated, kept)


def absorbing_shares(monkeypatch, dac: DAC) -> tuple[float, float]:
    """The share of absorbing rows in the expert's and the policy's halves of every
    discriminator minibatch of one update."""
    expert_rows, policy_rows = [], []
    logits = dac.discriminator.logits

    def spy(inputs):
        if len(inputs) != 2 * dac.disc_hp.batch_size or inputs.requires_grad:
            return logits(inputs)  # the absorbing reward, the gradient penalty's interpolations
        half = len(inputs) // 2
        expert_rows.append(inputs[:half, -1])
        policy_rows.append(inputs[half:, -1])
        return logits(inputs)

    monkeypatch.setattr(dac.discriminator, "logits", spy)
    dac.update_discriminator()
    monkeypatch.undo()
    return torch.cat(expert_rows).mean().item(), torch.cat(policy_rows).mean().item()


def test_terminals_of_each_data_set_yield_absorbing_rows_in_its_minibatches(monkeypatch):
    """One absorbing row per terminal episode end, expert's and policy's alike, drawn
    ``1 / (1 - gamma)`` times as often as a transition; truncations yield none."""
    demos = [
        hand_made_episode(30, terminated=True),  # a terminal end: one absorbing row
        hand_made_episode(30, terminated=True, kept=np.arange(0, 30, 4)),  # its end not kept
        hand_made_episode(30, terminated=False),  # truncated
    ]
    dac = make_dac(
        env=INVERTED_PENDULUM, demos=demos, total_env_steps=300, n_disc_updates=40,
        sac={"learning_starts": 300},  # random actions only: the pole falls again and again
    )  # fmt: skip
    dac.trainer.learn(300)  # fill the buffer; no discriminator update yet
    n_episodes = len(dac.trainer.episode_lengths)  # every one of them ended in a fall
    assert n_episodes > 5 and dac.trainer.buffer.data["terminated"].sum() == n_episodes
    weight = 1 / (1 - dac.trainer.hp.gamma)  # an absorbing row's, a transition's being 1
    n_expert = 30 + 8 + 30
    n_policy = dac.trainer.buffer.size
    expected_expert = weight / (n_expert + weight)
    expected_policy = n_episodes * weight / (n_policy + n_episodes * weight)

    expert_share, policy_share = absorbing_shares(monkeypatch, dac)
    # 40 minibatches of 64 rows on each side: a standard error below 0.01
    assert expert_share == pytest.approx(expected_expert, abs=0.04)
    assert policy_share == pytest.approx(expected_policy, abs=0.04)
    dac.close()

    # Pendulum only truncates, and so do these demonstrations: no absorbing row on either side.
    dac = make_dac(total_env_steps=400)  # SwingUp's demonstrations: 200 steps, truncated
    dac.trainer.learn(400)
    assert not dac.trainer.buffer.data["terminated"].any() and dac.n_expert_terminals == 0
    assert absorbing_shares(monkeypatch, dac) == (0.0, 0.0)
    dac.close()


# resume ----------------------------------------------------------------------------------------


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("quantile", [0.0, 0.5])
def test_the_absorbing_floor_raises_the_absorbing_reward_to_the_policy_pairs_quantile(quantile):
    # expert episodes that never end, a random policy that falls again and again: the
    # discriminator learns the absorbing state as the policy's, below most of the policy's pairs
    demos = [hand_made_episode(30, terminated=False), hand_made_episode(31, terminated=False)]
    kwargs = dict(
        env=INVERTED_PENDULUM, demos=demos, total_env_steps=300, n_disc_updates=40,
        sac={"learning_starts": 300},
    )  # fmt: skip
    plain, floored = make_dac(**kwargs), make_dac(**kwargs, absorbing_floor_quantile=quantile)
    for dac in (plain, floored):
        dac.trainer.learn(300)
        dac.update_discriminator()
    raw = plain.absorbing_reward()
    assert raw == pytest.approx(absorbing_reward(floored.discriminator, "airl"))  # same D
    obs, acts, _ = floored.policy_pairs()
    floor = floored.reward(obs, acts).quantile(quantile).item()
    if quantile == 0.5:
        assert raw < floor  # the floor binds
    assert floored.absorbing_reward() == pytest.approx(max(raw, floor))
    assert floored.state_dict()["absorbing_floor"] == pytest.approx(floor)  # resumes with it
    plain.close(), floored.close()


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_runs_weights(tmp_path, monkeypatch):
    reference = make_dac(total_env_steps=1000)
    reference.learn(None)

    def checkpoint() -> Checkpoint:
        return Checkpoint(tmp_path / "learner.pt", config_hash="dac", events_dir=tmp_path / "tb")

    real_save, saved = Checkpoint.save, []

    def save_then_die(self, state, summary=""):
        real_save(self, state, summary)
        saved.append(summary)
        if len(saved) == 3:  # at 600 env steps: mid-episode, the buffer and the envs saved
            raise Interrupted(summary)

    monkeypatch.setattr(Checkpoint, "save", save_then_die)
    with pytest.raises(Interrupted):
        make_dac(total_env_steps=1000).learn(None, checkpoint())
    monkeypatch.undo()
    resumed = make_dac(total_env_steps=1000)
    resumed.learn(None, checkpoint())

    assert saved[-1] == "DAC at 600 env steps"
    assert (resumed.env_steps, resumed.gradient_steps) == (1000, 900 + 5 * 5)
    for name in ("policy", "critic", "critic_target"):
        ours = getattr(resumed.trainer, name).state_dict()
        theirs = getattr(reference.trainer, name).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), name
    ours, theirs = resumed.discriminator.state_dict(), reference.discriminator.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert torch.equal(resumed.generator.get_state(), reference.generator.get_state())


# config and pipeline ---------------------------------------------------------------------------

ENV_PRESETS = sorted(p.stem for p in (CONF / "env").glob("*.yaml"))
DISCRETE = {"cartpole", "lunarlander"}
TUNED_ENV_STEPS = {"pendulum": 30_000}  # conf/tuned_learner/<env>_dac.yaml; 300,000 elsewhere


@pytest.mark.parametrize("env", ENV_PRESETS)
def test_every_env_preset_composes_with_dac(env):
    cfg = compose_config([f"env={env}", "learner=dac"])
    expected = TUNED_ENV_STEPS.get(env, 300_000)
    assert cfg.learner.total_env_steps == cfg.learner.sac.total_env_steps == expected
    smoke = compose_config([f"env={env}", "learner=dac", "debug=smoke"]).learner
    assert smoke.total_env_steps == smoke.sac.total_env_steps == 500
    if env in DISCRETE:  # SAC acts in Box spaces only: the gate refuses it before any work
        with pytest.raises(ConfigError, match=f"learner=dac cannot act in env.id='{cfg.env.id}'"):
            pipeline.check(cfg)
        return
    spec = pipeline.check(cfg).env
    demos = rollout(RandomPolicy(spec.action_space, 0), spec, [0])
    inputs = LearnerInputs(env=spec, demonstrations=demos, rng=np.random.default_rng(0))
    make_learner = instantiate(smoke, _partial_=True)
    learner = make_learner(inputs=inputs)
    actions, _ = learner.policy.predict(demos[0].obs[:3])
    assert actions.shape == (3, *spec.action_space.shape)
    learner.close()


def test_dacs_tags_are_sacs_and_the_discriminators():
    discriminator_tags = LEARNER_TAGS["gail"] - EXPERT_TAGS  # with the warm start's bc_loss
    optional_tags = {"train/disc_reward_std", "train/disc_absorbing_floor"}
    assert LEARNER_TAGS["dac"] == set(SAC_TAGS) | discriminator_tags | optional_tags


@pytest.mark.slow
def test_dac_smoke_run_through_the_pipeline(tmp_path):
    # 1000 env steps, so that SAC logs its tags once (every 1000); the discriminator first
    # trains at 500, before SAC's first update
    metrics = run_pipeline(
        tmp_path,
        ["learner=dac", "env=pendulum", "video.enabled=false", "budget.learner_env_steps=1000",
         "learner.sac.learning_starts=500", "learner.disc_update_interval=500",
         "learner.sac.batch_size=64", "learner.sac.net_arch=[64,64]"],
    )  # fmt: skip
    assert metrics["learner"] == "dac" and metrics["env"] == "Pendulum-v1"
    assert metrics["learner/env_steps"] == 1000 and metrics["learner/expert_queries"] == 0
    assert metrics["learner/gradient_steps"] == 500 + 2 * 100  # SAC's updates, the disc's steps
    assert (tmp_path / "run" / "learner.pt").is_file()
    tags = scalar_tags(tmp_path / "run" / "tb" / "learner")
    assert EVAL_TAGS - {SCORE_TAG} <= tags
    # no warm start, no BC term, the reward not normalized, no absorbing floor
    optional = {"train/bc_loss", "train/disc_reward_std", "train/disc_absorbing_floor"}
    assert tags - EVAL_TAGS == LEARNER_TAGS["dac"] - optional


def test_the_bc_warm_start_fits_the_actor_to_the_demonstrations_actions():
    demos = rollout(SwingUp(), PENDULUM, [0, 1])
    obs = torch.as_tensor(np.concatenate([t.obs[:-1] for t in demos]))
    acts = np.concatenate([t.acts for t in demos])

    def error(learner):
        return np.mean((learner.policy.predict(obs.numpy())[0] - acts) ** 2)

    cold = make_dac(demos=demos)
    warm = make_dac(demos=demos, bc_warm_start_steps=300, bc_warm_start_learning_rate=3e-3)
    assert error(cold) == error(make_dac(demos=demos))  # same seed, no warm start: same actor
    warm.run_rounds(0)  # the warm start runs before the first env step
    assert warm.env_steps == 0 and warm.gradient_steps == 300
    assert error(warm) < 0.5 * error(cold)
    warm.run_rounds(0)  # and only once
    assert warm.gradient_steps == 300
    cold.close(), warm.close()


def test_the_bc_term_keeps_the_actor_near_the_demonstrations_actions():
    demos = rollout(SwingUp(), PENDULUM, [0, 1])
    obs = np.concatenate([t.obs[:-1] for t in demos])
    acts = np.concatenate([t.acts for t in demos])
    plain, with_bc = make_dac(demos=demos), make_dac(demos=demos, bc_weight=10.0)
    for learner in (plain, with_bc):
        learner.run_rounds(600)  # 500 SAC updates
    errors = [np.mean((learner.policy.predict(obs)[0] - acts) ** 2) for learner in (plain, with_bc)]
    assert errors[1] < 0.5 * errors[0]
    assert "train/bc_loss" in with_bc.trainer._stats and "train/bc_loss" not in plain.trainer._stats
    plain.close(), with_bc.close()


def test_the_discriminator_sees_the_buffers_last_window_or_all_of_it():
    whole, windowed = make_dac(), make_dac(disc_policy_window=150)
    for learner in (whole, windowed):
        learner.trainer.learn(400)
    obs, _, _ = whole.policy_pairs()
    last, _, _ = windowed.policy_pairs()
    assert len(obs) == whole.trainer.buffer.size > 300 and len(last) == 150
    torch.testing.assert_close(last, obs[-150:])  # same seed, same data: the newest rows
    whole.close(), windowed.close()


@pytest.mark.parametrize("reads_actions", ["bc_warm_start_steps=10", "bc_weight=0.4"])
def test_dac_from_observation_refuses_bc_before_any_work(reads_actions):
    cfg = compose_config(
        ["env=pendulum", "learner=dac", "learner.pairs=state_next_state",
         f"learner.{reads_actions}"]
    )  # fmt: skip
    with pytest.raises(ConfigError, match=f"learner.{reads_actions} is not allowed with"):
        pipeline.check(cfg)


# learning --------------------------------------------------------------------------------------


@pytest.mark.slow  # about 40 s on one thread of the shared 2-core machine
def test_dac_beats_random_on_pendulum():
    # 10k env steps: seeds 0-3 reached -175, -551, -250 and -290 (random: -1332); at 8k seed 1
    # was still at -1054.
    total = 10_000
    dac = make_dac(
        demos=rollout(SwingUp(), PENDULUM, list(range(10))),
        total_env_steps=total,
        disc_update_interval=1000,
        n_disc_updates=100,
        sac=dict(learning_starts=1000, batch_size=128, gamma=0.98, net_arch=(128, 128)),
        disc=dict(hidden_sizes=(64, 64), batch_size=256),
    )
    dac.learn(None)
    seeds = eval_seeds(1000, 10)
    learned = evaluate(dac.policy, PENDULUM, seeds).mean
    random = evaluate(RandomPolicy(PENDULUM.action_space, 0), PENDULUM, seeds).mean
    assert learned > random + 500, (learned, random)
