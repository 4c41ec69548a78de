"""User algorithms: by dotted path and by entry point, with the built-ins' interface and checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from hp_components.algorithms import ENTRY_POINT_GROUP, find_algorithm
from hp_components.experiment import SpecError, load_experiment, parse_experiment
from hp_components.suggest import suggest
from tests.conftest import ROOT, make_experiment


def test_dotted_path_example_suggests_valid_points(basic_dict, monkeypatch):
    monkeypatch.chdir(ROOT)
    exp = make_experiment(basic_dict, **{"spec.algorithm.algorithmName": "examples.custom_algorithm:HillClimb",
                                         "spec.algorithm.algorithmSettings": [{"name": "n_startup_trials", "value": "3"}],
                                         "spec.maxTrialCount": 12})
    history = []
    for _ in range(4):
        batch = suggest(exp, history, 3)
        for t in batch:
            assert 0.001 <= float(t.assignments["lr"]) <= 0.1 and t.assignments["opt"] in ("sgd", "adam")
            t.condition, t.objective_value = "Succeeded", -abs(float(t.assignments["x"]))
        history += batch
    best = max(history[:3], key=lambda t: t.objective_value)
    later = history[3:]
    # after start-up it stays near the best point
    assert sum(abs(float(t.assignments["x"]) - float(best.assignments["x"])) < 0.8 for t in later) >= len(later) * 0.6


def test_plugin_settings_are_validated(basic_dict, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SpecError) as info:
        make_experiment(basic_dict, **{"spec.algorithm.algorithmName": "examples.custom_algorithm:HillClimb",
                                       "spec.algorithm.algorithmSettings": [{"name": "step", "value": "3"}, {"name": "sigma", "value": "1"}]})
    found = dict(info.value.problems)
    assert "step must be a number in (0, 1]" in found["spec.algorithm.algorithmSettings[0].value"]
    assert "not a setting of examples.custom_algorithm:HillClimb" in found["spec.algorithm.algorithmSettings[1].name"]


@pytest.mark.parametrize("name,text", [
    ("no_such_module_xyz:Algo", "cannot import 'no_such_module_xyz'"),
    ("examples.custom_algorithm:Nope", "has no 'Nope'"),
    ("json:JSONDecoder", "not a subclass of hp_components.algorithms.Algorithm"),
    ("annealing", "is not supported"),
])
def test_bad_plugins_are_clear_errors(basic_dict, monkeypatch, name, text):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SpecError) as info:
        make_experiment(basic_dict, **{"spec.algorithm.algorithmName": name})
    assert any(p == "spec.algorithm.algorithmName" and text in m for p, m in info.value.problems)


def test_entry_point_plugin(tmp_path, basic_dict):
    """A real installed distribution registering an algorithm under the entry point group."""
    pkg = tmp_path / "site"
    (pkg / "myalgo").mkdir(parents=True)
    (pkg / "myalgo" / "__init__.py").write_text(textwrap.dedent("""
        from hp_components.algorithms import Algorithm
        class Corner(Algorithm):
            name = "corner"
            def suggest(self, space, history, count, *, direction, seed):
                return [({n: getattr(d, "low", None) if hasattr(d, "low") else d.choices[0]
                          for n, d in space.distributions.items()}, {}) for _ in range(count)]
    """))
    dist = pkg / "myalgo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myalgo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ncorner = myalgo:Corner\n")
    script = textwrap.dedent("""
        import sys, yaml
        from hp_components.experiment import parse_experiment
        from hp_components.suggest import suggest
        data = yaml.safe_load(open(sys.argv[1]))
        data["spec"]["algorithm"] = {"algorithmName": "corner"}
        print(suggest(parse_experiment(data), [], 2)[0].assignments)
    """)
    env = {**os.environ, "PYTHONPATH": f"{pkg}:{ROOT}"}
    res = subprocess.run([sys.executable, "-c", script, str(ROOT / "tests" / "data" / "basic.yaml")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "'lr': '0.001'" in res.stdout and "'opt': 'sgd'" in res.stdout


def test_custom_algorithm_example_is_valid(monkeypatch):
    monkeypatch.chdir(ROOT)
    load_experiment(ROOT / "examples" / "custom-algorithm-digits.yaml")
    assert find_algorithm("examples.custom_algorithm:HillClimb").name == "hillclimb"


def test_pipeline_steps_load_the_algorithm_from_their_image(tmp_path, basic_dict, monkeypatch):
    """On Argo (and KFP) the suggest/collect steps run `hp-tune step` in the step image (`--image`):
    an algorithm installed there is found by the same dotted path / entry point. Here the "image"
    is this environment with the plugin on PYTHONPATH, and the workflow is interpreted for real;
    without the plugin in the image the suggest step fails, naming it."""
    from hp_components.argo import workflow
    from tests.argo_engine import Interpreter
    from tests.test_argo import TRIAL, script_experiment

    monkeypatch.chdir(ROOT)  # the compiling machine has it too: compile validates the algorithm's settings
    spec = script_experiment("argoplugin", TRIAL, maxTrialCount=6, parallelTrialCount=3, maxFailedTrialCount=6,
                             algorithm={"algorithmName": "examples.custom_algorithm:HillClimb",
                                        "algorithmSettings": [{"name": "n_startup_trials", "value": "3"}]})
    doc = workflow(parse_experiment(spec))
    monkeypatch.setenv("PYTHONPATH", "")
    with pytest.raises(RuntimeError, match="examples.custom_algorithm"):
        Interpreter(doc, tmp_path / "without").run()
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    engine = Interpreter(doc, tmp_path / "with")
    engine.run()
    history = json.loads(sorted((tmp_path / "with").glob("pod-*/tmp/hp/history.json"))[-1].read_text())
    assert len(history) == 6 and engine.globals["done"] == "true"
