"""The engine steps (suggest -> trial wrapper -> collect) looped for real, as KFP and Argo wire them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hp_components.experiment import parse_experiment
from hp_components.metrics import run_trial
from hp_components.steps import collect_step, suggest_step, wrapper_args
from hp_components.trials import load_history
from tests.conftest import ROOT, script_experiment

SCRIPT = """
import sys
x = float(sys.argv[1].split("=")[1])
if x < -1.5: sys.exit(1)
print(f"loss={(x - 0.3) ** 2}")
"""


def _command(exp, item):
    container = exp.spec.trial_template.trial_spec["spec"]["template"]["spec"]["containers"][0]
    argv = container["command"]
    return [a.replace("${trialParameters.x}", item["parameters"]["x"]) for a in argv]


def test_loop_terminates_and_carries_state():
    exp = parse_experiment(script_experiment("loop", SCRIPT, maxTrialCount=7, parallelTrialCount=3,
                                             maxFailedTrialCount=7))
    history: list = []
    rounds = 0
    while True:
        rounds += 1
        batch = suggest_step(exp, load_history(history))
        observations = [run_trial(_command(exp, item), objective="loss", metrics=[]) for item in batch]
        out = collect_step(exp, load_history(history), batch, observations)
        history = json.loads(json.dumps(out["history"]))  # as it crosses a step boundary
        if out["done"]:
            break
        assert rounds < 10
    assert rounds == 3  # 3 + 3 + 1
    assert len(history) == 7 and len({t["name"] for t in history}) == 7
    assert out["status"]["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached"
    finished = [t for t in history if t["condition"] == "Succeeded"]
    assert out["best"]["objective"] == min(t["objectiveValue"] for t in finished)


def test_missing_observation_is_a_failed_trial():
    exp = parse_experiment(script_experiment("miss", SCRIPT, maxTrialCount=4, parallelTrialCount=2))
    batch = suggest_step(exp, [])
    out = collect_step(exp, [], batch, [None, {"condition": "Failed", "reason": "TrialFailed", "message": "the training process ended with exit code 1", "metrics": []}])
    conds = [(t["condition"], t.get("reason")) for t in out["history"]]
    assert conds == [("Failed", "NoObservation"), ("Failed", "TrialFailed")]
    assert out["history"][1]["message"] == "the training process ended with exit code 1"


def test_empty_batch_ends_a_grid():
    params = [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "1"}}]
    exp = parse_experiment(script_experiment("gridsteps", SCRIPT, params=params, maxTrialCount=5,
                                             parallelTrialCount=2, algorithm={"algorithmName": "grid"}))
    batch = suggest_step(exp, [])
    out = collect_step(exp, [], batch, [{"condition": "Succeeded", "metrics": [{"name": "loss", "min": "1", "max": "1", "latest": "1"}]}] * 2)
    assert not out["done"]
    assert suggest_step(exp, load_history(out["history"])) == []
    out = collect_step(exp, load_history(out["history"]), [], [])
    assert out["done"] and out["status"]["conditions"][-1]["reason"] == "ExperimentSuggestionEndReached"


def test_wrapper_args_carry_strategies_collector_and_deadline():
    spec = script_experiment("wargs", SCRIPT, metricsCollectorSpec={
        "collector": {"kind": "File"},
        "source": {"fileSystemPath": {"path": "/var/log/m.log", "kind": "File"}, "filter": {"metricsFormat": ["(\\w+):(\\S+)"]}}})
    spec["spec"]["objective"]["additionalMetricNames"] = ["acc"]
    spec["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 90
    args = wrapper_args(parse_experiment(spec))
    assert args == ["--objective", "loss", "--metric", "acc", "--strategy", "loss=min", "--strategy", "acc=min",
                    "--file", "/var/log/m.log", "--format", "TEXT", "--filter", "(\\w+):(\\S+)", "--timeout", "90"]


def test_step_commands_on_the_command_line(tmp_path):
    exp = script_experiment("clisteps", SCRIPT, maxTrialCount=2, parallelTrialCount=2)
    (tmp_path / "exp.json").write_text(json.dumps(exp))
    hp = [sys.executable, "-m", "hp_components.cli", "step"]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    subprocess.run([*hp, "suggest", "--experiment", json.dumps(exp), "--trials-out", str(tmp_path / "b.json")],
                   check=True, env=env, cwd=tmp_path)
    batch = json.loads((tmp_path / "b.json").read_text())
    obs_dir = tmp_path / "obs"
    obs_dir.mkdir()
    metrics = str(ROOT / "hp_components" / "metrics.py")
    parsed = parse_experiment(exp)
    for item in batch:
        subprocess.run([sys.executable, metrics, *wrapper_args(parsed), "--output", str(obs_dir / f"{item['name']}.json"),
                        "--", *_command(parsed, item)], check=True, env=env, capture_output=True)
    subprocess.run([*hp, "collect", "--experiment", str(tmp_path / "exp.json"), "--trials", str(tmp_path / "b.json"),
                    "--observations", str(obs_dir), "--history-out", str(tmp_path / "h.json"),
                    "--done-out", str(tmp_path / "done"), "--best-out", str(tmp_path / "best.json")],
                   check=True, env=env, cwd=tmp_path)
    assert (tmp_path / "done").read_text() == "true"
    assert len(json.loads((tmp_path / "h.json").read_text())) == 2
    assert json.loads((tmp_path / "best.json").read_text())["objective"] is not None
    bad = subprocess.run([*hp, "collect", "--experiment", str(tmp_path / "exp.json"), "--trials", "[oops"],
                         env=env, cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2 and "--trials: not valid JSON" in bad.stderr and "Traceback" not in bad.stderr


CURVE = """
import sys
x = float(sys.argv[1].split("=")[1])
for epoch in range(6):
    print(f"loss={x + 1 / (epoch + 1)}")
