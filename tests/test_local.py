"""The local runner, with real subprocess trials and a real SQLite file."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import pytest

from hp_components.experiment import parse_experiment
from hp_components.local import RunnerError, run_local
from hp_components.store import ExperimentStore, StoreConflict
from tests.conftest import script_experiment

QUADRATIC = """
import argparse
p = argparse.ArgumentParser(); p.add_argument("--x", type=float); a = p.parse_args()
for i in range(3):
    print(f"epoch {i}: loss={(a.x - 0.5) ** 2 + 1 / (i + 1):.4f}", flush=True)
"""


def run(tmp_path: Path, spec: dict, **kw):
    exp = parse_experiment(spec)
    kw.setdefault("storage", f"sqlite:///{tmp_path}/hp.db")
    kw.setdefault("run_dir", tmp_path / "runs")
    kw.setdefault("kill_grace", 2.0)
    return exp, run_local(exp, **kw)


def test_runs_to_max_trials_with_logs_and_sqlite(tmp_path):
    exp, result = run(tmp_path, script_experiment("quad", QUADRATIC, maxTrialCount=6, parallelTrialCount=3))
    st = result.status
    assert (st.condition, st.reason) == ("Succeeded", "ExperimentMaxTrialsReached")
    assert st.counts["trials"] == st.counts["trialsSucceeded"] == 6
    best = st.best
    assert best.objective_value == min(t.objective_value for t in result.history)
    # min strategy over the three epochs: the last epoch's value is the smallest
    x = float(best.assignments["x"])
    assert best.objective_value == pytest.approx((x - 0.5) ** 2 + 1 / 3, abs=1e-4)
    assert [v for _, v in best.intermediate_values][-1] == best.objective_value
    assert (tmp_path / "hp.db").stat().st_size > 0
    log = (tmp_path / "runs" / "quad" / best.name / "output.log").read_text()
    assert "epoch 2: loss=" in log
    # the store holds the same history (what a resume or optuna-dashboard sees)
    again = ExperimentStore(f"sqlite:///{tmp_path}/hp.db", exp).history()
    assert [(t.name, t.objective_value) for t in again] == [(t.name, t.objective_value) for t in result.history]


def test_a_trial_counts_as_finished_only_once_its_result_is_stored(tmp_path):
    spec = script_experiment("stored", QUADRATIC, maxTrialCount=6, parallelTrialCount=3)
    storage = f"sqlite:///{tmp_path}/hp.db"
    seen: list[tuple[str, str, str]] = []

    def on_event(kind, payload):
        if kind == "finished":
            stored = {t.name: t for t in ExperimentStore(storage, parse_experiment(spec)).history()}[payload.name]
            seen.append((payload.condition, stored.condition, str(stored.intermediate_values == payload.intermediate_values)))
        elif kind == "status":  # every count in a status is in the store already
            assert payload.counts["trialsSucceeded"] <= sum(
                t.condition == "Succeeded" for t in ExperimentStore(storage, parse_experiment(spec)).history())

    run(tmp_path, spec, storage=storage, on_event=on_event)
    assert seen == [("Succeeded", "Succeeded", "True")] * 6


def test_slots_are_refilled_as_soon_as_a_trial_ends(tmp_path):
    """One slow trial must not hold the others back (no lockstep rounds)."""
    script = """
import sys, time, os
x = float(sys.argv[1].split("=")[1])
start = time.time()
time.sleep(1.5 if os.environ["HP_TRIAL_NAME"].endswith("0000") else 0.1)
print(f"loss={x}", flush=True)
with open(os.environ["LOG"], "a") as f:
    f.write(f"{os.environ['HP_TRIAL_NAME']} {start} {time.time()}\\n")
