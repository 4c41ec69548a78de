"""Early stopping: Katib's median rule with a true median, Optuna's pruners, and the runner stopping trials."""

from __future__ import annotations

import json
import signal
import sys
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


# --------------------------------------------------------------------------- the shared rule check
# Katib's metrics collector, cmd/metricscollector/v1beta1/file-metricscollector/main.go:
# watchMetricsFile (all rules met -> the training process is terminated) and updateStopRules.

from hp_components.metrics import StopRule, StopRules  # noqa: E402


def feed(rules: StopRules, pairs) -> list[bool]:
    return [rules.feed(name, value) for name, value in pairs]


def test_rule_text_is_katibs_stop_rule_flag():
    # main.go stopRulesFlag.Set: name;value;comparison;startStep, four parts
    assert StopRule.parse("acc;0.71;less;4") == StopRule("acc", 0.71, "less", 4)
    assert str(StopRule("val-loss", 0.25, "greater", 0)) == "val-loss;0.25;greater;0"
    assert StopRule.parse(str(StopRule("a;b", 1e-9, "equal", 2))) == StopRule("a;b", 1e-9, "equal", 2)
    for bad, why in (("acc;0.7;less", "name;value;comparison;startStep"), ("acc;x;less;4", "not a finite number"),
                     ("acc;0.7;lower;4", "comparison 'lower'"), ("acc;0.7;less;-1", "whole number")):
        with pytest.raises(ValueError, match=why):
            StopRule.parse(bad)


def test_objective_is_judged_by_its_best_value_at_the_start_step():
    # updateStopRules: the objective's optimalObjValue replaces the value; metricStartStep counts down
    # and the rule is judged when it reaches 0
    rules = StopRules([StopRule("acc", 0.5, "less", 3)], objective="acc", objective_type="maximize")
    assert feed(rules, [("acc", 0.1), ("acc", 0.2), ("acc", 0.3)]) == [False, False, True]
    assert "best so far 0.3 is less than 0.5 at report 3" in rules.message
    kept = StopRules([StopRule("acc", 0.5, "less", 3)], objective="acc", objective_type="maximize")
    assert feed(kept, [("acc", 0.9), ("acc", 0.1), ("acc", 0.1)]) == [False, False, False], "best so far is 0.9"
    low = StopRules([StopRule("loss", 1.0, "greater", 2)], objective="loss", objective_type="minimize")
    assert feed(low, [("loss", 3.0), ("loss", 2.0)]) == [False, True]


def test_a_rule_with_a_start_step_is_judged_once():
    # metricStartStep goes on below 0 after the start step, so the rule is never judged again
    rules = StopRules([StopRule("loss", 1.0, "greater", 2)], objective="acc", objective_type="maximize")
    assert feed(rules, [("loss", 0.5), ("loss", 0.6), ("loss", 5.0), ("loss", 9.0)]) == [False] * 4
    # without a start step (0: "applied from the first recorded metric") at every report, by the value itself
    every = StopRules([StopRule("loss", 1.0, "greater", 0)], objective="acc", objective_type="maximize")
    assert feed(every, [("loss", 0.5), ("acc", 3.0), ("loss", 5.0)]) == [False, False, True]


def test_every_rule_must_be_met_and_a_met_rule_stays_met():
    # a met rule is deleted from stopRules; the trial stops when stopRules is empty
    rules = StopRules([StopRule("acc", 0.5, "less", 1), StopRule("loss", 2.0, "greater", 0)],
                      objective="acc", objective_type="maximize")
    assert feed(rules, [("acc", 0.1), ("loss", 1.0), ("acc", 0.9), ("loss", 3.0)]) == [False, False, False, True]
    assert rules.message.startswith("acc: best so far 0.1 is less than 0.5 at report 1; loss: value 3.0")
    eq = StopRules([StopRule("acc", 0.5, "equal", 0)], objective="x", objective_type="maximize")
    assert feed(eq, [("acc", 0.4), ("acc", 0.5)]) == [False, True]
    assert StopRules([], objective="acc", objective_type="maximize").feed("acc", 0.0) is False, "no rules: never stops"


