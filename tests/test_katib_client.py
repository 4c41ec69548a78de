"""``hp_components.katib`` mirrors ``kubeflow.katib`` (issue 14, point 9).

Katib sources: sdk/python/v1beta1/kubeflow/katib/api/katib_client.py (tune's keywords and
defaults: algorithm_name "random", objective_type "maximize", parallelTrialCount 3 from the
webhook; the other calls and their errors), api/search.py (search.double/int/categorical),
api/report_metrics.py (the Push collector) and pkg/webhook/v1beta1/experiment/validator/
validator.go (a finished experiment with resumePolicy Never is not restarted by an edit).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hp_components import katib
from tests.conftest import DATA, ROOT


@pytest.fixture
def client(tmp_path):
    return katib.KatibClient(storage=f"sqlite:///{tmp_path}/hp.db", run_dir=tmp_path / "runs")


def quadratic(parameters):
    print(f"loss={(parameters['x'] - 1.5) ** 2 + parameters['offset']}")
    print(f"accuracy={1 / (1 + (parameters['x'] - 1.5) ** 2)}")


def test_a_katib_sdk_script_runs_by_changing_its_import_lines(tmp_path):
    source = (DATA / "katib-sdk" / "tune_push.py").read_text()
    ported = source.replace("import kubeflow.katib as katib", "from hp_components import katib")
    assert ported.count("from hp_components import katib") == 2 and "import kubeflow" not in ported
    script = tmp_path / "tune_push.py"
    script.write_text(ported)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "best_trial_name='tune-experiment-" in res.stdout
    client = katib.KatibClient(storage=f"sqlite:///{tmp_path}/hp-runs/hp-tune.db")
    exp = client.get_experiment("tune-experiment")
    assert exp.spec.algorithm.algorithm_name == "random" and exp.spec.parallel_trial_count == 3  # Katib's defaults
    assert exp.spec.objective.type == "maximize" and exp.metadata.namespace == "kubeflow"
    assert exp.status.trials_succeeded == 12 and client.is_experiment_succeeded("tune-experiment")
    best = client.get_optimal_hyperparameters("tune-experiment")
    a, b = (float(p.value) for p in best.parameter_assignments)
    value = float(next(m.latest for m in best.observation.metrics if m.name == "result"))
    assert value == pytest.approx(4 * a - b**2) and value > 0, "only the pushed value counts, not the printed -1000"


def test_tune_with_stdout_fixed_inputs_and_the_reading_calls(client, tmp_path):
    client.tune(name="quad", objective=quadratic, parameters={"x": katib.search.double(-3, 3), "offset": 0.25},
                objective_metric_name="loss", additional_metric_names=["accuracy"], objective_type="minimize",
                algorithm_name="tpe", algorithm_settings={"random_state": 3}, max_trial_count=6,
                parallel_trial_count=2, env_per_trial={"MY_FLAG": "1"}, retain_trials=True,
                trial_active_deadline_seconds=60)
    exp = client.get_experiment("quad")
    assert exp.spec.trial_template.retain and exp.spec.parallel_trial_count == 2
    container = exp.spec.trial_template.trial_spec["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "MY_FLAG", "value": "1"}]
    assert exp.spec.trial_template.trial_spec["spec"]["activeDeadlineSeconds"] == 60
    assert [c.type for c in client.get_experiment_conditions("quad")] == ["Created", "Running", "Succeeded"]
    assert client.wait_for_experiment_condition("quad").status.trials == 6
    trials = client.list_trials("quad")
    assert len(trials) == 6 and all(t.status.conditions[-1].type == "Succeeded" for t in trials)
    details = client.get_success_trial_details("quad")
    assert {d["name"] for d in details} == {t.metadata.name for t in trials}
    assert all({m.name for m in d["metrics"]} == {"loss", "accuracy"} for d in details)
    offset = {p.name: p.value for p in details[0]["parameter_assignments"]}["offset"]
    assert float(offset) == 0.25, "a number in parameters is a fixed input"
    best = client.get_optimal_hyperparameters("quad")
    loss = min(float(next(m.latest for m in d["metrics"] if m.name == "loss")) for d in details)
    assert float(next(m.latest for m in best.observation.metrics if m.name == "loss")) == loss
    logs = client.get_trial_metrics(trials[0].metadata.name)
    assert {log.metric.name for log in logs} == {"loss", "accuracy"}
    with pytest.raises(RuntimeError, match="already exists"):
        client.tune(name="quad", objective=quadratic, parameters={"x": katib.search.double(-3, 3), "offset": 0.0},
                    objective_metric_name="loss")
    # Katib's webhook: a finished experiment with resumePolicy Never (tune's) is not restarted by an edit
    with pytest.raises(RuntimeError, match="Failed to edit Katib Experiment"):
        client.edit_experiment_budget("quad", max_trial_count=8)
    with pytest.raises(ValueError, match="You have to set max_trial_count"):
        client.edit_experiment_budget("quad")
    client.delete_experiment("quad")
    with pytest.raises(RuntimeError, match="Failed to get Katib Experiment"):
        client.get_experiment("quad")


def test_bad_arguments_are_refused_naming_them(client):
    space = {"x": katib.search.double(-3, 3), "offset": 0.0}
    with pytest.raises(ValueError, match="metrics_collector_config: kind 'File'"):
        client.tune(name="bad", objective=quadratic, parameters=space, objective_metric_name="loss",
                    metrics_collector_config={"kind": "File"})
    with pytest.raises(ValueError, match=r"parameters\['x'\]"):
        client.tune(name="bad", objective=quadratic, parameters={"x": [1, 2]}, objective_metric_name="loss")
    with pytest.raises(ValueError, match="objective_metric_name must be set"):
        client.tune(name="bad", objective=quadratic, parameters=space)
    with pytest.raises(ValueError, match="model_provider_parameters"):
        client.tune(name="bad", model_provider_parameters=object(), objective_metric_name="loss")
    with pytest.raises(ValueError, match="resources_per_trial"):
        client.tune(name="bad", objective=quadratic, parameters=space, objective_metric_name="loss",
                    resources_per_trial={"tpu": 1})
    # Katib's webhook: parallelTrialCount (default 3) must not exceed maxTrialCount
    with pytest.raises(ValueError, match="spec.parallelTrialCount"):
        client.tune(name="bad", objective=quadratic, parameters=space, objective_metric_name="loss", max_trial_count=2)
    # the Job's activeDeadlineSeconds (int64, at least 1) checked by the spec's one rule, named by the argument
    for value, why in (("60", "a whole number"), (True, "a whole number"), (2.5, "a whole number"), (0, "at least 1"),
                       (2**63, "at most 9223372036854775807")):
        with pytest.raises(ValueError, match=f"trial_active_deadline_seconds: must be {why}"):
            client.tune(name="bad", objective=quadratic, parameters=space, objective_metric_name="loss",
                        max_trial_count=3, trial_active_deadline_seconds=value)
    assert not (client.run_dir / "bad").exists()


def test_packages_to_install_are_checked_and_installed_or_refused(client, tmp_path):
    space = {"x": katib.search.double(-3, 3), "offset": 0.0}
    # already in this Python: nothing to install, the trials import it
    client.tune(name="pkgs", objective=quadratic, parameters=space, objective_metric_name="loss",
                objective_type="minimize", max_trial_count=3, packages_to_install=["numpy", "optuna>=4"])
    assert client.get_experiment("pkgs").status.trials_succeeded == 3
    with pytest.raises(ValueError, match=r"packages_to_install: pip could not install no-such-package-hp14") as err:
        client.tune(name="pkgs2", objective=quadratic, parameters=space, objective_metric_name="loss",
                    packages_to_install=["no-such-package-hp14"], pip_index_urls=[(tmp_path / "no-index").as_uri()])
    assert re.search(r"Install them into this Python yourself", str(err.value))
    assert "pkgs2" not in [e for e in os.listdir(tmp_path)]  # nothing ran
