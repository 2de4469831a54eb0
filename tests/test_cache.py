import json
import os
import subprocess
import sys
import time
from importlib import metadata

import pytest
import torch
from conftest import run_pipeline

from il_lab.runtime.cache import ArtifactCache, content_key, library_versions


def test_key_is_stable_and_content_addressed():
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})


def test_miss_builds_then_hit_reuses(tmp_path):
    cache = ArtifactCache(tmp_path)
    built = []

    def build(path):
        built.append(path)
        path.write_text("artifact")

    path, hit = cache.get_or_build("things", {"k": 1}, ".txt", build)
    assert not hit and path.read_text() == "artifact" and len(built) == 1
    assert built[0] != path  # written under a temporary name first
    again, hit = cache.get_or_build("things", {"k": 1}, ".txt", build)
    assert hit and again == path and len(built) == 1
    _, hit = cache.get_or_build("things", {"k": 2}, ".txt", build)
    assert not hit and len(built) == 2


def test_failed_build_leaves_nothing_behind(tmp_path):
    cache = ArtifactCache(tmp_path)

    def build(path):
        path.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cache.get_or_build("things", {"k": 1}, ".txt", build)
    leftovers = [p.name for p in (tmp_path / "things").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []
    path, hit = cache.get_or_build("things", {"k": 1}, ".txt", lambda p: p.write_text("ok"))
    assert not hit and path.read_text() == "ok"


def test_library_versions_name_what_determines_an_artifact():
    versions = library_versions("CartPole-v1")
    assert set(versions) == {"torch", "stable-baselines3", "gymnasium"}
    assert torch.__version__.startswith(versions["torch"])
    assert "mujoco" in library_versions("Hopper-v5")


def test_an_entry_built_under_other_library_versions_is_not_reused(tmp_path, monkeypatch):
    overrides = ["learner=mlp_bc", "expert=ppo", "video.enabled=false"]
    first = run_pipeline(tmp_path, overrides, name="first")
    again = run_pipeline(tmp_path, overrides, name="again")
    assert not first["expert/cache_hit"] and again["expert/cache_hit"] and again["demos/cache_hit"]

    real_version = metadata.version
    monkeypatch.setattr(
        metadata, "version", lambda name: "0.0.1" if name == "torch" else real_version(name)
    )
    upgraded = run_pipeline(tmp_path, overrides, name="upgraded")
    assert not upgraded["expert/cache_hit"] and not upgraded["demos/cache_hit"]
    assert len(list((tmp_path / "cache" / "experts").glob("*.pt"))) == 2
    sidecars = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "experts").glob("*.json")]
    assert sorted(s["versions"]["torch"] for s in sidecars) == sorted(
        ["0.0.1", real_version("torch")]
    )
    monkeypatch.undo()

    # A new version of the demonstrations' builder rebuilds them, and only them.
    monkeypatch.setattr("il_lab.runtime.identity.DEMOS_BUILD_VERSION", 2)
    rebuilt = run_pipeline(tmp_path, overrides, name="rebuilt")
    assert rebuilt["expert/cache_hit"] and not rebuilt["demos/cache_hit"]


def cli(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "il_lab.runtime.cache", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_cli_lists_and_prunes_by_age(tmp_path):
    cache = ArtifactCache(tmp_path)
    payload = {"env": {"id": "CartPole-v1"}, "seed": 3, "versions": {"torch": "2.13.0"}}
    old, _ = cache.get_or_build("experts", payload, ".zip", lambda p: p.write_bytes(b"x" * 2048))
    new, _ = cache.get_or_build("demos", {"seeds": [1, 2]}, ".npz", lambda p: p.write_text("d"))
    partial = tmp_path / "experts" / "abc.tmp-999.zip"  # what a killed build leaves
    partial.write_text("half")
    forty_days_ago = time.time() - 40 * 86400
    for path in (old, partial):
        os.utime(path, (forty_days_ago, forty_days_ago))

    listed = cli("list", "--cache-dir", str(tmp_path)).stdout.splitlines()
    assert listed[0].startswith(f"{tmp_path}: 3 entries")
    (old_line,) = [line for line in listed if old.name in line]
    size_kb = (2048 + old.with_suffix(".json").stat().st_size) / 1024  # artifact and sidecar
    assert old_line.split()[0] == "experts" and f" {size_kb:.1f} kB " in old_line
    assert " 40.0d " in old_line
    assert "CartPole-v1, seed 3, torch 2.13.0" in old_line
    assert any(new.name in line and "2 episodes" in line for line in listed)
    assert any("abc.tmp-999.zip" in line and "partial" in line for line in listed)

    pruned = cli("prune", "--older-than", "30d", "--cache-dir", str(tmp_path)).stdout
    assert "removed 2 entries" in pruned
    assert sorted(p.name for p in (tmp_path / "experts").iterdir()) == []
    assert new.exists() and new.with_suffix(".json").exists()
    bad = subprocess.run(
        [sys.executable, "-m", "il_lab.runtime.cache", "prune", "--older-than", "soon"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "allowed: a number and a unit" in bad.stderr


def test_a_key_added_later_at_its_neutral_value_keeps_cached_experts_identity():
    from conftest import compose_config
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from il_lab.runtime.cache import content_key
    from il_lab.runtime.identity import expert_identity

    cfg = compose_config(["expert=ppo"])
    values = OmegaConf.to_container(cfg.expert, resolve=True)
    trainer = instantiate(cfg.expert)
    env = OmegaConf.to_container(cfg.env, resolve=True)
    before_the_keys = {k: v for k, v in values.items() if not k.startswith("keep_best")}

    def key(expert_values):
        return content_key(expert_identity(env, expert_values, trainer, cfg.env.id))

    assert key(values) == key(before_the_keys)
    assert key({**values, "keep_best_every": 10240}) != key(values)
    assert key({**values, "seed": 1}) != key(values)
