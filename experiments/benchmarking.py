"""What the "time to threshold" benchmarks share: shipped configs and honest summaries."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shipped(group: str, name: str, **values) -> dict:
    """``conf/<group>/<name>.yaml`` as a plain dict, with ``values`` replacing its keys.

    ``values`` must fill every interpolation into the root config (e.g. the budget) first.
    """
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ROOT / "conf" / group / f"{name}.yaml")
    for key, value in values.items():
        OmegaConf.update(cfg, key, value, force_add=False)
    return OmegaConf.to_container(cfg, resolve=True)


def fmt_reached(value: float | int | None, spec: str) -> str:
    """A figure to the threshold, or "not reached"."""
    return "not reached" if value is None else format(value, spec)


def to_threshold(value: float | int | None) -> float:
    """A run that never reached the threshold counts as infinitely slow, so medians stay honest."""
    return float("inf") if value is None else float(value)


def shipped_run(overrides: list[str], keys: list[str]) -> dict:
    """The resolved ``keys`` of the config ``python run.py <overrides>`` composes."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return {key: OmegaConf.to_container(cfg[key], resolve=True) for key in keys}
