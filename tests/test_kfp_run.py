"""The compiled Katib pipeline run end to end by kfp.local's own orchestrator (run_enhanced_dag).

Every task (the suggest/gather/collect/report steps and the container trials) runs as a local
process through the test-only handler in tests/kfp_local_handler.py, whose docstring lists the
kfp.local internals it relies on. The DAG, the ParallelFor, the If/Else guard, OneOf, Collected,
the sub-pipeline's artifact and parameter outputs and the retries are kfp.local's. Also here:
the backend model (hp_components/kfp/_backend.py), each rule with a case accepted and one refused.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

kfp = pytest.importorskip("kfp")

from kfp import compiler, components  # noqa: E402

from hp_components.experiment import load_experiment  # noqa: E402
from hp_components.kfp import UnsupportedExperiment, compile_experiment  # noqa: E402
from hp_components.kfp import _backend  # noqa: E402
from hp_components.kfp._api import experiment_pipeline  # noqa: E402
from hp_components.steps import WRAPPER_SOURCE  # noqa: E402
from tests import kfp_local_handler as handler  # noqa: E402
from tests.conftest import script_experiment  # noqa: E402

LOSS = "import sys; x = float(sys.argv[1].split('=')[1]); print(f'loss={(x - 0.5) ** 2}')"
FAILS_ABOVE_ZERO = ("import sys; x = float(sys.argv[1].split('=')[1]); "
                    "sys.exit(3) if x > 0 else print(f'loss={(x - 0.5) ** 2}')")


def grid(values: list[str]) -> list[dict[str, Any]]:
    return [{"name": "x", "parameterType": "categorical", "feasibleSpace": {"list": values}}]


def run(tmp_path: Path, data: dict[str, Any], faults: set[str] = frozenset()) -> dict[str, Any]:
    """Compile ``data`` (retries without backoff), run it under kfp.local; the report's outputs."""
    exp = load_experiment(data)
    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(experiment_pipeline(exp, retry_backoff="0s"), str(path))
    comp = components.load_component_from_file(str(path))
    with handler.installed(str(tmp_path / "root")):
        handler.FAULTS.update(faults)
        task = comp()
    return {k: task.outputs[k] for k in ("status", "best_trial", "best_parameters", "best_objective")}


def trial_commands() -> list[list[str]]:
    return [c for c in handler.COMMANDS if "--objective" in c]


def condition(status: dict[str, Any]) -> tuple[str, str]:
    last = status["conditions"][-1]
    return last["type"], last["reason"]


def test_runs_to_max_trials_and_trial_pods_carry_only_their_inputs(tmp_path: Path) -> None:
    out = run(tmp_path, script_experiment("e2e", LOSS, maxTrialCount=5, parallelTrialCount=2))
    st = out["status"]
    assert condition(st) == ("Succeeded", "ExperimentMaxTrialsReached")
    assert int(st["trialsSucceeded"]) == 5 and len(st["succeededTrialList"]) == 5
    assert out["best_trial"] in st["succeededTrialList"] and out["best_objective"] >= 0
    cmds = trial_commands()
    assert len(cmds) == 5  # 3 rounds: 2 + 2 + 1, no trial after maxTrialCount
    for cmd in cmds:  # the wrapper is a file (the suggest step's artifact), not 36 KB of argv
        assert cmd[0] == "python3" and Path(cmd[1]).read_text() == WRAPPER_SOURCE
        assert sum(len(a) for a in cmd) < 4000, cmd


def test_goal_stops_the_run_and_later_rounds_run_no_trials(tmp_path: Path) -> None:
    const = "print('loss=0.1')"
    data = script_experiment("goal", const, maxTrialCount=8, parallelTrialCount=2,
                             objective={"type": "minimize", "objectiveMetricName": "loss", "goal": 0.5})
    st = run(tmp_path, data)["status"]
    assert condition(st) == ("Succeeded", "ExperimentGoalReached")
    assert len(trial_commands()) == 2 and int(st["trials"]) == 2
    skipped = [c for c in handler.COMMANDS if any("no_trials" in a for a in c)]
    assert len(skipped) == 3  # rounds 2-4: the Else branch, then a collect that passes the state on


