"""The inputs behind a committed results table reproduce it: the published expert and
demonstrations (experiments/inputs/, hashed in SHA256SUMS) give the committed metrics.json
numbers on this machine, whatever expert the machine would have built itself."""

import hashlib
import json

import pytest
from conftest import ROOT, compose_config

from il_lab import pipeline

INPUTS = ROOT / "experiments" / "inputs"
RUNS = ROOT / "experiments" / "results" / "runs" / "data_efficiency_Hopper-v5.jsonl"
COMPARED = (
    "expert/eval/return_mean", "random/eval/return_mean", "learner/eval/returns",
    "learner/eval/normalized_score", "demos/n_transitions", "learner/gradient_steps",
)  # fmt: skip


def test_the_published_files_are_the_ones_hashed():
    listed = dict(
        reversed(line.split()) for line in (INPUTS / "SHA256SUMS").read_text().splitlines()
    )
    assert listed, "no published inputs"
    for name, digest in listed.items():
        assert hashlib.sha256((INPUTS / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.slow
def test_mlp_bc_from_the_published_inputs_gives_the_committed_numbers(tmp_path):
    (committed,) = [
        run["metrics"] for run in map(json.loads, RUNS.read_text().splitlines())
        if run["overrides"].get("learner") == "mlp_bc" and run["overrides"].get("seed") == "0"
    ]  # fmt: skip
    cfg = compose_config(
        [
            "+experiment=data_efficiency", "env=hopper", "learner=mlp_bc", "seed=0",
            f"expert.path={INPUTS / 'hopper' / 'expert_ppo_seed1.pt'}",
            f"demos.path={INPUTS / 'hopper' / 'demos_seed0_4episodes.npz'}",
        ],
        tmp_path / "run", tmp_path / "cache",
    )  # fmt: skip
    pipeline.run(cfg)
    ours = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {k: ours[k] for k in COMPARED} == {k: committed[k] for k in COMPARED}
