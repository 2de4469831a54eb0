"""OmegaConf resolvers the configs use; imported by the pipeline so they exist before Hydra
names a run folder."""

from omegaconf import OmegaConf


def _suffix(text: str) -> str:
    """``_<text>`` or nothing, so a run without overrides gets no dangling separator.

    A ``/`` (as in ``learner/bc=mlp``) would nest folders; it becomes ``.``.
    """
    return f"_{text.replace('/', '.')}" if text else ""


def _or(value, default):
    """``value`` unless it is null: a budget left null falls back to the learner's own default."""
    return default if value is None else value


def _times(value: int, factor: int) -> int:
    """``value * factor``: a preset that needs a multiple of a budget still follows the budget
    (``debug=smoke``'s tiny one included)."""
    return int(value) * int(factor)


OmegaConf.register_new_resolver("il_lab.suffix", _suffix, replace=True)
OmegaConf.register_new_resolver("il_lab.times", _times, replace=True)
OmegaConf.register_new_resolver("il_lab.or", _or, replace=True)
