"""A content-addressed artifact cache shared by every run and every parallel sweep job.

An artifact (an expert, a demonstration set) is named by a hash of what determines it. It is
built into a temporary file beside its final name and renamed into place, all under a file lock,
so parallel jobs build each artifact once and nobody ever reads a half-written one.
"""

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from filelock import FileLock

log = logging.getLogger(__name__)


def content_key(payload: Mapping) -> str:
    """A stable hash of a JSON-able description (never a time or a path of a run)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class ArtifactCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / f"{key}{suffix}"

    def get_or_build(
        self, kind: str, payload: Mapping, suffix: str, build: Callable[[Path], None]
    ) -> tuple[Path, bool]:
        """Return ``(path, hit)``; on a miss ``build(tmp_path)`` writes the artifact first.

        If ``build`` raises, the temporary file is removed and nothing enters the cache.
        """
        key = content_key(payload)
        final = self.path(kind, key, suffix)
        if final.exists():
            return final, True
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{final}.lock"):
            if final.exists():  # another job built it while we waited
                return final, True
            tmp = final.with_name(f"{key}.tmp-{os.getpid()}{suffix}")
            try:
                build(tmp)
                # A readable record of what the key stands for, beside the artifact.
                final.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=str))
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
        log.info("cached %s %s", kind, final)
        return final, False
