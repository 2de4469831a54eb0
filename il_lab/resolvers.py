"""OmegaConf resolvers the configs use; imported by the pipeline so they exist before Hydra
names a run folder."""

from omegaconf import OmegaConf


def _suffix(text: str) -> str:
    """``_<text>`` or nothing, so a run without overrides gets no dangling separator."""
    return f"_{text}" if text else ""


OmegaConf.register_new_resolver("il_lab.suffix", _suffix, replace=True)
