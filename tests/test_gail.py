"""GAIL: the discriminator, the reward forms' signs, what the generator trains on, Box actions,
the pipeline, and that it learns (one torch thread, as conftest sets)."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from conftest import compose_config, plain, run_pipeline
from hydra.utils import instantiate
from test_learning import CARTPOLE, BalancingExpert
from test_pipeline import scalar_tags

from il_lab.config.gate import check_node
from il_lab.datasets.trajectories import Trajectory
from il_lab.envs import EnvSpec
from il_lab.errors import ConfigError
from il_lab.evaluation import RandomPolicy, eval_seeds, evaluate
from il_lab.interfaces import LearnerInputs
from il_lab.learners.discriminator import (
    REWARD_FORMS,
    DiscriminatorHyperparameters,
    reward_from_logits,
)
from il_lab.learners.gail import GAIL
from il_lab.rl import PPOHyperparameters, PPOTrainer
from il_lab.rollout import rollout
from il_lab.runtime.metrics import EVAL_TAGS, LEARNER_TAGS, SCORE_TAG

PENDULUM = EnvSpec("Pendulum-v1")


def shipped_ppo(total_env_steps: int, **overrides) -> PPOHyperparameters:
    """The generator settings of conf/learner/gail.yaml, then ``overrides``."""
    ppo = compose_config(["learner=gail"]).learner.ppo
    return dataclasses.replace(instantiate(ppo, total_env_steps=total_env_steps), **overrides)


def make_gail(
    env=CARTPOLE, demos=None, total_env_steps=20000, ppo_overrides=None, **overrides
) -> GAIL:
    """GAIL with the shipped settings (the annealing horizon is ``total_env_steps``)."""
    torch.manual_seed(0)
    kwargs = dict(
        ppo=shipped_ppo(total_env_steps=total_env_steps, **(ppo_overrides or {})),
        discriminator=DiscriminatorHyperparameters(
            hidden_sizes=(64, 64), activation="relu", learning_rate=1e-3, batch_size=512
        ),
        total_env_steps=total_env_steps,
        round_env_steps=1024,
        n_disc_updates=8,
        inputs=LearnerInputs(
            env=env,
            demonstrations=demos if demos is not None else rollout(BalancingExpert(), env, [0, 1]),
            rng=np.random.default_rng(0),
        ),
    )
    return GAIL(**{**kwargs, **overrides})


def random_pairs(n_episodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    runs = rollout(RandomPolicy(CARTPOLE.action_space, 0), CARTPOLE, list(range(n_episodes)))
    obs = np.concatenate([t.obs[:-1] for t in runs])
    return torch.as_tensor(obs), torch.as_tensor(np.concatenate([t.acts for t in runs]))


# the reward forms ---------------------------------------------------------------------------


@pytest.mark.parametrize("form", REWARD_FORMS)
def test_each_reward_form_rises_with_d_and_stays_finite(form):
    logits = torch.linspace(-20, 20, 401)  # D = sigmoid(logits), the expert's probability
    rewards = reward_from_logits(logits, form)
    assert (rewards.diff() > 0).all()  # fooling the discriminator (higher D) pays more
    extreme = reward_from_logits(torch.tensor([-1e4, -100.0, 100.0, 1e4]), form)
    assert torch.isfinite(extreme).all() and (extreme.diff() >= 0).all()  # D ~ 0 and D ~ 1
    d = torch.sigmoid(logits[150:251])  # where the textbook formulas are exact enough
    expected = {
        "gail": -torch.log(1 - d),
        "airl": torch.log(d) - torch.log(1 - d),
        "log_d": torch.log(d),
    }[form]
    torch.testing.assert_close(rewards[150:251], expected, rtol=1e-4, atol=1e-5)


def test_reward_signs_and_the_write_ups_convention():
    logits = torch.linspace(-10, 10, 101, dtype=torch.float64)
    assert (reward_from_logits(logits, "gail") > 0).all()
    assert (reward_from_logits(logits, "log_d") < 0).all()
    # The write-up's D is the learner's probability, 1 - ours, and its reward -log D_learner.
    d_learner = 1 - torch.sigmoid(logits)
    torch.testing.assert_close(reward_from_logits(logits, "gail"), -torch.log(d_learner))


# the discriminator ------------------------------------------------------------------------


def test_discriminator_separates_expert_from_random_pairs():
    gail = make_gail(n_disc_updates=300)
    obs, acts = random_pairs(60)
    n_train = len(obs) // 2
    gail._policy_obs, gail._policy_second = [obs[:n_train]], [acts[:n_train]]
    stats = gail.update_discriminator()
    assert gail.gradient_steps == 300
    assert stats["train/disc_acc_expert"] > 0.9 and stats["train/disc_acc_policy"] > 0.7
    held_out = rollout(BalancingExpert(), CARTPOLE, [7])[0]
    with torch.no_grad():
        expert_logits = gail.discriminator(
            torch.as_tensor(held_out.obs[:-1]), torch.as_tensor(held_out.acts)
        )
        random_logits = gail.discriminator(obs[n_train:], acts[n_train:])
    accuracy = ((expert_logits > 0).float().mean() + (random_logits < 0).float().mean()) / 2
    assert accuracy > 0.9, accuracy
    # ... so the expert's pairs earn more reward than the random policy's, in every form.
    for form in REWARD_FORMS:
        expert_reward = reward_from_logits(expert_logits, form).mean()
        assert expert_reward > reward_from_logits(random_logits, form).mean()


def test_gradient_penalty_keeps_far_logits_bounded():
    """Random CartPole pairs lie far outside the balancing expert's narrow states; unpenalized,
    a ReLU discriminator's logits there run far below zero (LunarLander's generator saw -35 to
    -59 per step). The penalty holds them near the scale of the input distance, and its
    zero-centred form (target 0) holds them nearer still."""
    obs, acts = random_pairs(60)
    far_logits = {}
    for penalty, target in ((0.0, 1.0), (10.0, 1.0), (10.0, 0.0)):
        disc_hp = DiscriminatorHyperparameters(
            hidden_sizes=(64, 64),
            learning_rate=1e-3,
            batch_size=512,
            grad_penalty=penalty,
            grad_penalty_target=target,
        )
        gail = make_gail(n_disc_updates=300, discriminator=disc_hp)
        gail._policy_obs, gail._policy_second = [obs], [acts]
        stats = gail.update_discriminator()
        assert stats["train/disc_acc_policy"] > 0.7  # it still separates them
        with torch.no_grad():
            far_logits[penalty, target] = gail.discriminator(obs, acts).min().item()
        gail.close()
    unpenalized, wgan, zero_centred = far_logits.values()
    assert wgan > -15 and unpenalized < 2 * wgan, far_logits
    assert zero_centred > wgan, far_logits

    # On in every env preset but CartPole's, where it hurt (0.631 against 1.000 over 5 seeds).
    for env in ("lunarlander", "lunarlander_continuous", "pendulum", "hopper", "halfcheetah"):
        assert (
            compose_config([f"env={env}", "learner=gail"]).learner.discriminator.grad_penalty == 10
        )
    assert compose_config(["learner=gail"]).learner.discriminator.grad_penalty == 0


def test_box_actions_are_rescaled_by_the_bounds():
    demos = rollout(RandomPolicy(PENDULUM.action_space, 0), PENDULUM, [0])
    gail = make_gail(env=PENDULUM, demos=demos)
    obs = torch.zeros(3, 3)
    inputs = gail.discriminator.encode(obs, torch.tensor([[-2.0], [0.0], [2.0]]))
    # [3 observation inputs, the action, the absorbing flag (0: not absorbing)]
    torch.testing.assert_close(inputs[:, 3], torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(inputs[:, -1], torch.zeros(3))
    one_hot = make_gail().discriminator.encode(torch.zeros(2, 4), torch.tensor([1, 0]))
    torch.testing.assert_close(one_hot[:, 4:6], torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    plain = make_gail(absorbing=False).discriminator.encode(torch.zeros(1, 4), torch.tensor([1]))
    assert plain.shape == (1, 6) and one_hot.shape == (2, 7)


# the generator ------------------------------------------------------------------------------


def spy_on_updates(
    monkeypatch, trainer: PPOTrainer, terminated: list | None = None
) -> list[torch.Tensor]:
    """The training rewards of every rollout PPO updates on (valid steps only); with a list
    ``terminated``, each rollout's termination flags (valid steps only) are appended to it."""
    seen = []
    update = trainer.update

    def spy(rollout):
        seen.append(rollout.rewards[rollout.valid].clone())
        if terminated is not None:
            terminated.append(rollout.terminated[rollout.valid].clone())
        return update(rollout)

    monkeypatch.setattr(trainer, "update", spy)
    return seen


