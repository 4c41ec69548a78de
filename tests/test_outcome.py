"""One judge of a trial's outcome (``metrics.judge``), and every engine asking it.

The same training run (exit code 3 after printing a metric; a missing objective; a clean run) must
come out with the same condition, reason and message from the local runner, the trial wrapper (what
the Argo and KFP trial pods run, read back by the collect step) and the job launcher.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hp_components import metrics
from hp_components.experiment import parse_experiment
from hp_components.local import run_local
from hp_components.metrics import Outcome, judge
from hp_components.steps import WRAPPER_PROGRAM, collect_step, suggest_step, wrapper_args
from tests.conftest import script_experiment


@pytest.mark.parametrize("facts, expected", [
    (dict(value=0.5), Outcome("Succeeded", "TrialSucceeded", "")),
    (dict(value=None), Outcome("MetricsUnavailable", "MetricsUnavailable", "the objective metric 'loss' was not reported")),
    (dict(value=None, note="1 value(s) that are not finite numbers were ignored"),
     Outcome("MetricsUnavailable", "MetricsUnavailable",
             "the objective metric 'loss' was not reported (1 value(s) that are not finite numbers were ignored)")),
    (dict(value=0.5, returncode=3), Outcome("Failed", "TrialFailed", "the training process ended with exit code 3")),
    (dict(value=0.5, returncode=-9), Outcome("Failed", "TrialFailed", "the training process was killed by SIGKILL")),
    (dict(value=0.5, workers=[0, 7]), Outcome("Failed", "TrialFailed", "PyTorchJob worker (rank 2) ended with exit code 7")),
    (dict(value=0.5, returncode=-15, timed_out=4.0),
     Outcome("Failed", "DeadlineExceeded", "did not finish within 4 s (activeDeadlineSeconds)")),
    # the runner stopping a trial outranks the signal it died of; a deadline outranks the runner's stop
    (dict(value=None, returncode=-15, stopped=("Killed", "ExperimentCompleted", "stopped because the experiment ended")),
     Outcome("Killed", "ExperimentCompleted", "stopped because the experiment ended")),
    (dict(value=0.5, returncode=-15, early_stopped="stopped by medianstop at step 4"),
     Outcome("EarlyStopped", "TrialEarlyStopped", "stopped by medianstop at step 4")),
    (dict(value=None, failure=("CommandNotFound", "cannot start 'x': No such file or directory"), returncode=0),
     Outcome("Failed", "CommandNotFound", "cannot start 'x': No such file or directory")),
])
def test_the_judge_decides_from_the_facts_most_decisive_first(facts, expected):
    assert judge(objective="loss", **facts) == expected


SCRIPT = "import sys; print('loss=0.25', flush=True); sys.exit(int(sys.argv[1]))"


def _spec(name: str, code: str, objective: str = "loss") -> dict:
    spec = script_experiment(name, SCRIPT, args=[code, "${trialParameters.x}"], maxTrialCount=1, parallelTrialCount=1)
    spec["spec"]["objective"]["objectiveMetricName"] = objective
    return spec


@pytest.mark.parametrize("code, objective", [("3", "loss"), ("0", "loss"), ("0", "accuracy")])
def test_local_runner_and_trial_wrapper_judge_the_same_run_alike(tmp_path: Path, code: str, objective: str):
    exp = parse_experiment(_spec(f"same-{code}-{objective}", code, objective))
    local = run_local(exp, storage=f"sqlite:///{tmp_path}/hp.db", run_dir=tmp_path / "runs").history[0]

    # the wrapper as the Argo and KFP trial pods run it: python3 -c <wrapper> <args> -- <command>
    [item] = suggest_step(exp, [])
    command = [sys.executable, "-c", SCRIPT, code, item["parameters"]["x"]]
    obs = tmp_path / "obs.json"
    subprocess.run([sys.executable, "-c", WRAPPER_PROGRAM, *wrapper_args(exp), "--name", item["name"],
                    "--output", str(obs), "--", *command], check=True, capture_output=True)
    wrapped = collect_step(exp, [], [item], [json.loads(obs.read_text())])["history"][0]

    assert (wrapped["condition"], wrapped["reason"], wrapped.get("message", "")) == (local.condition, local.reason, local.message)
    judged = metrics.run_trial(command, objective=objective, metrics=[])
    assert (judged["condition"], judged["reason"], judged["message"]) == (local.condition, local.reason, local.message)


def test_a_failed_trials_metrics_never_make_it_best_nor_reach_the_goal(tmp_path: Path):
    """Katib keeps an observation only for a trial that succeeded or was stopped early
    (pkg/controller.v1beta1/trial/trial_controller.go, the condition handling before
    UpdateTrialStatusObservation): a trial that prints loss=0.0001 and exits 1 is not the best
    trial and does not end the experiment with ExperimentGoalReached."""
    script = ("import sys; x = float(sys.argv[1].split('=')[1]); "
              "print(f'loss={0.0001 if x < 0 else 1 + x}'); sys.exit(1 if x < 0 else 0)")
    spec = script_experiment("failedbest", script, maxTrialCount=6, parallelTrialCount=2, maxFailedTrialCount=6)
    spec["spec"]["objective"]["goal"] = 0.001
    spec["spec"]["algorithm"] = {"algorithmName": "grid"}
    spec["spec"]["parameters"][0]["feasibleSpace"] = {"min": "-1", "max": "1", "step": "0.5"}
    result = run_local(parse_experiment(spec), storage=f"sqlite:///{tmp_path}/hp.db", run_dir=tmp_path / "runs")
    failed = [t for t in result.history if t.condition == "Failed"]
    assert failed and all(t.objective_value == pytest.approx(0.0001) for t in failed)
    assert result.status.reason != "ExperimentGoalReached"
    assert result.status.best is not None and result.status.best.condition == "Succeeded"
    assert result.status.best.objective_value >= 1
