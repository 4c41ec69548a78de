"""hp_components.tune(): a Python function tuned locally, each trial in its own process."""

from __future__ import annotations

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