def test_a_failing_trial_is_recorded_and_max_failed_stops_the_run(tmp_path: Path) -> None:
    data = script_experiment("fail", FAILS_ABOVE_ZERO, params=grid(["1", "-1", "2", "-2", "3", "-3"]),
                             algorithm={"algorithmName": "grid"}, maxTrialCount=6, parallelTrialCount=2,
                             maxFailedTrialCount=1)
    st = run(tmp_path, data)["status"]  # the run itself succeeds: training failures are not task failures
    assert condition(st) == ("Failed", "ExperimentFailed")
    assert int(st["trialsFailed"]) == 1 and len(trial_commands()) < 6  # stopped before the grid ran out
    assert int(st["trialsSucceeded"]) >= 1


def test_grid_exhaustion_ends_the_run_before_max_trials(tmp_path: Path) -> None:
    data = script_experiment("grid", LOSS, params=grid(["0.1", "0.5", "0.9"]), algorithm={"algorithmName": "grid"},
                             maxTrialCount=10, parallelTrialCount=2)
    out = run(tmp_path, data)
    assert condition(out["status"]) == ("Succeeded", "ExperimentSuggestionEndReached")
    assert len(trial_commands()) == 3 and out["best_parameters"] == {"x": "0.5"}


def test_an_evicted_trial_pod_and_an_evicted_step_are_retried_and_the_run_goes_on(tmp_path: Path) -> None:
    # the first trial pod ("--objective": the wrapper's flag) and the first collect pod fail once each
    out = run(tmp_path, script_experiment("evict", LOSS, maxTrialCount=4, parallelTrialCount=2),
              faults={"--objective", "def collect("})
    assert sorted(handler.EVICTED) == ["--objective", "def collect("]
    st = out["status"]
    assert condition(st) == ("Succeeded", "ExperimentMaxTrialsReached") and int(st["trialsSucceeded"]) == 4
    assert len(trial_commands()) == 5  # 4 trials, one of them twice


def test_every_leaf_task_retries_infrastructure_failures(tmp_path: Path) -> None:
    exp = load_experiment(script_experiment("r", LOSS, maxTrialCount=6, parallelTrialCount=2))
    compile_experiment(exp, tmp_path / "p.yaml")
    ir = yaml.safe_load((tmp_path / "p.yaml").read_text())
    leaves = [t for c in [ir["root"], *ir["components"].values()] for t in ((c.get("dag") or {}).get("tasks") or {}).values()
              if "executorLabel" in ir["components"][t["componentRef"]["name"]]]
    assert leaves and all(t["retryPolicy"]["maxRetryCount"] == 2 for t in leaves)


# --------------------------------------------------------------------------- the backend model

def _compiled(tmp_path: Path, trials: int, parallel: int) -> dict[str, Any]:
    exp = load_experiment(script_experiment("m", LOSS, maxTrialCount=trials, parallelTrialCount=parallel))
    compile_experiment(exp, tmp_path / f"m{trials}.yaml")
    return yaml.safe_load((tmp_path / f"m{trials}.yaml").read_text())


def test_depth_does_not_grow_with_rounds(tmp_path: Path) -> None:
    small, big = _compiled(tmp_path, 4, 2), _compiled(tmp_path, 200, 2)
    # D1 2 + round D2 1 + condition-branches 1 + condition 1 + ParallelFor D3 3 + container D4 2
    assert _backend.argo_depth(small) == _backend.argo_depth(big) == 10
    assert _backend.ir_dag_depth(big) == 5
    rounds = [t for t in big["root"]["dag"]["tasks"].values() if t["taskInfo"]["name"].startswith("round-")]
    assert len(rounds) == 100 and len({t["componentRef"]["name"] for t in rounds}) == 1


def _nest(levels: int, kind: str) -> dict[str, Any]:
    """A synthetic IR: ``levels`` nested sub-DAGs (``kind`` "dag" or "loop") around one container."""
    comps: dict[str, Any] = {"comp-leaf": {"executorLabel": "exec-leaf"}}
    inner = "comp-leaf"
    for i in range(levels):  # comp-d0 holds the container; comp-d<i> calls comp-d<i-1>
        task: dict[str, Any] = {"componentRef": {"name": inner}, "taskInfo": {"name": f"t{i}"}}
        if kind == "loop" and i > 0:
            task["parameterIterator"] = {"items": {"raw": "[1]"}, "itemInput": "x"}
        comps[f"comp-d{i}"] = {"dag": {"tasks": {f"t{i}": task}}}
        inner = f"comp-d{i}"
    return {"pipelineInfo": {"name": "n"}, "components": comps,
            "deploymentSpec": {"executors": {"exec-leaf": {"container": {"image": "x"}}}},
            "root": {"dag": {"tasks": {"top": {"componentRef": {"name": inner}, "taskInfo": {"name": "top"}}}}}}