"""
    log = tmp_path / "times.log"
    os.environ["LOG"] = str(log)
    try:
        _, result = run(tmp_path, script_experiment("refill", script, maxTrialCount=8, parallelTrialCount=2))
    finally:
        del os.environ["LOG"]
    assert result.status.counts["trialsSucceeded"] == 8
    times = {name: (float(a), float(b)) for name, a, b in (line.split() for line in log.read_text().splitlines())}
    slow_start, slow_end = times["refill-0000"]
    during = [n for n, (a, b) in times.items() if n != "refill-0000" and a >= slow_start and b <= slow_end]
    assert len(during) >= 4, f"only {during} ran while the slow trial did"


def test_values_reach_the_trial_as_single_arguments(tmp_path):
    marker = tmp_path / "pwned"
    nasty = ["a b", "it's \"quoted\"", f"; touch {marker}", f"$(touch {marker})", "line\nbreak", "`id`"]
    script = """
import json, os, sys
with open(os.path.join(os.environ["HP_TRIAL_DIR"], "argv.json"), "w") as f:
    json.dump({"argv": sys.argv[1:], "katib": os.environ["KATIB_TRIAL_NAME"]}, f)
print("loss=1")
"""
    params = [{"name": "v", "parameterType": "categorical", "feasibleSpace": {"list": nasty}}]
    spec = script_experiment("args", script, params=params, args=["${trialParameters.v}", "--v=${trialParameters.v}"],
                             maxTrialCount=6, parallelTrialCount=2, algorithm={"algorithmName": "grid"})
    _, result = run(tmp_path, spec)
    assert result.status.reason == "ExperimentMaxTrialsReached"
    seen = []
    for t in result.history:
        data = json.loads((tmp_path / "runs" / "args" / t.name / "argv.json").read_text())
        assert data["argv"] == [t.assignments["v"], "--v=" + t.assignments["v"]]
        assert data["katib"] == t.name
        seen.append(data["argv"][0])
    assert sorted(seen) == sorted(nasty)
    assert not marker.exists()


def test_deadline_failures_and_max_failed(tmp_path):
    script = """
import sys, time
x = float(sys.argv[1].split("=")[1])
if x < -1: time.sleep(60)
elif x < 0: sys.exit(3)
elif x < 1: print("no metric here")
else: print(f"loss={x}")
"""
    params = [{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["-1.5", "-0.5", "0.5", "1.5"]}}]
    spec = script_experiment("fails", script, params=params, maxTrialCount=4, parallelTrialCount=4, maxFailedTrialCount=4,
                             algorithm={"algorithmName": "grid"})
    spec["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 1
    t0 = time.monotonic()
    _, result = run(tmp_path, spec)
    assert time.monotonic() - t0 < 20
    by_x = {t.assignments["x"]: t for t in result.history}
    assert (by_x["-1.5"].condition, by_x["-1.5"].reason) == ("Failed", "DeadlineExceeded")
    assert (by_x["-0.5"].condition, by_x["-0.5"].message) == ("Failed", "the training process ended with exit code 3")
    assert by_x["0.5"].condition == "MetricsUnavailable"
    assert by_x["1.5"].condition == "Succeeded"
    # 3 failures (Failed + MetricsUnavailable) < 4: the experiment still succeeds on max trials
    assert result.status.reason == "ExperimentMaxTrialsReached"
    assert result.status.counts["trialsFailed"] == 2 and result.status.counts["trialMetricsUnavailable"] == 1


def test_max_failed_trial_count_fails_the_experiment(tmp_path):
    spec = script_experiment("allfail", "import sys; sys.exit(1)", maxTrialCount=10, parallelTrialCount=2,
                             maxFailedTrialCount=3)
    _, result = run(tmp_path, spec)
    assert (result.status.condition, result.status.reason) == ("Failed", "ExperimentFailed")
    assert result.status.counts["trialsFailed"] >= 3
    assert len(result.history) < 10


def test_goal_stops_running_trials(tmp_path):
    script = """
import os, sys, time
x = float(sys.argv[1].split("=")[1])
import glob
open(os.path.join(os.environ["HP_TRIAL_DIR"], "pid"), "w").write(str(os.getpid()))
if x > 0:
    time.sleep(120)
