"""Free slots never wait for the search, and a trial's supervisor is started before it is needed.

Real run_local runs with subprocess trials and a real SQLite file; the algorithm is a plugin (a
dotted path to a module in the test's folder) that takes a deliberately long time per suggestion.
Behaviour, not speed: trial start times are compared with the previous end with bounds far from
the slow fit's length, and the history each suggestion saw is what the plugin wrote down.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from hp_components._reaper import process_table
from hp_components.experiment import parse_experiment
from hp_components.local import run_local
from tests.conftest import script_experiment

SLOW_ALGORITHM = """
import json, os, random, time
from hp_components.algorithms import Algorithm

class Slow(Algorithm):
    def suggest(self, space, history, count, *, direction, seed):
        start = time.time()
        time.sleep(float(os.environ["SLOW_FIT"]))
        with open(os.environ["SLOW_LOG"], "a") as f:
            f.write(json.dumps({"count": count, "conditions": [t.condition for t in history],
                                "start": start, "end": time.time()}) + "\\n")
        rng = random.Random(seed)
        return [(space.from_unit([rng.random() for _ in range(len(space))]), {}) for _ in range(count)]
"""

TIMED_TRIAL = """
import os, sys, time
start = time.time()
time.sleep(float(os.environ["TRIAL_SLEEP"]))
print(f"loss={float(sys.argv[1].split('=')[1])}", flush=True)
with open(os.environ["TIMES"], "a") as f:
    f.write(f"{os.environ['HP_TRIAL_NAME']} {start} {time.time()}\\n")
"""


@pytest.fixture
def slow_env(tmp_path, monkeypatch):
    (tmp_path / "slowalgo.py").write_text(SLOW_ALGORITHM)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SLOW_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("TIMES", str(tmp_path / "times.log"))
    return tmp_path


def _run(tmp_path: Path, name: str, parallel: int, trials: int):
    spec = script_experiment(name, TIMED_TRIAL, maxTrialCount=trials, parallelTrialCount=parallel)
    spec["spec"]["algorithm"] = {"algorithmName": "slowalgo:Slow"}
    exp = parse_experiment(spec)
    result = run_local(exp, storage=f"sqlite:///{tmp_path}/hp.db", run_dir=tmp_path / "runs", kill_grace=2.0)
    times = {n: (float(a), float(b)) for n, a, b in
             (line.split() for line in (tmp_path / "times.log").read_text().splitlines())}
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    return result, times, calls


def test_a_freed_slot_starts_its_next_trial_without_waiting_for_a_slow_fit(slow_env, monkeypatch):
    monkeypatch.setenv("SLOW_FIT", "1.5")  # each suggestion: 1.5 s
    monkeypatch.setenv("TRIAL_SLEEP", "2.5")  # each trial: longer, so the next suggestion is ready
    result, times, calls = _run(slow_env, "ahead", parallel=2, trials=7)
    assert result.status.reason == "ExperimentMaxTrialsReached"
    assert result.status.counts["trialsSucceeded"] == 7 == len(times)  # exactly maxTrialCount, each once
    assert len({t.name for t in result.history}) == 7
    assert len({tuple(sorted(t.assignments.items())) for t in result.history}) == 7, "no configuration twice"
    # the next suggestion was computed while both slots were busy: the trials running were its pending points
    assert any(c["conditions"].count("Running") == 2 for c in calls)
    # Ordering, not speed. The first fit asks for both slots' points, each later fit for one; points
    # and freed slots are both used first come, first served, so trial k + 2 (by start) runs fit k's
    # point in the k-th slot to free (by end). That fit was computed ahead when it began before its slot
    # freed; asked only when a slot frees, every fit begins after. Load stretches both sides alike, so
    # unlike a bound on the wait (which flaked on a loaded machine) this holds on a busy machine too.
    assert [c["count"] for c in calls] == [2] + [1] * (len(calls) - 1), calls
    ends = sorted(end for _, end in times.values())
    ahead = [fit["start"] < freed for fit, freed in zip(calls[1:], ends[: len(times) - 2])]
    assert len(ahead) == len(times) - 2
    assert sum(ahead) >= len(ahead) // 2 + 1, (
        f"fits that began before their slot freed: {ahead}; fit starts {[c['start'] for c in calls]}, trial ends {ends}")


def test_a_sequential_experiment_asks_with_every_result_in(slow_env, monkeypatch):
    """parallelTrialCount 1 never thinks ahead: each suggestion sees every earlier result (as before)."""
    monkeypatch.setenv("SLOW_FIT", "0.05")
    monkeypatch.setenv("TRIAL_SLEEP", "0.3")
    result, times, calls = _run(slow_env, "sequential", parallel=1, trials=4)
    assert result.status.counts["trialsSucceeded"] == 4
    assert [c["conditions"] for c in calls] == [["Succeeded"] * n for n in range(4)]


def _supervisors() -> list[int]:
    """Living descendants of this process that are trial supervisors."""
    table, found, todo = process_table(), [], [os.getpid()]
    while todo:
        parent = todo.pop()
        for pid, (ppid, _, _) in table.items():
            if ppid == parent:
                todo.append(pid)
                try:
                    if b"_reaper.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        found.append(pid)
                except OSError:
                    pass
    return found


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="supervisors run on Linux")
def test_a_trial_run_by_a_spare_supervisor_gets_its_own_env_folder_and_an_empty_stdin(tmp_path):
    script = """
