"""The shipped examples: every one is valid, and the quick ones run end to end for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hp_components.experiment import load_experiment
from tests.conftest import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_there_are_examples_for_each_family():
    names = {p.stem for p in EXAMPLES}
    assert {"random-digits", "tpe-digits-goal", "grid-digits", "cmaes-digits", "file-collector-digits", "seed-bayesopt"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_is_valid(path):
    load_experiment(path)


def _run(tmp_path: Path, path: Path, **changes) -> tuple[subprocess.CompletedProcess, dict]:
    spec = yaml.safe_load(path.read_text())
    spec["spec"].update(changes)
    exp_file = tmp_path / path.name
    exp_file.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    res = subprocess.run([sys.executable, "-m", "hp_components.cli", "run", str(exp_file), "-q", "--output", str(tmp_path / "out"),
                          "--storage", f"sqlite:///{tmp_path}/hp.db", "--run-dir", str(tmp_path / "runs")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    status = json.loads((tmp_path / "out" / "status.json").read_text()) if (tmp_path / "out" / "status.json").exists() else {}
    return res, status


def test_random_digits_tunes_a_real_model(tmp_path):
    res, status = _run(tmp_path, ROOT / "examples" / "random-digits.yaml")
    assert res.returncode == 0, res.stderr
    assert status["trialsSucceeded"] == 12
    best = {m["name"]: float(m["max"]) for m in status["currentOptimalTrial"]["observation"]["metrics"]}
    assert best["Validation-accuracy"] > 0.85


def test_grid_example_ends_when_the_grid_does(tmp_path):
    res, status = _run(tmp_path, ROOT / "examples" / "grid-digits.yaml")
    assert res.returncode == 0, res.stderr
    assert status["conditions"][-1]["reason"] == "ExperimentSuggestionEndReached"
    assert status["trials"] == 6


def test_file_collector_example(tmp_path):
    res, status = _run(tmp_path, ROOT / "examples" / "file-collector-digits.yaml", maxTrialCount=3)
    assert res.returncode == 0, res.stderr
    assert status["trialsSucceeded"] == 3
    logs = list((tmp_path / "runs" / "file-collector-digits").glob("*/metrics.log"))
    assert len(logs) == 3 and "Validation-accuracy=" in logs[0].read_text()


def test_seed_experiment_runs_with_the_gaussian_process(tmp_path):
    pytest.importorskip("torch", reason="bayesianoptimization needs the gp extra")
    res, status = _run(tmp_path, ROOT / "examples" / "seed-bayesopt.yaml", maxTrialCount=4, parallelTrialCount=2)
    assert res.returncode == 0, res.stderr
    assert status["trialsSucceeded"] == 4


def test_tpe_example_stops_at_its_goal(tmp_path):
    res, status = _run(tmp_path, ROOT / "examples" / "tpe-digits-goal.yaml")
    assert res.returncode == 0, res.stderr
    assert status["conditions"][-1]["reason"] == "ExperimentGoalReached"
    assert status["trials"] < 30


def test_pytorchjob_example_trains_across_two_processes(tmp_path):
    pytest.importorskip("torch")
    res, status = _run(tmp_path, ROOT / "examples" / "pytorchjob-digits.yaml", maxTrialCount=2, parallelTrialCount=1)
    assert res.returncode == 0, res.stderr[-3000:]
    assert status["trialsSucceeded"] == 2
    logs = sorted((tmp_path / "runs").rglob("worker-1.log"))
    assert len(logs) == 2  # the worker (rank 1) ran beside each master
    best = float(status["currentOptimalTrial"]["observation"]["metrics"][0]["latest"])
    assert best > 0.5