while len(glob.glob(os.path.join(os.environ["HP_TRIAL_DIR"], "..", "*", "pid"))) < 3:
    time.sleep(0.01)  # the goal is reached once the other two run
print(f"loss={x}", flush=True)
"""
    params = [{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["1", "2", "-1"]}}]
    spec = script_experiment("goal", script, params=params, maxTrialCount=3, parallelTrialCount=3,
                             algorithm={"algorithmName": "grid"},
                             objective={"type": "minimize", "objectiveMetricName": "loss", "goal": 0})
    t0 = time.monotonic()
    _, result = run(tmp_path, spec)
    assert time.monotonic() - t0 < 30
    assert result.status.reason == "ExperimentGoalReached"
    killed = [t for t in result.history if t.condition == "Killed"]
    assert len(killed) == 2
    for t in killed:
        pid = int((tmp_path / "runs" / "goal" / t.name / "pid").read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_gpus_are_shared_out_without_overlap(tmp_path, monkeypatch):
    monkeypatch.setenv("HP_GPUS", "0,1,2,3,4")
    script = """
import os, time
open(os.path.join(os.environ["HP_TRIAL_DIR"], "gpus"), "w").write(f"{os.environ['CUDA_VISIBLE_DEVICES']} {time.time()}")
time.sleep(0.3)
open(os.path.join(os.environ["HP_TRIAL_DIR"], "end"), "w").write(str(time.time()))
print("loss=1")
"""
    spec = script_experiment("gpu", script, args=[], maxTrialCount=6, parallelTrialCount=3)
    container = spec["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"limits": {"nvidia.com/gpu": 2}}
    spec["spec"]["trialTemplate"]["trialParameters"] = []
    _, result = run(tmp_path, spec)
    assert result.status.counts["trialsSucceeded"] == 6
    spans = []
    for t in result.history:
        d = tmp_path / "runs" / "gpu" / t.name
        gpus, start = (d / "gpus").read_text().split()
        spans.append((set(gpus.split(",")), float(start), float((d / "end").read_text())))
    for gpus, _, _ in spans:
        assert len(gpus) == 2 and gpus <= {"0", "1", "2", "3", "4"}
    for i, (g1, a1, b1) in enumerate(spans):
        for g2, a2, b2 in spans[i + 1:]:
            if a1 < b2 and a2 < b1:  # ran at the same time
                assert not g1 & g2
    # 5 GPUs, 2 each: never more than 2 trials at once although parallelTrialCount is 3
    assert max(sum(a <= t < b for _, a, b in spans) for _, t, _ in spans) <= 2


def test_file_collector_gets_a_file_per_trial(tmp_path):
    script = """
import sys, time
path, x = sys.argv[1], float(sys.argv[2].split("=")[1])
with open(path, "w") as f:
    f.write(f"2026-01-01T00:00:00Z loss={x * x}\\n")
