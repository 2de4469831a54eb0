import gymnasium as gym
import numpy as np
import pytest

from il_lab.datasets.npz import save_trajectories
from il_lab.datasets.sources import load_trajectories
from il_lab.datasets.trajectories import (
    Trajectory,
    cap_transitions,
    stack_windows,
    windows_and_actions,
)
from il_lab.envs import EnvSpec
from il_lab.errors import ConfigError
from il_lab.evaluation import RandomPolicy
from il_lab.networks import MLPNet
from il_lab.policies import StackedObsPolicy
from il_lab.rollout import rollout

CARTPOLE = EnvSpec("CartPole-v1")


@pytest.fixture(scope="module")
def trajectories() -> list[Trajectory]:
    return rollout(RandomPolicy(CARTPOLE.action_space, 0), CARTPOLE, [1, 2, 3])


def test_rollout_records_whole_episodes(trajectories):
    for traj in trajectories:
        assert traj.obs.shape == (len(traj) + 1, 4)
        assert traj.terminated or traj.truncated


class LeanPolicy:
    """Deterministic: push the cart towards the side the pole leans to."""

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return (observation[:, 2] > 0).astype(np.int64), state


def test_rollout_does_not_depend_on_the_number_of_parallel_envs():
    seeds = [5, 6, 7, 8, 9]
    one = rollout(LeanPolicy(), CARTPOLE, seeds, n_envs=1)
    three = rollout(LeanPolicy(), CARTPOLE, seeds, n_envs=3)
    assert len(one) == 5
    for a, b in zip(one, three, strict=True):
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.acts, b.acts)


def test_npz_round_trip(tmp_path, trajectories):
    path = tmp_path / "demos.npz"
    save_trajectories(path, trajectories, CARTPOLE)
    loaded = load_trajectories(path, CARTPOLE)
    assert len(loaded) == len(trajectories)
    for a, b in zip(loaded, trajectories, strict=True):
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.acts, b.acts)
        np.testing.assert_array_equal(a.rews, b.rews)
        assert (a.terminated, a.truncated) == (b.terminated, b.truncated)


def test_corrupt_file_is_refused(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(ConfigError, match=r"demos\.path=.*broken\.npz.*not a readable"):
        load_trajectories(path, CARTPOLE)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_trajectories(tmp_path / "nope.npz", CARTPOLE)


def test_file_of_another_env_is_refused(tmp_path, trajectories):
    path = tmp_path / "demos.npz"
    save_trajectories(path, trajectories, CARTPOLE)
    with pytest.raises(ConfigError, match="Acrobot-v1"):
        load_trajectories(path, EnvSpec("Acrobot-v1"))


def test_file_with_wrong_shapes_is_refused(tmp_path, trajectories):
    path = tmp_path / "demos.npz"
    save_trajectories(path, trajectories, CARTPOLE)
    with np.load(path) as f:
        arrays = dict(f)
    arrays["obs"] = arrays["obs"][:, :3]
    np.savez(path, **arrays)
    with pytest.raises(ConfigError, match=r"observations of shape \(3,\)"):
        load_trajectories(path, CARTPOLE)


def test_cap_transitions_keeps_the_first_n(trajectories):
    n = len(trajectories[0]) + 2
    capped = cap_transitions(trajectories, n)
    assert sum(len(t) for t in capped) == n
    assert capped[-1].truncated and not capped[-1].terminated
    np.testing.assert_array_equal(capped[1].obs, trajectories[1].obs[:3])


def test_windows_pad_with_the_first_observation():
    obs = np.arange(5, dtype=np.float32)[:, None]  # (T=5, obs_dim=1)
    windows = stack_windows(obs, 3)[..., 0]
    np.testing.assert_array_equal(windows[0], [0, 0, 0])
    np.testing.assert_array_equal(windows[1], [0, 0, 1])
    np.testing.assert_array_equal(windows[4], [2, 3, 4])


def test_training_windows_equal_the_history_the_policy_keeps(trajectories):
    """Replaying stored episodes through predict reproduces every training window exactly."""
    context_len = 4
    policy = StackedObsPolicy(
        network=MLPNet(obs_dim=4, context_len=context_len, hidden_sizes=[8]),
        network_kwargs={},
        observation_space=CARTPOLE.observation_space,
        action_space=gym.spaces.Discrete(2),
        context_len=context_len,
    )
    windows, _ = windows_and_actions(trajectories, context_len)
    replayed, state = [], None
    for traj in trajectories:  # one env playing the episodes back to back
        for t in range(len(traj)):
            start = np.array([t == 0])
            _, state = policy.predict(traj.obs[t][None], state=state, episode_start=start)
            replayed.append(state[0].copy())
    np.testing.assert_array_equal(np.stack(replayed), windows)


def test_shared_normalization_uses_one_scale():
    obs = np.random.default_rng(0).normal(size=(1000, 4)) * np.array([1.0, 0.01, 1.0, 1.0])
    for mode, equal in (("shared", True), ("per_dim", False)):
        policy = StackedObsPolicy(
            network=MLPNet(obs_dim=4, context_len=1, hidden_sizes=[8]),
            network_kwargs={},
            observation_space=CARTPOLE.observation_space,
            action_space=gym.spaces.Discrete(2),
            context_len=1,
            obs_norm=mode,
        )
        policy.fit_normalization(obs)
        std = policy.obs_std.numpy()
        assert np.allclose(std, std[0]) == equal
        np.testing.assert_allclose(policy.obs_mean.numpy(), obs.mean(0), atol=1e-6)
