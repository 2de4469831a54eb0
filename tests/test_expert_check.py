"""An expert that has not learned is said so: a warning and a null score, or with
``strict_expert`` a refusal before demonstrations are collected."""

import logging

import pytest
from conftest import compose_config

from il_lab import pipeline
from il_lab.envs import EnvSpec
from il_lab.errors import ConfigError
from il_lab.evaluation import EvalResult
from il_lab.stages import check_expert, expert_shortfall

MOUNTAIN_CAR = EnvSpec("MountainCar-v0")
SWIMMER = EnvSpec("Swimmer-v5")


def test_an_expert_equal_to_random_is_no_expert():
    flat = EvalResult([-200.0] * 5)  # MountainCar: neither reaches the flag
    assert "not clearly better than the random policy" in expert_shortfall(flat, flat, MOUNTAIN_CAR)
    spread = EvalResult([-10.0, 10.0, -10.0, 10.0])  # random's std 10: a tenth of it is 1
    assert expert_shortfall(EvalResult([0.5] * 4), spread, MOUNTAIN_CAR) is not None
    assert expert_shortfall(EvalResult([1.5] * 4), spread, MOUNTAIN_CAR) is None


def test_the_warning_names_the_numbers_and_strict_refuses(caplog):
    flat = EvalResult([-200.0] * 5)
    with caplog.at_level(logging.WARNING):
        reason = check_expert(flat, flat, MOUNTAIN_CAR, strict=False)
    assert reason and "-200.0" in caplog.text and "expert.path=" in caplog.text
    with pytest.raises(ConfigError, match="strict_expert=true: the expert .* MountainCar-v0"):
        check_expert(flat, flat, MOUNTAIN_CAR, strict=True)


def test_a_weak_expert_below_the_envs_reward_threshold_is_warned_about(caplog):
    # Swimmer-v5 registers 360 as solved; an expert of 37 beats random but barely learned
    with caplog.at_level(logging.WARNING):
        reason = check_expert(EvalResult([37.4] * 3), EvalResult([0.0, 4.0, -4.0]), SWIMMER,
                              strict=False)  # fmt: skip
    assert reason is None  # its score stays: it is better than random
    assert "less than halfway" in caplog.text and "360.0" in caplog.text


def test_strict_expert_stops_the_run_before_demonstrations(tmp_path):
    cfg = compose_config(
        ["debug=smoke", "strict_expert=true", "video.enabled=false"], tmp_path / "run",
        tmp_path / "cache",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="strict_expert=true"):
        pipeline.run(cfg)  # a 2,048-step CartPole expert is no better than random
    assert not (tmp_path / "cache" / "demos").exists() and (tmp_path / "cache" / "experts").exists()