import json, os, sys
data = sys.stdin.read()
json.dump({"stdin": data, "cwd": os.getcwd(), "name": os.environ["KATIB_TRIAL_NAME"],
           "dir": os.environ["HP_TRIAL_DIR"], "x": sys.argv[1]},
          open(os.path.join(os.environ["HP_TRIAL_DIR"], "seen.json"), "w"))
print("loss=1")
"""
    spec = script_experiment("spare", script, maxTrialCount=5, parallelTrialCount=2)
    exp = parse_experiment(spec)
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_local(exp, storage=f"sqlite:///{tmp_path}/hp.db", run_dir=tmp_path / "runs", workdir=workdir)
    assert result.status.counts["trialsSucceeded"] == 5
    for t in result.history:
        seen = json.loads((tmp_path / "runs" / "spare" / t.name / "seen.json").read_text())
        assert seen["stdin"] == ""  # not the command the spare read
        assert Path(seen["cwd"]) == workdir.resolve()
        assert seen["name"] == t.name and Path(seen["dir"]) == (tmp_path / "runs" / "spare" / t.name).resolve()
        assert seen["x"] == f"--x={t.assignments['x']}"
    assert _supervisors() == [], "the spare left over ended with the run"


def test_fillers_are_untried_marked_random_points_within_the_budget():
    from hp_components.suggest import FILLER_ATTR, filler
    params = [{"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
              {"name": "c", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}}]
    spec = script_experiment("fill", "print('loss=1')", params=params, maxTrialCount=6, parallelTrialCount=3)
    exp = parse_experiment(spec)
    history = []
    for _ in range(6):
        [t] = filler(exp, history, 1)
        assert t.system_attrs[FILLER_ATTR] is True and t.name == f"fill-{len(history):04d}"
        t.condition = "Running"
        history.append(t)
    assert len({tuple(sorted(t.assignments.items())) for t in history}) == 6  # every point of the 3 x 2 space once
    assert filler(exp, history, 2) == []  # maxTrialCount spent
    assert filler(exp, history[:3], 1) == filler(exp, history[:3], 1)  # seeded by the history


def test_with_the_gp_a_slot_that_frees_while_it_fits_gets_a_random_point(tmp_path, monkeypatch):
    """Trials shorter than a GP fit: the slots do not wait for it (a random point each while it fits),
    the GP's own points still run, every configuration is new, and exactly maxTrialCount trials run.

    The real GP, with each fit of its model (past the 4 initial points) made a second longer, so that
    every fit outlasts a 0.5 s trial however fast the machine, and warmed up first (torch's first fit
    took 7-13 s, longer than the whole run, which left no fit to finish inside it)."""
    pytest.importorskip("torch")
    from hp_components.algorithms import GaussianProcess
    from hp_components.suggest import suggest
    from hp_components.trials import Trial

    monkeypatch.setenv("TIMES", str(tmp_path / "times.log"))
    monkeypatch.setenv("TRIAL_SLEEP", "0.5")
    params = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-2", "max": "2"}},
              {"name": "k", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "50"}}]
    spec = script_experiment("gpfill", TIMED_TRIAL, params=params, maxTrialCount=24, parallelTrialCount=3)
    spec["spec"]["algorithm"] = {"algorithmName": "bayesianoptimization",
                                 "algorithmSettings": [{"name": "n_initial_points", "value": "4"}]}
    exp = parse_experiment(spec)
    warm = [Trial(name=f"w-{i}", assignments={"x": str(i / 3 - 1), "k": str(i * 9 + 1)}, condition="Succeeded",
                  objective_value=float(i)) for i in range(6)]
    assert len(suggest(exp, warm, 1)) == 1
    real = GaussianProcess.suggest

    def slow_fit(self, space, history, count, *, direction, seed):
        if len(history) >= 4:
            time.sleep(1.0)
        return real(self, space, history, count, direction=direction, seed=seed)

    monkeypatch.setattr(GaussianProcess, "suggest", slow_fit)
    result = run_local(exp, storage=f"sqlite:///{tmp_path}/hp.db", run_dir=tmp_path / "runs")
    assert result.status.counts["trialsSucceeded"] == 24 == len(result.history)
    assert len({tuple(sorted(t.assignments.items())) for t in result.history}) == 24
    fillers = [t for t in result.history if t.system_attrs.get("hp:filler")]
    model = [t for t in result.history if not t.system_attrs.get("hp:filler")][4:]
    assert fillers, "no slot was filled while the GP fitted"
    assert model, "the GP's own points still run"
    # no slot waited for a fit: the i-th slot to free (by end) runs the (i + 3)-th trial to start; a slot
    # that waited for a fit would wait at least the fit's one-second sleep, on any machine
    spans = sorted((float(a), float(b)) for _, a, b in
                   (line.split() for line in (tmp_path / "times.log").read_text().splitlines()))
    starts, ends = [a for a, _ in spans], sorted(b for _, b in spans)
    waits = [round(start - end, 2) for start, end in zip(starts[3:], ends)]
    assert len(waits) == 21 and max(waits) < 1.0, waits


def test_the_slots_benchmark_takes_the_times_from_the_trials_themselves():
    from benchmarks._slots_child import main
    r = main({"algorithm": "random", "trials": 6, "parallel": 2, "sleep": 0.1})
    assert r["trials"] == r["succeeded"] == r["unique_configurations"] == 6
    assert 6 * 0.1 <= r["busy_slot_s"] < 2 * r["wall_s"]  # each trial slept 0.1 s between its two lines
    assert 0 < r["utilisation"] <= r["steady_utilisation"] <= 1
    assert r["startup_s"] > 0 and r["shutdown_s"] >= 0 and r["fillers"] == 0


def test_only_a_model_slow_to_fit_gets_fillers():
    """The configured algorithm says whether the local runner hands out fillers while it computes
    (Algorithm.fills_while_fitting): the GP does, TPE and random do not, auto as the algorithm it starts with."""
    from hp_components.algorithms import get_algorithm
    from hp_components.local import _Runner

    def fills(name: str, **spec) -> bool:
        exp = parse_experiment(script_experiment("fills", "print('loss=1')", algorithm={"algorithmName": name},
                                                 maxTrialCount=8, parallelTrialCount=4, **spec))
        a = exp.spec.algorithm
        chosen = get_algorithm(a.algorithm_name, a.settings(), exp.spec).fills_while_fitting
        runner = _Runner.__new__(_Runner)
        _Runner.__init__(runner, exp, None, Path("."), Path("."), lambda *_: None, 1.0, 1.0, None, {}, None)
        assert runner.fills == chosen
        return chosen

    assert fills("bayesianoptimization") and not fills("tpe") and not fills("random")
    # auto starts with the GP on a small continuous space (hp_components.algorithms.auto_choice)
    assert fills("auto") == (get_algorithm("auto", {}, parse_experiment(script_experiment(
        "fills", "print('loss=1')", algorithm={"algorithmName": "auto"}, maxTrialCount=8, parallelTrialCount=4)).spec).choice
        == "bayesianoptimization")
