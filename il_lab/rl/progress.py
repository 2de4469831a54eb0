"""One progress bar over a whole training budget, however many ``learn`` calls it takes.

PPO's and SAC's trainers advance ``trainer.progress`` when it is set; the caller that knows the
budget (an expert, an adversarial learner's rounds) sets it and closes it.
"""

from tqdm.auto import tqdm


def budget_bar(trainer, total_env_steps: int, desc: str) -> tqdm:
    """A bar of ``trainer``'s env steps out of ``total_env_steps``; a resumed run's bar starts
    where the run is."""
    return tqdm(total=total_env_steps, initial=trainer.num_timesteps, desc=desc, unit="step")
