"""A content-addressed artifact cache shared by every run and every parallel sweep job.

An artifact (an expert, a demonstration set) is named by a hash of everything that determines
it: the config that built it, its file format, a version constant of the code that built it, and
the versions of the libraries it depends on (``library_versions``), so an upgrade or a changed
builder never serves a stale artifact. It is built into a temporary file beside its final name
and renamed into place, all under a file lock, so parallel jobs build each artifact once and
nobody ever reads a half-written one. Beside each artifact, ``<key>.json`` records what the key
stands for.

    python -m il_lab.runtime.cache list [--cache-dir DIR]
    python -m il_lab.runtime.cache prune --older-than 30d [--cache-dir DIR]
"""

import argparse
import hashlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import gymnasium as gym
from filelock import FileLock

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = ".cache/il_lab"  # as conf/paths/default.yaml, when IL_LAB_CACHE_DIR is unset
_TMP_MARK = ".tmp-"  # in the names of files being built (left behind by a killed build)
CHECKPOINT_SUFFIX = ".checkpoint"  # the training state of an artifact still being built


def content_key(payload: Mapping) -> str:
    """A stable hash of a JSON-able description (never a time or a path of a run)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def library_versions(env_id: str) -> dict[str, str]:
    """Installed versions of the libraries that determine an expert or a demonstration set.

    torch, Stable-Baselines3 and gymnasium always; mujoco when ``env_id`` is a MuJoCo env.
    """
    names = ["torch", "stable-baselines3", "gymnasium"]
    if "mujoco" in str(gym.spec(env_id).entry_point):
        names.append("mujoco")
    return {name: metadata.version(name) for name in names}


def libraries_line(env_id: str) -> str:
    """:func:`library_versions` as one line, e.g. ``torch 2.13.0+cpu, ..., mujoco 3.17.0``."""
    return ", ".join(f"{name} {version}" for name, version in library_versions(env_id).items())


class ArtifactCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / f"{key}{suffix}"

    def checkpoint_path(self, kind: str, key: str) -> Path:
        """Where a build of ``key`` keeps its training state, so a killed build can resume."""
        return self.path(kind, key, CHECKPOINT_SUFFIX)

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
            tmp = final.with_name(f"{key}{_TMP_MARK}{os.getpid()}{suffix}")
            try:
                build(tmp)
                # A readable record of what the key stands for, beside the artifact.
                final.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=str))
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
        log.info("cached %s %s", kind, final)
        return final, False

    def entries(self) -> list["Entry"]:
        """Every artifact in the cache, and every file a killed build left behind."""
        found = []
        for folder in sorted(p for p in self.root.glob("*") if p.is_dir()):
            for path in sorted(folder.iterdir()):
                if path.suffix in (".json", ".lock") or not path.is_file():
                    continue
                partial = _TMP_MARK in path.name or path.suffix == CHECKPOINT_SUFFIX
                sidecar = path.with_suffix(".json")
                described = {}
                if not partial and sidecar.is_file():
                    try:
                        described = json.loads(sidecar.read_text())
                    except ValueError:
                        described = {"unreadable sidecar": str(sidecar)}
                files = [path] + ([] if partial else [sidecar, Path(f"{path}.lock")])
                files = [f for f in files if f.exists()]
                found.append(
                    Entry(
                        kind=folder.name,
                        path=path,
                        size_bytes=sum(f.stat().st_size for f in files),
                        modified=path.stat().st_mtime,
                        partial=partial,
                        described=described,
                    )
                )
        return found

    def prune(self, older_than_s: float, now: float | None = None) -> list["Entry"]:
        """Delete entries (artifact, sidecar, lock) last written more than ``older_than_s`` ago.

        Each deletion holds the entry's lock, so an entry being built is never touched.
        """
        now = time.time() if now is None else now
        removed = []
        for entry in self.entries():
            if entry.age_s(now) <= older_than_s:
                continue
            if entry.partial:
                entry.path.unlink(missing_ok=True)
            else:
                lock = Path(f"{entry.path}.lock")
                with FileLock(lock):
                    entry.path.unlink(missing_ok=True)
                    entry.path.with_suffix(".json").unlink(missing_ok=True)
                lock.unlink(missing_ok=True)
            removed.append(entry)
        return removed


@dataclass(frozen=True)
class Entry:
    """One artifact of the cache (or a partial file of a killed build) and its files."""

    kind: str
    path: Path
    size_bytes: int  # the artifact, its sidecar and its lock
    modified: float  # the artifact's mtime: when it was built
    partial: bool
    described: dict  # the sidecar's JSON

    def age_s(self, now: float) -> float:
        return now - self.modified

    def summary(self) -> str:
        """What the sidecar says, on one line: env, builder, seed, episodes, library versions."""
        if self.partial:
            return "partial file of a build that did not finish"
        d = self.described
        env = d.get("env")
        parts = [env.get("id") if isinstance(env, dict) else env]
        expert = d.get("expert")
        if isinstance(expert, dict):
            parts.append(str(expert.get("_target_", "")).rpartition(".")[2])
        if "seed" in d:
            parts.append(f"seed {d['seed']}")
        if isinstance(d.get("seeds"), list):
            parts.append(f"{len(d['seeds'])} episodes")
        if "file_sha256" in d:
            parts.append(f"expert file {d['file_sha256'][:12]}")
        versions = d.get("versions") or {}
        parts.append(" ".join(f"{k} {v}" for k, v in versions.items()) or "no library versions")
        return ", ".join(str(p) for p in parts if p)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``45m``, ``10s`` or ``2w`` in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"--older-than={text!r} is not allowed; allowed: a number and a unit "
            "(s, m, h, d, w), e.g. 30d"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def _human_size(n_bytes: float) -> str:
    if n_bytes < 1024:
        return f"{n_bytes:.0f} B"
    for unit in ("kB", "MB", "GB"):
        n_bytes /= 1024
        if n_bytes < 1024 or unit == "GB":
            break
    return f"{n_bytes:.1f} {unit}"


def _human_age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def main(argv: list[str] | None = None) -> int:
    """``python -m il_lab.runtime.cache list|prune``: the command's table goes to stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m il_lab.runtime.cache", description="List or prune the artifact cache."
    )
    parser.add_argument("command", choices=["list", "prune"])
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get("IL_LAB_CACHE_DIR", DEFAULT_CACHE_DIR),
        help="the cache (default: $IL_LAB_CACHE_DIR or .cache/il_lab, as paths.cache_dir)",
    )
    parser.add_argument(
        "--older-than", type=parse_duration, help="prune: entries last written before this"
    )
    args = parser.parse_args(argv)
    cache = ArtifactCache(args.cache_dir)
    now = time.time()
    out = sys.stdout  # this is the command's output, not logging
    if args.command == "prune":
        if args.older_than is None:
            parser.error("prune needs --older-than, e.g. --older-than 30d")
        removed = cache.prune(args.older_than, now)
        for entry in removed:
            out.write(f"removed {entry.kind}/{entry.path.name} ({_human_size(entry.size_bytes)})\n")
        freed = _human_size(sum(e.size_bytes for e in removed))
        out.write(f"removed {len(removed)} entries ({freed}) from {cache.root}\n")
        return 0
    entries = cache.entries()
    total = _human_size(sum(e.size_bytes for e in entries))
    out.write(f"{cache.root}: {len(entries)} entries, {total}\n")
    for e in entries:
        out.write(
            f"{e.kind:<8} {e.path.name:<28} {_human_size(e.size_bytes):>9} "
            f"{_human_age(e.age_s(now)):>7}  {e.summary()}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
