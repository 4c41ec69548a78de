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
