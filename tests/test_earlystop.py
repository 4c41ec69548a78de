"""Early stopping: Katib's median rule with a true median, Optuna's pruners, and the runner stopping trials."""

from __future__ import annotations

import time

import pytest

from hp_components.earlystop import get_early_stopping, validate_early_stopping
from hp_components.experiment import SpecError, parse_experiment
from hp_components.local import run_local
from hp_components.trials import Trial
from tests.conftest import script_experiment


def done(name: str, values: list[float]) -> Trial:
    return Trial(name=name, assignments={}, condition="Succeeded", objective_value=max(values),
                 intermediate_values=list(enumerate(values)))


def test_median_not_mean():
    # first-2-step means: 0.1, 0.2, 0.9 -> median 0.2, mean 0.4
    history = [done("a", [0.1, 0.1, 0.5]), done("b", [0.2, 0.2, 0.5]), done("c", [0.9, 0.9, 0.9])]
    stop = get_early_stopping("medianstop", {"min_trials_required": "3", "start_step": "2"}, "maximize")
    assert not stop.should_stop(history, [(0, 0.25), (1, 0.3)]), "0.3 beats the median 0.2 (Katib's mean, 0.4, would stop it)"
    assert stop.should_stop(history, [(0, 0.15), (1, 0.15)])
    assert not stop.should_stop(history, [(0, 0.0)]), "before start_step nothing stops"
    assert not stop.should_stop(history[:2], [(0, 0.0), (1, 0.0)]), "fewer than min_trials_required"


def test_median_minimize_uses_best_so_far():
    history = [done("a", [1.0, 0.5]), done("b", [1.0, 0.6]), done("c", [1.0, 0.7])]
    stop = get_early_stopping("medianstop", {"min_trials_required": "3", "start_step": "2"}, "minimize")
    assert stop.should_stop(history, [(0, 2.0), (1, 2.0)])
    assert not stop.should_stop(history, [(0, 0.1), (1, 3.0)]), "its best so far (0.1) is better than the median"


def test_successive_halving_prunes_a_poor_trial():
    history = [done(f"t{i}", [0.5 + 0.01 * i] * 5) for i in range(8)]
    stop = get_early_stopping("successive-halving", {"min_resource": "1", "reduction_factor": "2"}, "maximize")
    assert stop.should_stop(history, [(0, 0.01), (1, 0.01)])
    assert not stop.should_stop(history, [(0, 0.99), (1, 0.99)])


def test_settings_are_validated(basic_dict):
    assert validate_early_stopping("medianstop", {"start_step": "0"})[0][0] == "spec.earlyStopping.algorithmSettings[0].value"
    assert "not supported" in validate_early_stopping("patience", {})[0][1]
    basic_dict["spec"]["earlyStopping"] = {"algorithmName": "medianstop",
                                           "algorithmSettings": [{"name": "min_trials_required", "value": "0"}]}
    with pytest.raises(SpecError, match=r"spec.earlyStopping.algorithmSettings\[0\].value"):
        parse_experiment(basic_dict)


CURVE = """
import sys, time
x = float(sys.argv[1].split("=")[1])
for step in range(8):
    print(f"acc={x * (step + 1) / 8:.4f}", flush=True)
    time.sleep(0.15)
"""


def test_runner_stops_poor_trials_and_records_them(tmp_path):
    params = [{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["0.9", "0.8", "0.85", "0.1", "0.2"]}}]
    spec = script_experiment("median", CURVE, params=params, maxTrialCount=5, parallelTrialCount=1,
                             algorithm={"algorithmName": "grid"},
                             objective={"type": "maximize", "objectiveMetricName": "acc"},
                             earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [
                                 {"name": "min_trials_required", "value": "3"}, {"name": "start_step", "value": "2"}]})
    t0 = time.monotonic()
    result = run_local(parse_experiment(spec), storage=f"sqlite:///{tmp_path}/s.db", run_dir=tmp_path / "runs")
    by_x = {t.assignments["x"]: t for t in result.history}
    assert [by_x[x].condition for x in ("0.9", "0.8", "0.85")] == ["Succeeded"] * 3
    for x in ("0.1", "0.2"):
        t = by_x[x]
        assert t.condition == "EarlyStopped" and t.reason == "TrialEarlyStopped"
        assert len(t.intermediate_values) < 8 and t.objective_value is not None
    assert result.status.counts["trialsEarlyStopped"] == 2
    assert result.status.reason == "ExperimentMaxTrialsReached"
    assert time.monotonic() - t0 < 60
