"""hp_components.tune(): a Python function tuned locally, each trial in its own process."""

from __future__ import annotations

import math
import os

import pytest
import yaml

import hp_components as hp
from hp_components import search
from hp_components.experiment import SpecError, load_experiment


def objective(params):
    import math
    import os

    assert os.environ["HP_TRIAL_NAME"].startswith("objective-")  # its own process, as a trial
    return (math.log10(params["lr"]) + 2) ** 2 + (params["layers"] - 2) ** 2 + (params["act"] != "relu")


def keyword_objective(lr, layers, act):
    print(f"loss={lr * layers}")
    print(f"aux={len(act)}")


def test_tune_a_function(tmp_path):
    result = hp.tune(objective, parameters={"lr": search.double(1e-4, 1e-1, log=True), "layers": search.int(1, 4),
                                            "act": search.categorical(["relu", "tanh"])},
                     objective_metric_name="loss", objective_type="minimize", max_trial_count=10, parallel_trial_count=2,
                     algorithm_name="tpe", algorithm_settings={"random_state": 3},
                     storage=f"sqlite:///{tmp_path}/t.db", run_dir=str(tmp_path / "runs"))
    assert result.status.reason == "ExperimentMaxTrialsReached"
    assert len(result.trials) == 10 and {"name", "condition", "objective", "lr", "layers", "act", "loss"} <= set(result.trials[0])
    best = result.best_parameters
    assert isinstance(best["lr"], float) and isinstance(best["layers"], int) and best["act"] in ("relu", "tanh")
    assert result.best_objective == min(float(r["objective"]) for r in result.trials)
    assert "objective" in str(result)


def test_keyword_function_printing_its_metrics(tmp_path):
    result = hp.tune(keyword_objective, parameters={"lr": search.discrete([0.1, 0.2]), "layers": search.int(1, 2),
                                                    "act": search.categorical(["a b", "it's"])},
                     objective_metric_name="loss", objective_type="minimize", additional_metric_names=["aux"],
                     max_trial_count=9, parallel_trial_count=4, algorithm_name="grid",
                     storage=f"sqlite:///{tmp_path}/t.db", run_dir=str(tmp_path / "runs"))
    assert result.status.reason == "ExperimentSuggestionEndReached"
    assert result.best_objective == pytest.approx(0.1)
    assert {r["aux"] for r in result.trials} == {"3.0", "4.0"}