def test_generator_trains_on_the_discriminators_reward_not_the_envs(monkeypatch):
    gail = make_gail(total_env_steps=2048, ppo_overrides={"n_envs": 8, "n_steps": 64})
    assert gail.trainer.reward_fn is not None
    calls = []
    reward_fn = gail.trainer.reward_fn
    gail.trainer.reward_fn = lambda *args: calls.append(len(args[0])) or reward_fn(*args)
    with torch.no_grad():  # a constant logit of 3: every pair earns r(3), never the env's 1
        gail.discriminator.head.weight.zero_()
        gail.discriminator.head.bias.fill_(3.0)
    gail.n_disc_updates = 1
    gail.disc_optimizer.param_groups[0]["lr"] = 0.0
    terminated = []
    seen = spy_on_updates(monkeypatch, gail.trainer, terminated)
    gail.learn(None)
    assert len(seen) == len(calls) == 4 and gail.env_steps == 2048
    per_step = reward_from_logits(torch.tensor(3.0), gail.reward_form).item()
    # The absorbing state earns the same forever: a terminal step adds its discounted tail.
    gamma = gail.trainer.hp.gamma
    for rewards, n_valid, ends in zip(seen, calls, terminated, strict=True):
        assert len(rewards) == n_valid and ends.any()  # CartPole's falls reach the update
        expected = torch.where(ends, per_step / (1 - gamma), per_step).float()
        torch.testing.assert_close(rewards, expected)


