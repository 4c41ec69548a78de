"""Katib's ``hyperband`` and fixed parameters (issue 14, point 5).

Rules and their Katib sources:
- min == max is a fixed value: Katib's webhook does not compare min and max
  (pkg/webhook/v1beta1/experiment/validator/validator.go), and its hyperband example
  (examples/v1beta1/hp-tuning/hyperband.yaml) fixes num-epochs at 1..1;
- the schedule (s_max, bracket sizes, resources, promotion of the best), the required settings
  r_l and resource_name, parallelTrialCount >= eta ** s_max and resource_name among the
  parameters: pkg/suggestion/v1beta1/hyperband/service.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hp_components._hyperband import RUNG_ATTR, schedule
from hp_components.experiment import SpecError, load_experiment
from hp_components.space import SearchSpace
from hp_components.suggest import suggest
from tests.conftest import ROOT, make_experiment

EXAMPLE = ROOT / "examples" / "hyperband.yaml"


def _hb(basic_dict, parallel=9, max_trials=30, **settings):
    settings = {k: v for k, v in {"resource_name": "n", "r_l": "9", "eta": "3", **settings}.items() if v is not None}
    basic_dict["spec"]["parameters"][1]["feasibleSpace"] = {"min": "1", "max": "9"}
    return make_experiment(basic_dict, **{
        "spec.algorithm": {"algorithmName": "hyperband",
                           "algorithmSettings": [{"name": k, "value": v} for k, v in settings.items()]},
        "spec.parallelTrialCount": parallel, "spec.maxTrialCount": max_trials, "spec.objective.goal": None})


def test_katibs_schedule():
    # s_max = int(log 9 / log 3) = 2; n = ceil(3 * 3**s / (s + 1)); r = 9 * 3**-s; rung i keeps ceil(n_{i-1} / 3)
    assert [(r.bracket, r.rung, r.size, r.resource) for r in schedule(3, 9)] == [
        (2, 0, 9, 1), (2, 1, 3, 3), (2, 2, 1, 9), (1, 0, 5, 3), (1, 1, 2, 9), (0, 0, 3, 9)]


def test_min_equal_to_max_is_a_fixed_value(basic_dict):
    for i, fs in ((1, {"min": "3", "max": "3"}), (3, {"min": "0.5", "max": "0.5", "distribution": "normal"})):
        basic_dict["spec"]["parameters"][i]["feasibleSpace"] = fs
    exp = make_experiment(basic_dict, **{"spec.algorithm.algorithmName": "random"})
    batch = suggest(exp, [], 3)
    assert {t.assignments["n"] for t in batch} == {"3"} and {t.assignments["x"] for t in batch} == {"0.5"}
    assert SearchSpace(exp.spec.parameters).internal(batch[0].assignments)["x"] == 0.5
    basic_dict["spec"]["parameters"][1]["feasibleSpace"] = {"min": "4", "max": "3"}
    with pytest.raises(SpecError, match="less than or equal to max"):
        make_experiment(basic_dict)


def test_brackets_promote_the_best_with_more_resource_and_wait_for_their_rung(basic_dict):
    exp = _hb(basic_dict)
    first = suggest(exp, [], 9)
    assert [t.assignments["n"] for t in first] == ["1"] * 9
    assert {t.system_attrs[RUNG_ATTR] for t in first} == {"2/0"}
    assert suggest(exp, first, 9) == [], "rung 1 waits for every trial of rung 0"
    for i, t in enumerate(first):
        t.condition, t.objective_value = "Succeeded", float(i)  # maximize: the last three are best
    first[0].condition, first[0].objective_value = "Failed", None
    second = suggest(exp, first, 9)
    assert [t.system_attrs[RUNG_ATTR] for t in second] == ["2/1"] * 3
    assert [t.assignments["lr"] for t in second] == [first[i].assignments["lr"] for i in (8, 7, 6)]
    assert {t.assignments["n"] for t in second} == {"3"}
    for t in second:
        t.condition, t.objective_value = "Succeeded", float(t.assignments["lr"])
    third = suggest(exp, first + second, 9)
    best = max(second, key=lambda t: t.objective_value)
    # the last rung of bracket 2, then bracket 1 starts at once (as Katib makes its master bracket)
    assert [(t.system_attrs[RUNG_ATTR], t.assignments["n"]) for t in third] == [("2/2", "9")] + [("1/0", "3")] * 5
    assert third[0].assignments["lr"] == best.assignments["lr"]


def test_a_short_batch_is_continued_when_slots_free_up(basic_dict):
    exp = _hb(basic_dict)
    a = suggest(exp, [], 4)
    b = suggest(exp, a, 9)
    assert len(a) == 4 and len(b) == 5 and {t.system_attrs[RUNG_ATTR] for t in a + b} == {"2/0"}


def test_the_schedule_ends(basic_dict):
    exp = _hb(basic_dict, max_trials=100)
    history = []
    while True:
        batch = suggest(exp, history, 9)
        if not batch:
            break
        for t in batch:
            t.condition, t.objective_value = "Succeeded", float(t.assignments["n"]) + float(t.assignments["lr"])
        history += batch
    assert len(history) == sum(r.size for r in schedule(3, 9)) == 23


@pytest.mark.parametrize("settings,parallel,message", [
    ({"r_l": None}, 9, "needs the settings r_l and resource_name"),
    ({"resource_name": "epochs"}, 9, "must be one of spec.parameters"),
    ({"resource_name": "opt"}, 9, "must be an int or double parameter"),
    ({}, 8, "parallelTrialCount must be at least 9"),
    ({"r_l": "27"}, 27, "outside its feasibleSpace 1..9"),
    ({"eta": "1"}, 9, "eta must be a number > 1"),
    ({"etta": "3"}, 9, "'etta' is not a setting of hyperband"),
])
def test_settings_are_checked_as_katib_does(basic_dict, settings, parallel, message):
    with pytest.raises(SpecError, match=message):
        _hb(basic_dict, parallel=parallel, max_trials=100, **settings)


def test_katibs_hyperband_example_runs_here(tmp_path):
    """Katib's examples/v1beta1/hp-tuning/hyperband.yaml, with a trainer that trains --epochs."""
    exp = load_experiment(EXAMPLE)
    assert exp.spec.algorithm.algorithm_name == "hyperband"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def run(path):
        res = subprocess.run([sys.executable, "-m", "hp_components.cli", "run", str(path), "-q", "--output",
                              str(tmp_path / "out"), "--storage", f"sqlite:///{tmp_path}/hp.db",
                              "--run-dir", str(tmp_path / "runs"), "--fresh"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        return json.loads((tmp_path / "out" / "status.json").read_text())

    status = run(EXAMPLE)
    assert status["trialsSucceeded"] == 2
    # the whole schedule, with num-epochs widened to what it assigns (1 and 2 epochs)
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["spec"]["maxTrialCount"] = 10
    spec["spec"]["parameters"][2]["feasibleSpace"]["max"] = "2"
    wide = tmp_path / "hyperband-full.yaml"
    wide.write_text(yaml.safe_dump(spec))
    status = run(wide)
    assert status["trials"] == 5 and status["conditions"][-1]["reason"] == "ExperimentSuggestionEndReached"