def test_emits_the_same_experiment_as_katib_yaml(tmp_path):
    exp = hp.build_experiment(objective, parameters={"lr": search.double(0.001, 0.1, log=True), "layers": search.int(1, 4),
                                                     "act": search.categorical(["relu"])},
                              objective_metric_name="loss", objective_type="minimize", max_trial_count=6)
    path = tmp_path / "exp.yaml"
    path.write_text(exp.to_yaml())
    again = load_experiment(path)
    assert again.to_dict() == exp.to_dict()
    command = again.spec.trial_template.trial_spec["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[0] == "python3" and "def objective(params):" in command[2]
    assert command[3:] == ["lr=${trialParameters.lr}", "layers=${trialParameters.layers}", "act=${trialParameters.act}"]


def test_bad_arguments_are_spec_errors():
    with pytest.raises(SpecError, match="spec.maxTrialCount"):
        hp.build_experiment(objective, parameters={"lr": search.double(0.1, 0.01)}, max_trial_count=0)
    with pytest.raises(ValueError, match="lambda"):
        hp.build_experiment(lambda p: 1, parameters={"lr": search.double(0.01, 0.1)})


# ---------------------------------------------------------------- module-level names, failures, portable YAML

import math as _m  # noqa: E402  (an alias, as user code has them)
import subprocess  # noqa: E402
import sys  # noqa: E402
from os.path import join as _join  # noqa: E402

from hp_components._tune import NoTrialSucceeded  # noqa: E402

OFFSET = 2.5
WEIGHTS = {"lr": [1.0, 3.0]}


def _penalty(layers):
    return (layers - 2) ** 2 * WEIGHTS["lr"][0]


def uses_module_names(params):
    return (_m.log10(params["lr"]) + OFFSET) ** 2 + _penalty(params["layers"]) + len(_join("a", "b")) - 3


class _Model:
    pass


MODEL = _Model()


def uses_an_object(params):
    return MODEL.score(params["lr"]) + OFFSET


def always_fails(params):
    raise RuntimeError(f"cannot train with lr={params['lr']}")


def test_module_level_names_travel_with_the_objective(tmp_path):
    result = hp.tune(uses_module_names, parameters={"lr": search.double(1e-4, 1e-1, log=True), "layers": search.int(1, 3)},
                     objective_metric_name="loss", objective_type="minimize", max_trial_count=4, parallel_trial_count=2,
                     storage=f"sqlite:///{tmp_path}/t.db", run_dir=str(tmp_path / "runs"))
    assert [r["condition"] for r in result.trials] == ["Succeeded"] * 4
    best = result.best_parameters
    expected = (math.log10(best["lr"]) + OFFSET) ** 2 + (best["layers"] - 2) ** 2 + 0
    assert result.best_objective == pytest.approx(expected, rel=1e-6)
    # the exported command runs in a plain interpreter that never saw this test module
    command = result.experiment.spec.trial_template.trial_spec["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[0] == "python3"
    run = subprocess.run([sys.executable, "-I", "-c", command[2], "lr=0.01", "layers=3"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert float(run.stdout.strip().split("=")[1]) == pytest.approx((-2 + OFFSET) ** 2 + 1)


def test_a_name_that_cannot_travel_is_refused_before_any_trial(tmp_path):
    with pytest.raises(ValueError, match=r"'MODEL' is an object of type (tests\.)?test_tune\._Model"):
        hp.tune(uses_an_object, parameters={"lr": search.double(0.01, 0.1)}, storage=f"sqlite:///{tmp_path}/t.db",
                run_dir=str(tmp_path / "runs"))
    assert not (tmp_path / "t.db").exists() and not (tmp_path / "runs").exists(), "refused before anything ran"


def test_no_trial_succeeded_raises_with_the_trials_error(tmp_path, capfd):
    with pytest.raises(NoTrialSucceeded) as info:
        hp.tune(always_fails, parameters={"lr": search.discrete([0.5, 0.25])}, max_trial_count=2, algorithm_name="grid",
                storage=f"sqlite:///{tmp_path}/t.db", run_dir=str(tmp_path / "runs"))
    message = str(info.value)
    log = tmp_path / "runs" / "always-fails" / "always-fails-0000" / "output.log"
    assert "2 of 2 trials failed" in message and "RuntimeError: cannot train with lr=0.5" in message  # the first
    assert f"log: {log}" in message and log.is_file()
    err = capfd.readouterr().err  # each failure as it happened
    assert "always-fails-0001 Failed" in err and "RuntimeError: cannot train with lr=0.25" in err


def test_exported_yaml_types_numbers_as_katibs_crd_does(tmp_path):
    # Katib's FeasibleSpace (pkg/apis/controller/experiments/v1beta1/experiment_types.go, type FeasibleSpace):
    # Max, Min, Step are `string` and List is `[]string`; a YAML number there is refused by the CRD's schema
    exp = hp.build_experiment(objective, parameters={
        "lr": {"parameterType": "double", "feasibleSpace": {"min": 0.001, "max": 1, "step": 0.25}},
        "layers": {"parameterType": "discrete", "feasibleSpace": {"list": [1, 2.5]}},
        "act": search.categorical(["relu", 1])}, objective_metric_name="loss", max_trial_count=3)
    data = yaml.safe_load(exp.to_yaml())
    spaces = {p["name"]: p["feasibleSpace"] for p in data["spec"]["parameters"]}
    assert spaces["lr"]["min"] == "0.001" and spaces["lr"]["max"] == "1" and spaces["lr"]["step"] == "0.25"
    assert spaces["layers"]["list"] == ["1", "2.5"] and spaces["act"]["list"] == ["relu", "1"]
    for space in spaces.values():
        for key, value in space.items():
            assert isinstance(value, (str, list)) and all(isinstance(v, str) for v in (value if isinstance(value, list) else [value])), (key, value)
    container = data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][0] == "python3" and sys.executable not in exp.to_yaml()


def test_closures_carry_their_literal_values_and_refuse_others(tmp_path):
    def make(scale):
        def scaled(params):
            return scale * params["lr"]
        return scaled

    result = hp.tune(make(4), parameters={"lr": search.discrete([0.5, 0.25])}, max_trial_count=2, algorithm_name="grid",
                     storage=f"sqlite:///{tmp_path}/t.db", run_dir=str(tmp_path / "runs"))
    assert sorted(float(r["objective"]) for r in result.trials) == [1.0, 2.0]
    with pytest.raises(ValueError, match=r"'scale' is an object of type builtins\.object"):
        hp.build_experiment(make(object()), parameters={"lr": search.double(0.1, 0.2)})


def test_an_undefined_name_is_refused_before_any_trial():
    def typo(params):
        return params["lr"] * learning_rate_scale  # noqa: F821

    with pytest.raises(ValueError, match="'learning_rate_scale' is not defined"):
        hp.build_experiment(typo, parameters={"lr": search.double(0.1, 0.2)})


_THIS_PYTHON = os.path.realpath(__import__("sys").executable)


def which_python(x):
    import os
    import sys

    return x + (0.0 if os.path.realpath(sys.executable) == _THIS_PYTHON else 100.0)


def test_python3_in_the_trials_is_this_interpreter_and_the_environment_is_untouched(tmp_path, monkeypatch):
    """The experiment says ``python3`` (portable); run_local(python=...) makes trials' python3 this
    interpreter through their own PATH, even when this process's PATH has no python3 at all."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = hp.tune(which_python, parameters={"x": search.double(0.0, 1.0)}, objective_metric_name="loss",
                     objective_type="minimize", max_trial_count=2, parallel_trial_count=2, algorithm_name="random",
                     storage=f"sqlite:///{tmp_path}/t.db", run_dir=str(tmp_path / "runs"))
    assert os.environ["PATH"] == str(tmp_path / "empty")  # never changed, even for the call's length
    assert [t["condition"] for t in result.trials] == ["Succeeded", "Succeeded"]
    assert all(float(t["objective"]) < 1.0 for t in result.trials), "a trial ran another interpreter"
    assert result.experiment.spec.trial_template.trial_spec["spec"]["template"]["spec"]["containers"][0]["command"][0] == "python3"