def test_without_absorbing_states_terminal_steps_earn_the_plain_reward(monkeypatch):
    gail = make_gail(
        total_env_steps=1024,
        absorbing=False,
        reward="gail",
        ppo_overrides={"n_envs": 8, "n_steps": 64},
    )
    with torch.no_grad():
        gail.discriminator.head.weight.zero_()
        gail.discriminator.head.bias.fill_(3.0)
    gail.disc_optimizer.param_groups[0]["lr"] = 0.0
    terminated = []
    seen = spy_on_updates(monkeypatch, gail.trainer, terminated)
    gail.learn(None)
    assert torch.cat(terminated).any()
    for rewards in seen:
        torch.testing.assert_close(rewards, torch.full_like(rewards, math.log1p(math.exp(3.0))))


def test_true_reward_switch_is_plain_ppo(monkeypatch):
    gail = make_gail(
        total_env_steps=1024, train_on_true_reward=True, ppo_overrides={"n_envs": 8, "n_steps": 64}
    )
    assert gail.trainer.reward_fn is None
    seen = spy_on_updates(monkeypatch, gail.trainer)
    gail.learn(None)
    assert all((rewards == 1.0).all() for rewards in seen)  # CartPole's own reward
    assert gail.gradient_steps == gail.trainer.n_updates  # the discriminator never trained


def test_reward_normalization_divides_by_the_running_std_and_keeps_the_sign():
    gail = make_gail(normalize_reward=True, reward="airl")
    obs, acts = random_pairs(20)
    raw = gail.reward(obs, acts)
    scaled = gail._reward_fn(obs, acts, obs, torch.zeros(len(obs), dtype=torch.bool))
    # RunningMeanStd starts from a tiny prior count (1e-4), as SB3's does: hence rtol 1e-4.
    expected = raw / raw.double().std(unbiased=False).float()
    torch.testing.assert_close(scaled, expected, rtol=1e-4, atol=1e-6)
    assert (torch.sign(scaled) == torch.sign(raw)).all()
    gail.close()


def warm_started_agreement(**overrides) -> float:
    """The share of a held-out expert episode's actions the policy takes after the warm start."""
    gail = make_gail(bc_warm_start_steps=300, **overrides)
    gail.run_rounds(0)
    assert gail.env_steps == 0 and gail.gradient_steps == 300
    held_out = rollout(BalancingExpert(), CARTPOLE, [7])[0]
    agreement = np.mean(gail.policy.predict(held_out.obs[:-1])[0] == held_out.acts)
    gail.close()
    return float(agreement)


def test_bc_warm_start_imitates_before_any_env_step():
    assert warm_started_agreement() > 0.9