def test_depth_rules_accept_95_nested_dags_and_refuse_96() -> None:
    # 2 (D1) + 1 per sub-DAG (D2: top's, then 94 more) + 2 (D4) must stay below 100 (D5)
    with pytest.warns(UserWarning, match=r"nests 99 Argo templates deep, close to Argo's 100"):
        _backend.check_ir(_nest(95, "dag"))  # accepted, with a warning (past 80 % of the limit)
    assert _backend.argo_depth(_nest(95, "dag")) == 99
    with pytest.raises(UnsupportedExperiment, match=r"spec\.maxTrialCount: .*100 Argo templates deep"):
        _backend.check_ir(_nest(96, "dag"))


def test_depth_rule_for_parallel_for_counts_three_levels() -> None:
    assert _backend.argo_depth(_nest(4, "loop")) == 2 + 1 + 3 * 3 + 2  # top's sub-DAG, 3 ParallelFors, the container


def test_workflow_size_rule_accepts_our_largest_target_and_refuses_a_huge_spec(tmp_path: Path) -> None:
    ir = _compiled(tmp_path, 200, 2)
    assert _backend.workflow_spec_bytes(ir) < 400 * 1024
    huge = json.loads(json.dumps(ir))
    huge["components"]["comp-padding"] = {"executorLabel": "exec-pad", "description": "x" * (1024 * 1024)}
    with pytest.raises(UnsupportedExperiment, match=r"spec\.maxTrialCount: the Workflow KFP would create is about"):
        _backend.check_ir(huge)


def test_too_many_rounds_are_refused_at_compile_time_naming_max_trial_count(tmp_path: Path) -> None:
    exp = load_experiment(script_experiment("many", LOSS, maxTrialCount=1000, parallelTrialCount=1))
    with pytest.raises(UnsupportedExperiment, match=r"^spec\.maxTrialCount: .*MAX_WORKFLOW_SIZE"):
        compile_experiment(exp, tmp_path / "many.yaml")


def test_trial_executor_input_is_small_and_grows_with_the_values_only(tmp_path: Path) -> None:
    ir = _compiled(tmp_path, 200, 2)
    small = _backend.trial_executor_input_bytes(ir, {"hp_trial": "m-0001", "x": "0.5"})
    assert 0 < small < 2048
    assert _backend.trial_executor_input_bytes(ir, {"hp_trial": "m-0001", "x": "y" * 5000}) > small + 4900


# early stopping under kfp.local: the suggest/collect steps put each trial's medianstop rule in its loop
# item (hp_stop_rule), the trial component hands it to the wrapper (--stop-rule), which stops the trial
# as Katib's metrics collector does (file-metricscollector/main.go updateStopRules) after the rule was
# computed when the trial was created (medianstop/service.py GetEarlyStoppingRules)
EPOCHS = """
import sys, time
x = float(sys.argv[1].split("=")[1])
for epoch in range(8):
    print(f"epoch {epoch}: acc={x * (epoch + 1) / 8:.4f}", flush=True)
    time.sleep(0.25)
"""


def final_history(root: Path) -> list[dict[str, Any]]:
    """The last collect step's state artifact (the longest history) under kfp.local's pipeline root."""
    states = []
    for path in root.rglob("*state*"):
        if path.is_file():
            try:
                states.append(json.loads(path.read_text())["history"])
            except (ValueError, KeyError, TypeError):
                continue
    return max(states, key=len)