print("loss=999")  # stdout is not the collector's source here
"""
    spec = script_experiment("filecol", script, args=["/tmp/katib/metrics.log", "--x=${trialParameters.x}"],
                             maxTrialCount=4, parallelTrialCount=2,
                             metricsCollectorSpec={"collector": {"kind": "File"},
                                                   "source": {"fileSystemPath": {"path": "/tmp/katib/metrics.log", "kind": "File"}}})
    _, result = run(tmp_path, spec)
    for t in result.history:
        assert t.objective_value == pytest.approx(float(t.assignments["x"]) ** 2, rel=1e-6)
        assert (tmp_path / "runs" / "filecol" / t.name / "metrics.log").exists()


def test_grid_exhaustion_ends_the_experiment(tmp_path):
    params = [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}]
    spec = script_experiment("gridend", "import sys; print('loss=' + sys.argv[1].split('=')[1])", params=params,
                             maxTrialCount=10, parallelTrialCount=2, algorithm={"algorithmName": "grid"})
    _, result = run(tmp_path, spec)
    assert result.status.reason == "ExperimentSuggestionEndReached"
    assert sorted(t.assignments["x"] for t in result.history) == ["1", "2", "3"]


def test_resume_keeps_finished_trials_and_changed_spec_conflicts(tmp_path):
    spec = script_experiment("resume", QUADRATIC, maxTrialCount=3, parallelTrialCount=3)
    _, first = run(tmp_path, spec)
    spec["spec"]["maxTrialCount"] = 6
    with pytest.raises(RunnerError, match="resumePolicy is LongRunning"):
        run(tmp_path, spec)  # Katib's default resumePolicy (Never) does not restart a finished experiment
    spec["spec"]["resumePolicy"] = "LongRunning"
    # Katib's webhook lets an edit change only maxTrialCount, maxFailedTrialCount and parallelTrialCount
    # (pkg/webhook/v1beta1/experiment/validator/validator.go): resumePolicy is part of the stored spec
    with pytest.raises(StoreConflict, match="different spec") as err:
        run(tmp_path, spec)
    assert "resumePolicy" not in str(err.value)
    spec["spec"]["maxTrialCount"] = 3
    _, first = run(tmp_path, spec, fresh=True)
    spec["spec"]["maxTrialCount"] = 6
    _, second = run(tmp_path, spec)
    assert [t.to_dict() for t in second.history[:3]] == [t.to_dict() for t in first.history]
    assert len(second.history) == 6 and second.status.reason == "ExperimentMaxTrialsReached"
    _, third = run(tmp_path, spec)  # already done: nothing more runs
    assert len(third.history) == 6
    spec["spec"]["parameters"][0]["feasibleSpace"]["max"] = "3"
    with pytest.raises(StoreConflict, match="different spec"):
        run(tmp_path, spec)
    _, fresh = run(tmp_path, spec, fresh=True)
    assert len(fresh.history) == 6 and fresh.status.reason == "ExperimentMaxTrialsReached"


def test_lowering_max_trial_count_below_created_trials_is_refused(tmp_path):
    """Katib's webhook (pkg/webhook/v1beta1/experiment/validator/validator.go): when an edit
    changes the spec, spec.maxTrialCount must be greater than status.trials; and only
    parallelTrialCount, maxTrialCount and maxFailedTrialCount are editable."""
    spec = script_experiment("shrink", QUADRATIC, maxTrialCount=4, parallelTrialCount=2, resumePolicy="LongRunning")
    _, first = run(tmp_path, spec)
    assert len(first.history) == 4
    for lowered, parallel in ((2, 2), (4, 1)):  # below, and equal to, the 4 trials created (with a change)
        spec["spec"]["maxTrialCount"], spec["spec"]["parallelTrialCount"] = lowered, parallel
        with pytest.raises(StoreConflict, match="maxTrialCount") as err:
            run(tmp_path, spec)
        assert "greater than" in str(err.value) and "resumePolicy" not in str(err.value)
    spec["spec"]["maxTrialCount"], spec["spec"]["parallelTrialCount"] = 5, 2
    _, more = run(tmp_path, spec)
    assert len(more.history) == 5
    spec["spec"]["resumePolicy"] = "Never"
    with pytest.raises(StoreConflict) as err:
        run(tmp_path, spec)
    message = str(err.value)
    assert "spec.maxTrialCount, spec.maxFailedTrialCount, spec.parallelTrialCount may change" in message
    assert "resumePolicy" not in message


def test_container_without_command_is_refused_before_running(tmp_path):
    spec = script_experiment("nocmd", "print(1)", args=[])
    container = spec["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    del container["command"]
    container["args"] = []
    spec["spec"]["trialTemplate"]["trialParameters"] = []
    with pytest.raises(RunnerError, match="no command"):
        run(tmp_path, spec)
    assert not (tmp_path / "runs" / "nocmd").exists()


def test_missing_program_is_a_failed_trial(tmp_path):
    spec = script_experiment("noprog", "", maxTrialCount=2, parallelTrialCount=1, maxFailedTrialCount=2)
    spec["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "/nonexistent/python", "--x=${trialParameters.x}"]
    _, result = run(tmp_path, spec)
    assert result.status.reason == "ExperimentFailed"
    assert all(t.condition == "Failed" and "cannot start" in t.message for t in result.history)


def test_output_flood_is_survived(tmp_path):
    script = "import sys\nsys.stdout.write('x' * 5_000_000 + '\\n' + 'junk\\x00\\xff' * 1000 + '\\nloss=0.5\\n')"
    spec = script_experiment("flood", script, args=[], maxTrialCount=1, parallelTrialCount=1)
    spec["spec"]["trialTemplate"]["trialParameters"] = []
    _, result = run(tmp_path, spec)
    assert result.history[0].objective_value == 0.5


def test_warm_start_seeds_the_sampler(tmp_path):
    params = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-2", "max": "2"}}]
    # one at a time: with slots refilled as trials end, which batches the runner asks for (and so
    # which random points it gets) depends on timing; sequentially the first experiment is fixed
    first = script_experiment("warm-from", QUADRATIC, params=params, maxTrialCount=12, parallelTrialCount=1,
                              algorithm={"algorithmName": "random"})
    run(tmp_path, first)
    # the new experiment's TPE would sample at random for its first 10 trials; with 12 warm trials it models at once
    second = script_experiment("warm-to", QUADRATIC, params=params, maxTrialCount=4, parallelTrialCount=1,
                               resumePolicy="LongRunning", algorithm={"algorithmName": "tpe", "algorithmSettings": [{"name": "random_state", "value": "1"}]})
    cold_exp, cold = run(tmp_path, second, run_dir=tmp_path / "cold", storage=f"sqlite:///{tmp_path}/cold.db")
    _, warm = run(tmp_path, second, warm_start="warm-from")
    assert [t.name for t in warm.history] == [f"warm-to-{i:04d}" for i in range(4)], "warm trials count toward nothing"
    assert [t.assignments for t in warm.history] != [t.assignments for t in cold.history]
    warm_dist = [abs(float(t.assignments["x"]) - 0.5) for t in warm.history]
    cold_dist = [abs(float(t.assignments["x"]) - 0.5) for t in cold.history]
    # TPE fed with the first experiment samples near its optimum (x = 0.5) from the start
    assert statistics.median(warm_dist) < statistics.median(cold_dist) / 2 and min(warm_dist) < 0.1
    # a resume keeps the warm start without the flag
    second["spec"]["maxTrialCount"] = 5
    _, resumed = run(tmp_path, second)
    assert len(resumed.history) == 5


def test_warm_start_errors(tmp_path):
    spec = script_experiment("lonely", QUADRATIC, maxTrialCount=1, parallelTrialCount=1)
    with pytest.raises(StoreConflict, match="no experiment named 'ghost'"):
        run(tmp_path, spec, warm_start="ghost")
    other = script_experiment("maxer", QUADRATIC, maxTrialCount=1, parallelTrialCount=1,
                              objective={"type": "maximize", "objectiveMetricName": "loss"})
    run(tmp_path, other)
    with pytest.raises(RunnerError, match="objectives must match"):
        run(tmp_path, script_experiment("lonely2", QUADRATIC, maxTrialCount=1, parallelTrialCount=1), warm_start="maxer")


@pytest.mark.parametrize("path", ["/usr/bin:/bin", "/nonexistent"], ids=["path", "no-path"])
def test_trials_die_with_a_kill_9_runner(tmp_path, path):
    """PR_SET_PDEATHSIG on the trial's supervisor (which needs nothing on PATH); tests/test_lifetime.py
    has the trial's own children."""
    import signal
    import subprocess
    import sys

    import yaml

    from tests.conftest import ROOT

    script = """
import os, time
open(os.path.join(os.environ["HP_TRIAL_DIR"], "pid"), "w").write(str(os.getpid()))
time.sleep(120)
"""
    spec = script_experiment("orphan", script, maxTrialCount=1, parallelTrialCount=1)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(spec))
    runner = subprocess.Popen([sys.executable, "-m", "hp_components.cli", "run", str(tmp_path / "exp.yaml"), "-q",
                               "--storage", f"sqlite:///{tmp_path}/s.db", "--run-dir", str(tmp_path / "runs")],
                              cwd=tmp_path, env={**os.environ, "PATH": path, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_files = lambda: list((tmp_path / "runs").rglob("pid"))  # noqa: E731
    deadline = time.monotonic() + 60
    while not pid_files() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    pid = int(pid_files()[0].read_text())
    os.kill(runner.pid, signal.SIGKILL)  # the runner alone, not its process group
    runner.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    pytest.fail("the trial outlived its runner")


def test_a_program_not_on_path_is_a_failed_trial(tmp_path):
    spec = script_experiment("noprogpath", "", maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=1)
    spec["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "no-such-program-hp", "--x=${trialParameters.x}"]
    _, result = run(tmp_path, spec)
    assert result.history[0].condition == "Failed"
    assert "cannot start 'no-such-program-hp'" in result.history[0].message


def test_status_has_katibs_start_completion_and_transition_times(tmp_path):
    """Katib's Experiment.status carries startTime, completionTime and per condition the time it changed
    (pkg/controller.v1beta1/experiment/util/status_util.go); here they come from the trials' own times,
    so a status written later says the same."""
    spec = script_experiment("times", "import time; time.sleep(1.1); print('loss=1')", maxTrialCount=2, parallelTrialCount=1)
    _, result = run(tmp_path, spec)
    st = result.status.to_dict()
    first_start = min(t.start_time for t in result.history)
    last_end = max(t.completion_time for t in result.history)
    assert st["startTime"] == first_start and st["completionTime"] == last_end and first_start < last_end
    by_type = {c["type"]: c for c in st["conditions"]}
    assert by_type["Created"]["lastTransitionTime"] == first_start
    assert by_type["Running"]["status"] == "False" and by_type["Running"]["lastTransitionTime"] == last_end
    assert by_type["Succeeded"]["lastTransitionTime"] == last_end
    time.sleep(1.1)
    assert result.status.to_dict()["conditions"] == st["conditions"]  # not "now" at each writing


def test_a_sequential_gp_run_asks_the_points_optunas_gpsampler_asks(tmp_path):
    """parallelTrialCount 1, bayesianoptimization, random_state 4: the trials' points are those of one
    ``GPSampler(seed=4)`` told the same results in study.ask/tell (hp_components._persistent_gp), the
    random start and the GP's asks after it."""
    pytest.importorskip("torch")
    import warnings

    import optuna

    from hp_components import _persistent_gp
    from hp_components.space import SearchSpace

    script = """
import argparse
p = argparse.ArgumentParser(); p.add_argument("--x", type=float); p.add_argument("--y", type=float); a = p.parse_args()
print(f"loss={(a.x - 0.5) ** 2 + abs(a.y + 0.3) + 0.1 * a.x * a.y:.6f}")
"""
    params = [{"name": n, "parameterType": "double", "feasibleSpace": {"min": "-2", "max": "2"}} for n in "xy"]
    _persistent_gp.forget()
    exp, result = run(tmp_path, script_experiment(
        "seq-gp", script, params=params, maxTrialCount=13, parallelTrialCount=1,
        algorithm={"algorithmName": "bayesianoptimization",
                   "algorithmSettings": [{"name": "random_state", "value": "4"}]}))
    assert result.status.counts["trialsSucceeded"] == 13
    space = SearchSpace(exp.spec.parameters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=4))
        for trial in result.history:
            asked = study.ask(space.distributions)
            assert trial.assignments == space.assignments(asked.params), trial.name
            study.tell(asked, trial.objective_value)