def test_bc_warm_start_learning_rate_is_its_own():
    """A generator learning rate too small for a few hundred supervised steps (rl-zoo's MuJoCo
    values are 2e-5) need not starve the warm start."""
    tiny = {"learning_rate": 1e-6}
    assert warm_started_agreement(ppo_overrides=tiny) < 0.8
    assert warm_started_agreement(ppo_overrides=tiny, bc_warm_start_learning_rate=2.5e-3) > 0.9
    cfg = compose_config(["learner=gail", "learner.bc_warm_start_learning_rate=0"])
    with pytest.raises(ConfigError, match="learner.bc_warm_start_learning_rate=0 is not allowed"):
        check_node(plain(cfg)["learner"], GAIL, "learner.")


def test_pendulum_box_actions_flow_through(monkeypatch):
    """The discriminator sees each step's continuous action as the env got it, and the
    generator trains on exactly the discriminator's reward for those pairs."""
    demos = rollout(RandomPolicy(PENDULUM.action_space, 0), PENDULUM, [0, 1])
    gail = make_gail(
        env=PENDULUM,
        demos=demos,
        total_env_steps=800,
        round_env_steps=400,
        reward="gail",
        ppo_overrides={"n_envs": 4, "n_steps": 100, "batch_size": 100},
    )
    judged = []
    reward = gail.reward

    def spy_reward(obs, acts):
        judged.append((acts.clone(), reward(obs, acts)))
        return judged[-1][1]

    monkeypatch.setattr(gail, "reward", spy_reward)
    seen = spy_on_updates(monkeypatch, gail.trainer)
    gail.learn(None)
    assert gail.env_steps == 800 and gail.gradient_steps == 2 * 8 + gail.trainer.n_updates
    assert len(judged) == len(seen) == 2
    for (acts, d_reward), trained_on in zip(judged, seen, strict=True):
        assert acts.shape == (400, 1) and acts.dtype == torch.float32
        inside = acts.abs() < 2  # in the env's bounds, and not only at them
        assert inside.float().mean() > 0.5 and (acts.abs() <= 2).all()
        assert len(torch.unique(acts)) > len(acts) // 2  # continuous, not a few bins
        # Pendulum never terminates: no absorbing tail, so the reward is D's alone
        torch.testing.assert_close(trained_on, d_reward, rtol=0, atol=0)
    actions, _ = gail.policy.predict(demos[0].obs[:5])
    assert actions.shape == (5, 1)


# the pipeline and learning ------------------------------------------------------------------


def test_write_ups_setting_is_one_override_away():
    by_hand = compose_config(
        ["learner=gail", "env.max_episode_steps=200", "budget.demo_episodes=1", "expert=ppo"]
    )
    preset = compose_config(["+experiment=gail_cartpole200"])
    for cfg in (by_hand, preset):
        assert cfg.learner._target_ == "il_lab.learners.gail.GAIL"
        assert cfg.expert._target_ == "il_lab.experts.ppo.PPOExpert"
        assert (cfg.env.max_episode_steps, cfg.budget.demo_episodes) == (200, 1)
        assert cfg.learner.total_env_steps == cfg.learner.ppo.total_env_steps == 100_000
    assert preset.report.checks[0].metric == "learner/eval/return_mean"


def test_gail_smoke_run_through_the_pipeline(tmp_path):
    metrics = run_pipeline(tmp_path, ["learner=gail"])
    assert metrics["learner"] == "gail"
    assert metrics["learner/env_steps"] == 1024  # 500 asked; PPO runs whole 1024-step rollouts
    assert metrics["learner/expert_queries"] == 0
    assert metrics["learner/gradient_steps"] > 8
    tags = scalar_tags(tmp_path / "run" / "tb" / "learner")
    assert EVAL_TAGS - {SCORE_TAG} <= tags and tags - EVAL_TAGS <= LEARNER_TAGS["gail"]
    core = {"train/disc_loss", "train/disc_acc_expert", "train/disc_reward_mean"}
    assert core | {"train/policy_gradient_loss", "train/approx_kl"} <= tags


