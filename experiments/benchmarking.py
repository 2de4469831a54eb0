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
