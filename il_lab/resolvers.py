"""OmegaConf resolvers the configs use; imported by the pipeline so they exist before Hydra
names a run folder."""

from omegaconf import OmegaConf


def _suffix(text: str) -> str:
    """``_<text>`` or nothing, so a run without overrides gets no dangling separator.

    A ``/`` (as in ``learner/bc=mlp``) would nest folders; it becomes ``.``.
    """
    return f"_{text.replace('/', '.')}" if text else ""


OmegaConf.register_new_resolver("il_lab.suffix", _suffix, replace=True)