def test_medianstop_rule_when_a_trial_is_created():
    # medianstop/service.py GetEarlyStoppingRules: no rule below min_trials_required succeeded trials;
    # then one rule on the objective, LESS for maximize (GREATER for minimize), startStep = start_step,
    # its value from the first start_step values of each succeeded trial (averaged per trial)
    stop = get_early_stopping("medianstop", {"min_trials_required": "3", "start_step": "2"}, "maximize")
    history = [done("a", [0.1, 0.1, 0.5]), done("b", [0.2, 0.2, 0.5]), done("c", [0.9, 0.9, 0.9]),
               Trial(name="f", assignments={}, condition="Failed", intermediate_values=[(0, 0.0)])]
    assert stop.rules(history[:2] + history[3:], "acc") == [], "a failed trial does not count"
    assert stop.rules(history, "acc") == [StopRule("acc", 0.2, "less", 2)], "the median of 0.1, 0.2, 0.9 (Katib: mean 0.4)"
    low = get_early_stopping("medianstop", {"min_trials_required": "1", "start_step": "1"}, "minimize")
    assert low.rules([done("a", [3.0, 1.0])], "loss") == [StopRule("loss", 3.0, "greater", 1)]
    assert get_early_stopping("hyperband", {}, "maximize").rules(history, "acc") == [], "pruners: no fixed rules"


# --------------------------------------------------------------------------- the wrapper enforces them

EPOCHS = """
import os, signal, sys, time
x = float(sys.argv[1])
if len(sys.argv) > 2 and sys.argv[2] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
out = open(sys.argv[3], "a") if len(sys.argv) > 3 else sys.stdout
for epoch in range(10):
    print(f"epoch {epoch}: acc={x * (epoch + 1) / 10:.4f}", file=out, flush=True)
    time.sleep(0.2)
"""


def test_wrapper_stops_a_poor_trial_and_keeps_its_values(tmp_path):
    from hp_components.metrics import run_trial

    poor = run_trial([sys.executable, "-c", EPOCHS, "0.1"], objective="acc", metrics=[], strategies={"acc": "max"},
                     stop_rules=["acc;0.15;less;2"], objective_type="maximize")
    assert (poor["condition"], poor["reason"]) == ("EarlyStopped", "TrialEarlyStopped")
    assert "acc: best so far 0.02 is less than 0.15 at report 2" in poor["message"]
    assert poor["exitCode"] == 128 + signal.SIGTERM and poor["objectiveValue"] == 0.02
    assert poor["intermediateValues"][:2] == [[0, 0.01], [1, 0.02]] and len(poor["intermediateValues"]) < 10
    good = run_trial([sys.executable, "-c", EPOCHS, "0.9"], objective="acc", metrics=[], strategies={"acc": "max"},
                     stop_rules=["acc;0.15;less;2"], objective_type="maximize")
    assert good["condition"] == "Succeeded" and len(good["intermediateValues"]) == 10
    # a trainer that ignores SIGTERM is killed after the grace period, still EarlyStopped
    stubborn = run_trial([sys.executable, "-c", EPOCHS, "0.1", "ignore-term"], objective="acc", metrics=[],
                         stop_rules=["acc;0.15;less;2"], objective_type="maximize", kill_grace=0.3)
    assert stubborn["condition"] == "EarlyStopped" and stubborn["exitCode"] == 128 + signal.SIGKILL
    assert len(stubborn["intermediateValues"]) < 10


def test_wrapper_tails_the_metrics_file_for_its_rules(tmp_path):
    from hp_components.metrics import main

    metrics = tmp_path / "m.log"
    out = tmp_path / "obs.json"
    rc = main(["--objective", "acc", "--objective-type", "maximize", "--stop-rule", "acc;0.15;less;2",
               "--file", str(metrics), "--output", str(out), "--", sys.executable, "-c", EPOCHS, "0.1", "-", str(metrics)])
    result = json.loads(out.read_text())
    assert rc == 0 and result["condition"] == "EarlyStopped" and 2 <= len(result["intermediateValues"]) < 10


def test_wrapper_refuses_bad_rules_with_exit_2(capsys):
    from hp_components.metrics import main

    for args, why in ((["--stop-rule", "acc;0.5;less"], "name;value;comparison;startStep"),
                      (["--stop-rule", "loss;0.5;less;1"], "'loss' is not one of the metrics"),
                      (["--stop-rule", "acc;0.5;less;1"], "give its type")):
        assert main(["--objective", "acc", *args, "--", sys.executable, "-c", "pass"]) == 2
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err
    assert main(["--objective", "acc", "--stop-rule", "", "--", sys.executable, "-c", "print('acc=1')"]) == 0