def test_gail_learns_the_experts_behaviour_in_seconds():
    gail = make_gail(total_env_steps=49152)  # with the airl form: 269 after 32768, 498 here
    gail.learn(None)
    seeds = eval_seeds(1000, 10)
    random = evaluate(RandomPolicy(CARTPOLE.action_space, 0), CARTPOLE, seeds).mean
    learned = evaluate(gail.policy, CARTPOLE, seeds).mean
    assert random < 40 and learned > 300, (learned, random)
    # Not just balancing: the expert's own actions. (With the `gail` form and the discriminator
    # frozen, a run returned 145 with agreement 0.50 when measured: its survival bonus alone.)
    held_out = rollout(BalancingExpert(), CARTPOLE, [7])[0]
    agreement = np.mean(gail.policy.predict(held_out.obs[:-1])[0] == held_out.acts)
    assert agreement > 0.7, agreement


# absorbing states ---------------------------------------------------------------------------

MOUNTAIN_CAR = EnvSpec("MountainCar-v0")  # its episodes end in success: reaching the flag


def hand_made_episode(pairs_obs, acts, terminated: bool) -> Trajectory:
    obs = np.concatenate([pairs_obs, pairs_obs[-1:]]).astype(np.float32)
    return Trajectory(obs, acts, np.zeros(len(acts), np.float32), terminated, not terminated)


def discounted_gail_return(gail: GAIL, episode: Trajectory) -> float:
    """The generator's discounted return of ``episode`` under the current discriminator, through
    the same reward function PPO calls (the terminal step carries the absorbing tail)."""
    n = len(episode.acts)
    terminated = torch.zeros(n, dtype=torch.bool)
    terminated[-1] = episode.terminated
    obs = torch.as_tensor(episode.obs[:-1])
    rewards = gail._reward_fn(obs, torch.as_tensor(episode.acts), obs, terminated)
    gail._policy_obs, gail._policy_second, gail._policy_terminals = [], [], 0
    discounts = gail.trainer.hp.gamma ** torch.arange(n, dtype=torch.float32)
    return float((discounts * rewards).sum())


@pytest.mark.parametrize("absorbing, reward", [(True, "airl"), (True, "gail"), (False, "gail")])
def test_finishing_beats_stalling_only_with_absorbing_states(absorbing, reward):
    """The expert drives to the flag in 40 steps; the staller replays the expert's 40 pairs
    five times over and is cut by the time limit at 200 steps. Pair by pair the two look alike,
    so only how the episodes end tells them apart: with absorbing states the discriminator
    learns that the expert's episodes end, and finishing pays; without, the always-positive
    reward pays the staller for its 200 steps."""
    position = np.linspace(-0.5, 0.5, 40)
    expert_obs = np.stack([position, np.full(40, 0.025)], axis=1)
    push_right = np.full(40, 2)
    expert = hand_made_episode(expert_obs, push_right, terminated=True)
    loop = np.tile(np.arange(40), 5)
    staller = hand_made_episode(expert_obs[loop], push_right[loop], terminated=False)

    gail = make_gail(
        env=MOUNTAIN_CAR, demos=[expert] * 5, absorbing=absorbing, reward=reward, n_disc_updates=1
    )
    obs, acts = torch.as_tensor(staller.obs[:-1]), torch.as_tensor(staller.acts)
    for _ in range(300):  # the generator keeps stalling; the discriminator learns from it
        gail._reward_fn(obs, acts, obs, torch.zeros(len(obs), dtype=torch.bool))
        gail.update_discriminator()

    finishing = discounted_gail_return(gail, expert)
    stalling = discounted_gail_return(gail, staller)
    if absorbing:
        assert gail.absorbing_reward() > 2.0  # D(absorbing) near 1: ending looks like the expert
        assert finishing > 2 * stalling, (finishing, stalling)
    else:
        assert stalling > finishing, (finishing, stalling)
    gail.close()


def test_time_limit_truncations_are_never_absorbing():
    """Pendulum only truncates: its generator data never gains an absorbing row."""
    gail = make_gail(
        env=PENDULUM,
        demos=rollout(RandomPolicy(PENDULUM.action_space, 0), PENDULUM, [0]),
        total_env_steps=1024,
        ppo_overrides={"n_envs": 4, "n_steps": 128},
    )
    assert gail.n_expert_terminals == 0  # the demonstrations were truncated, not terminated
    recorded = []
    update = gail.update_discriminator

    def spy():
        recorded.append(gail._policy_terminals)
        return update()

    gail.update_discriminator = spy
    gail.learn(None)
    assert len(recorded) >= 1 and recorded == [0] * len(recorded)
    assert len(gail.trainer.episode_lengths) >= 4  # episodes did end, at the time limit