"""


def test_suggest_hands_each_trial_its_stop_rule_and_collect_keeps_the_curves():
    # Katib: the trial's earlyStoppingRules come from GetEarlyStoppingRules when it is created
    # (pkg/earlystopping/v1beta1/medianstop/service.py), none until min_trials_required succeeded
    from hp_components.steps import STOP_RULE_KEY, fan_out_items, slim

    spec = script_experiment("stepmedian", CURVE, maxTrialCount=6, parallelTrialCount=3,
                             earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [
                                 {"name": "min_trials_required", "value": "3"}, {"name": "start_step", "value": "2"}]})
    exp = parse_experiment(spec)
    batch = suggest_step(exp, [])
    assert [t["stopRules"] for t in batch] == [[], [], []]
    assert [i[STOP_RULE_KEY] for i in fan_out_items(batch)] == ["", "", ""] and slim(batch)[0]["stopRules"] == []
    observations = []
    for item in batch:
        obs = run_trial(_command(exp, item), objective="loss", metrics=[], strategies={"loss": "min"})
        observations.append({**obs, "name": item["name"]})
    out = collect_step(exp, [], batch, observations, suggest_next=True)
    history = load_history(out["history"])
    for trial, item in zip(history, batch):
        x = float(item["parameters"]["x"])
        assert trial.intermediate_values == [(k, x + 1 / (k + 1)) for k in range(6)]
    means = sorted((t.intermediate_values[0][1] + t.intermediate_values[1][1]) / 2 for t in history)
    rule = f"loss;{means[1]!r};greater;2"
    assert [t["stopRules"] for t in out["next"]] == [[rule]] * 3
    assert {i[STOP_RULE_KEY] for i in fan_out_items(out["next"])} == {rule}
    # the experiments without rules: no key, and the wrapper's arguments take no rule
    plain = parse_experiment(script_experiment("plain", CURVE))
    assert "stopRules" not in suggest_step(plain, [])[0] and "--stop-rule" not in wrapper_args(plain, "{{rule}}")
    args = wrapper_args(exp, "{{rule}}")
    assert args[args.index("--stop-rule") + 1] == "{{rule}}" and args[args.index("--objective-type") + 1] == "minimize"
    pruned = parse_experiment(script_experiment("sh", CURVE, earlyStopping={"algorithmName": "successive-halving"}))
    assert "stopRules" not in suggest_step(pruned, [])[0], "Optuna's pruners are not fixed rules: local only"


def test_intermediate_values_from_an_observation_are_checked():
    from hp_components.steps import trial_from_observation

    exp = parse_experiment(script_experiment("iv", CURVE))
    item = {"name": "iv-1", "parameterAssignments": [{"name": "x", "value": "0.1"}]}
    obs = {"condition": "EarlyStopped", "reason": "TrialEarlyStopped", "metrics": [
        {"name": "loss", "min": "0.5", "max": "2", "latest": "0.5"}],
        "intermediateValues": [[0, 2.0], [1, "nan"], "junk", [2, 0.5]]}
    t = trial_from_observation(exp, item, obs)
    assert t.condition == "EarlyStopped" and t.intermediate_values == [(0, 2.0), (2, 0.5)]
    assert trial_from_observation(exp, item, {**obs, "intermediateValues": "x"}).intermediate_values == []
