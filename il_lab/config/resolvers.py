"""OmegaConf resolvers the configs use; imported by the pipeline so they exist before Hydra
names a run folder."""

import hashlib

from omegaconf import OmegaConf

# A folder name's limit is 255 bytes on common filesystems; the suffix follows a job number or a
# time (at most 9 bytes), so it keeps well under.
MAX_SUFFIX_BYTES = 230


def _suffix(text: str) -> str:
    """``_<text>`` or nothing, so a run without overrides gets no dangling separator.

    A ``/`` (as in ``learner/bc=mlp``) would nest folders; it becomes ``.``. A sweep with many
    overrides would exceed the filesystem's name limit and fail at the first job, so a long text
    is cut and ends in a hash of the whole (the overrides themselves stay in ``.hydra/``).
    """
    if not text:
        return ""
    name = f"_{text.replace('/', '.')}"
    if len(name.encode()) <= MAX_SUFFIX_BYTES:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    head = name.encode()[: MAX_SUFFIX_BYTES - len(digest) - 1].decode(errors="ignore")
    return f"{head}~{digest}"


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