def test_medianstop_stops_poor_trials_in_their_pods(tmp_path: Path) -> None:
    params = [{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["0.9", "0.8", "0.85", "0.1", "0.95", "0.2"]}}]
    data = script_experiment("kfpmedian", EPOCHS, params=params, maxTrialCount=6, parallelTrialCount=3,
                             algorithm={"algorithmName": "grid"},
                             objective={"type": "maximize", "objectiveMetricName": "acc"},
                             earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [
                                 {"name": "min_trials_required", "value": "3"}, {"name": "start_step", "value": "2"}]})
    st = run(tmp_path, data)["status"]
    assert condition(st) == ("Succeeded", "ExperimentMaxTrialsReached") and int(st["trialsEarlyStopped"]) == 2
    by_x = {t["parameterAssignments"][0]["value"]: t for t in final_history(tmp_path / "root")}
    printed = {x: [float(f"{float(x) * k / 8:.4f}") for k in range(1, 9)] for x in by_x}
    rule = f"acc;{(printed['0.85'][0] + printed['0.85'][1]) / 2!r};less;2"
    for x in ("0.9", "0.8", "0.85", "0.95"):
        assert by_x[x]["condition"] == "Succeeded" and [v for _, v in by_x[x]["intermediateValues"]] == printed[x]
    for x in ("0.1", "0.2"):
        t = by_x[x]
        assert (t["condition"], t["reason"]) == ("EarlyStopped", "TrialEarlyStopped")
        values = [v for _, v in t["intermediateValues"]]
        assert 2 <= len(values) < 8 and values == printed[x][: len(values)] and t["objectiveValue"] == max(values)
        assert sorted(st["earlyStoppedTrialList"]) == sorted(by_x[y]["name"] for y in ("0.1", "0.2"))
    rules = [c[c.index("--stop-rule") + 1] for c in trial_commands()]
    assert sorted(rules) == ["", "", ""] + [rule] * 3, "round 1 has no rule yet, round 2 gets one"


# L1 (workflow/packer/packer.go CompressWorkflowIfNeeded, argo-workflows f016ad89): a Workflow whose
# JSON is still over MAX_WORKFLOW_SIZE (1 MiB) after its status nodes are compressed fails with
# "workflow is longer than maximum allowed size". Our estimate of spec + status nodes after
# maxTrialCount trials is enforced at compile time: under it compiles, close to it warns, past it
# refuses (exit 2 in the CLI, naming maxTrialCount and parallelTrialCount, with the numbers).


def test_status_nodes_within_argo_limit_compile_without_warning(tmp_path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        ir = _compiled(tmp_path, 200, 2)
    spec = _backend.workflow_spec_bytes(ir)
    raw, stored = _backend.workflow_status_bytes(ir, 200, 100)
    assert spec + stored < _backend.MAX_WORKFLOW_BYTES * _backend.WARN_FRACTION < spec + raw  # compressed: fits


def test_status_nodes_close_to_argo_limit_warn_with_the_numbers(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=r"spec\.maxTrialCount: the Workflow KFP would create is about (\d+) KiB "
                                         r"after 1000 trials in 100 rounds .*close to Argo's 1024 KiB"):
        ir = _compiled(tmp_path, 1000, 10)
    assert ir["root"]["dag"]["tasks"]  # compiled anyway


def test_status_nodes_past_argo_limit_are_refused_by_the_cli_with_what_to_change(tmp_path: Path, capsys) -> None:
    from hp_components.cli import main as cli_main

    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(script_experiment("big", LOSS, maxTrialCount=2000, parallelTrialCount=20)))
    assert cli_main(["compile", str(path), "--target", "kfp", "-o", str(tmp_path / "out.yaml")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and not (tmp_path / "out.yaml").exists()
    flat = " ".join(err.split())
    total = int(re.search(r"would create is about (\d+) KiB after 2000 trials in 100 rounds", flat).group(1))
    assert total >= 1024 and "spec.maxTrialCount" in flat and "MAX_WORKFLOW_SIZE" in flat
    assert "lower maxTrialCount" in flat and "raise parallelTrialCount" in flat


def test_check_ir_without_a_trial_count_checks_depth_and_spec_only(tmp_path: Path) -> None:
    ir = _compiled(tmp_path, 12, 3)
    _backend.check_ir(ir)  # no status estimate without trials/rounds
    with pytest.raises(UnsupportedExperiment, match=r"after 100000 trials in 4 rounds"):
        _backend.check_ir(ir, trials=100_000, rounds=4)


def test_status_estimate_does_not_depend_on_the_order_of_the_irs_maps(tmp_path: Path) -> None:
    ir = _compiled(tmp_path, 12, 3)
    flipped = json.loads(json.dumps(ir))
    flipped["components"] = dict(reversed(list(flipped["components"].items())))
    flipped["root"]["dag"]["tasks"] = dict(reversed(list(flipped["root"]["dag"]["tasks"].items())))
    assert _backend.workflow_status_bytes(ir, 12, 4) == _backend.workflow_status_bytes(flipped, 12, 4)
