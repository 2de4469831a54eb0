"""Roll any ``Policy`` out for whole episodes on given env seeds, several episodes at a time."""

from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from il_lab.datasets.trajectories import Trajectory
from il_lab.envs import EnvSpec
from il_lab.interfaces import Policy


def rollout(
    policy: Policy,
    env: EnvSpec,
    seeds: Sequence[int],
    *,
    deterministic: bool = True,
    n_envs: int = 16,
    desc: str | None = None,
) -> list[Trajectory]:
    """One episode per seed, in the order of ``seeds``.

    Up to ``n_envs`` episodes run side by side so that the policy acts on a batch; each env is
    reset with the next seed when its episode ends, so the result does not depend on ``n_envs``
    for a deterministic policy. ``predict``'s ``state`` and ``episode_start`` are honoured, so
    stacked-observation policies keep one history per env.
    """
    n_envs = max(1, min(n_envs, len(seeds)))
    envs = [env.make() for _ in range(n_envs)]
    results: list[Trajectory | None] = [None] * len(seeds)
    episode_of = [-1] * n_envs  # which seed index each env is playing; -1 when idle
    buffers: list[dict] = [{} for _ in range(n_envs)]
    obs_batch = np.zeros((n_envs, *env.observation_space.shape), dtype=np.float32)
    episode_start = np.ones(n_envs, dtype=bool)
    next_episode = 0

    def start(i: int) -> None:
        nonlocal next_episode
        obs, _ = envs[i].reset(seed=int(seeds[next_episode]))
        episode_of[i] = next_episode
        next_episode += 1
        buffers[i] = {"obs": [obs], "acts": [], "rews": []}
        obs_batch[i] = obs
        episode_start[i] = True

    for i in range(n_envs):
        start(i)
    state = None
    progress = tqdm(total=len(seeds), desc=desc, disable=desc is None, leave=False)
    try:
        while any(e >= 0 for e in episode_of):
            actions, state = policy.predict(
                obs_batch, state=state, episode_start=episode_start, deterministic=deterministic
            )
            episode_start[:] = False
            for i, e in enumerate(episode_of):
                if e < 0:
                    continue
                obs, reward, terminated, truncated, _ = envs[i].step(_env_action(actions[i]))
                buf = buffers[i]
                buf["obs"].append(obs)
                buf["acts"].append(actions[i])
                buf["rews"].append(reward)
                obs_batch[i] = obs
                if terminated or truncated:
                    results[e] = Trajectory(
                        obs=np.asarray(buf["obs"], dtype=np.float32),
                        acts=np.asarray(buf["acts"]),
                        rews=np.asarray(buf["rews"], dtype=np.float32),
                        terminated=bool(terminated),
                        truncated=bool(truncated),
                    )
                    progress.update()
                    if next_episode < len(seeds):
                        start(i)
                    else:
                        episode_of[i] = -1
    finally:
        progress.close()
        for e in envs:
            e.close()
    return results  # type: ignore[return-value]


def _env_action(action: np.ndarray):
    return action.item() if np.ndim(action) == 0 else action
