"""Shared fixtures: compose the real config with Hydra and run the real pipeline in tmp_path."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

import il_lab.config.resolvers  # noqa: F401  (run-folder resolver, as run.py gets it)
from il_lab import pipeline

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def compose_config(
    overrides: list[str], run_dir: Path | None = None, cache_dir: Path | None = None
) -> DictConfig:
    """The config ``python run.py <overrides>`` would get, with HydraConfig set as in a run."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        if run_dir is not None:
            cfg.paths.output_dir = str(run_dir)
        if cache_dir is not None:
            cfg.paths.cache_dir = str(cache_dir)
    return cfg


def plain(cfg: DictConfig) -> dict:
    """The resolved config without ``hydra``, as the pipeline hands it to the gate."""
    return {
        key: OmegaConf.to_container(cfg[key], resolve=True)
        if OmegaConf.is_config(cfg[key])
        else cfg[key]
        for key in cfg
        if key != "hydra"
    }


def compose_group_option(group: str, option: str) -> DictConfig:
    """One option of a config group with its own defaults applied, e.g. ppo_settings/hopper."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(f"{group}/{option}")[group]


def run_pipeline(
    tmp_path: Path, overrides: list[str], name: str = "run", cache: str = "cache"
) -> dict:
    """Run the real pipeline with ``debug=smoke``; return its metrics.json."""
    run_dir = tmp_path / name
    cfg = compose_config(["debug=smoke", *overrides], run_dir, tmp_path / cache)
    pipeline.run(cfg)
    return json.loads((run_dir / "metrics.json").read_text())


def multirun(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "-m",
            "debug=smoke",
            "video.enabled=false",
            f"paths.cache_dir={tmp_path}/cache",
            f"hydra.sweep.dir={tmp_path}/sweep",
            *overrides,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One end-to-end smoke run shared by the tests that inspect its folder."""
    tmp = tmp_path_factory.mktemp("smoke")
    run_pipeline(tmp, [], name="run")
    return tmp / "run"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """As the pipeline does by default: robust speed when another process shares the cores."""
    import torch

    torch.set_num_threads(1)
