"""The spec: Katib's defaults, and every problem reported at once with its field path."""

from __future__ import annotations

import pytest

from hp_components.experiment import SpecError, load_experiment, parse_experiment
from tests.conftest import DATA, make_experiment


def problems_of(base, **changes):
    with pytest.raises(SpecError) as info:
        make_experiment(base, **changes)
    return info.value.problems


def test_katib_defaults_are_applied(basic_dict):
    del basic_dict["spec"]["parallelTrialCount"]
    exp = parse_experiment(basic_dict)
    spec = exp.spec
    assert spec.parallel_trial_count == 3
    assert spec.resume_policy == "Never"
    assert spec.objective.strategies() == {"acc": "max"}
    assert spec.metrics_collector_spec.collector.kind == "StdOut"
    assert spec.parameters[1].feasible_space.distribution == "uniform"
    assert spec.trial_template.success_condition == 'status.conditions.#(type=="Complete")#|#(status=="True")#'
    assert spec.trial_template.failure_condition == 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    assert exp.to_dict()["spec"]["parallelTrialCount"] == 3


def test_additional_metric_strategies_follow_objective_type(basic_dict):
    exp = make_experiment(basic_dict, **{"spec.objective.additionalMetricNames": ["loss"],
                                         "spec.objective.type": "minimize"})
    assert exp.spec.objective.strategies() == {"acc": "min", "loss": "min"}


def test_pytorchjob_gets_kubeflow_conditions_and_primary_pod_labels(basic_dict):
    ts = basic_dict["spec"]["trialTemplate"]["trialSpec"]
    container = ts["spec"]["template"]["spec"]["containers"][0]
    basic_dict["spec"]["trialTemplate"]["trialSpec"] = {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
        "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": {"spec": {"containers": [container]}}}}},
    }
    exp = parse_experiment(basic_dict)
    tt = exp.spec.trial_template
    assert tt.success_condition == 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
    assert tt.primary_pod_labels == {"training.kubeflow.org/job-role": "master"}


def test_file_collector_defaults(basic_dict):
    exp = make_experiment(basic_dict, **{"spec.metricsCollectorSpec": {"collector": {"kind": "File"}}})
    fsp = exp.spec.metrics_collector_spec.source.file_system_path
    assert (fsp.path, fsp.kind, fsp.format) == ("/var/log/katib/metrics.log", "File", "TEXT")


def test_numbers_in_feasible_space_may_be_yaml_numbers(basic_dict):
    exp = make_experiment(basic_dict, **{"spec.parameters.1.feasibleSpace": {"min": 1, "max": 5}})
    assert exp.spec.parameters[1].feasible_space.min == "1"


def test_every_problem_is_listed_with_its_path(basic_dict):
    found = dict(problems_of(
        basic_dict,
        **{
            "metadata.name": "Bad_Name",
            "spec.maxTrialCount": 0,
            "spec.parameters.0.feasibleSpace": {"min": "0.1", "max": "0.01"},
            "spec.parameters.1.feasibleSpace": {"min": "abc", "max": "5"},
            "spec.algorithm.algorithmName": "annealing",
        },
    ))
    assert "metadata.name" in found
    assert found["spec.maxTrialCount"].startswith("must be at least 1")
    assert "must be less than or equal to max" in found["spec.parameters[0].feasibleSpace.min"]
    assert "not a finite number" in found["spec.parameters[1].feasibleSpace.min"]
    assert "'annealing' is not supported" in found["spec.algorithm.algorithmName"]


CASES = [
    ({"metadata.name": "a" * 41}, "metadata.name", "at most 40"),
    ({"metadata.name": "-abc"}, "metadata.name", "start with a letter"),
    ({"spec.parallelTrialCount": 20}, "spec.parallelTrialCount", "less than or equal to spec.maxTrialCount"),
    ({"spec.maxFailedTrialCount": 13}, "spec.maxFailedTrialCount", "less than or equal"),
    ({"spec.maxFailedTrialCount": -1}, "spec.maxFailedTrialCount", "at least 0"),
    ({"spec.maxTrialCount": "12"}, "spec.maxTrialCount", "whole number"),
    ({"spec.maxTrialCount": 10**9}, "spec.maxTrialCount", "split the experiment"),
    ({"spec.objective.type": "maximise"}, "spec.objective.type", "'minimize' or 'maximize'"),
    ({"spec.objective.additionalMetricNames": ["acc"]}, "spec.objective.additionalMetricNames", "should not contain"),
    ({"spec.objective.goal": "high"}, "spec.objective.goal", "number"),
    ({"spec.objective.metricStrategies": [{"name": "other", "value": "min"}]}, "spec.objective.metricStrategies[0].name", "not the objective"),
    ({"spec.objective.metricStrategies": [{"name": "acc", "value": "avg"}]}, "spec.objective.metricStrategies[0].value", "'min', 'max' or 'latest'"),
    ({"spec.algorithm.algorithmSettings": [{"name": "n_startup_trials", "value": "-1"}]}, "spec.algorithm.algorithmSettings[0].value", ">= 0"),
    ({"spec.algorithm.algorithmSettings": [{"name": "bogus", "value": "1"}]}, "spec.algorithm.algorithmSettings[0].name", "not a setting of tpe"),
    ({"spec.algorithm.algorithmName": "grid"}, "spec.parameters[0].feasibleSpace.step", "needs a step"),
    ({"spec.parameters.0.feasibleSpace.min": "0"}, "spec.parameters[0].feasibleSpace.min", "> 0 for distribution logUniform"),
    ({"spec.parameters.0.feasibleSpace.distribution": "gaussian"}, "spec.parameters[0].feasibleSpace.distribution", "'uniform'"),
    ({"spec.parameters.1.feasibleSpace.min": "1.5"}, "spec.parameters[1].feasibleSpace.min", "not a whole number"),
    ({"spec.parameters.1.feasibleSpace.step": "0"}, "spec.parameters[1].feasibleSpace.step", "positive number"),
    ({"spec.parameters.1.name": "lr"}, "spec.parameters[1].name", "used by another parameter"),
    ({"spec.parameters.2.feasibleSpace": {"list": []}}, "spec.parameters[2].feasibleSpace.list", "must list the values"),
    ({"spec.parameters.2.feasibleSpace": {"list": ["a", "a"]}}, "spec.parameters[2].feasibleSpace.list", "duplicate"),
    ({"spec.parameters.2.feasibleSpace": {"list": ["a"], "min": "1"}}, "spec.parameters[2].feasibleSpace", "not supported"),
    ({"spec.parameters.2.parameterType": "discrete"}, "spec.parameters[2].feasibleSpace.list[0]", "not a number"),
    ({"spec.parameters.2.parameterType": "string"}, "spec.parameters[2].parameterType", "'double', 'int', 'discrete' or 'categorical'"),
    ({"spec.parameters": []}, "spec.parameters", "at least one parameter"),
    ({"spec.trialTemplate.trialParameters.0.reference": "nope"}, "spec.trialTemplate.trialParameters[0].reference", "not a parameter"),
    ({"spec.trialTemplate.trialParameters.1.name": "lr"}, "spec.trialTemplate.trialParameters[1].name", "declared twice"),
    ({"spec.trialTemplate.trialParameters.4": {"name": "unused", "reference": "x"}}, "spec.trialTemplate.trialParameters[4].name", "not used"),
    ({"spec.trialTemplate.primaryContainerName": "trainer"}, "spec.trialTemplate.primaryContainerName", "no container named"),
    ({"spec.trialTemplate.trialSpec.metadata": {"name": "fixed"}}, "spec.trialTemplate.trialSpec.metadata", "must be omitted"),
    ({"spec.trialTemplate.trialParameters": None}, "spec.trialTemplate.trialParameters", "must be specified"),
    ({"spec.maxTrialCounts": 5}, "spec.maxTrialCounts", "not a Katib v1beta1 field"),
    ({"spec.metricsCollectorSpec": {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "metrics.log", "kind": "File"}}}},
     "spec.metricsCollectorSpec.source.fileSystemPath.path", "absolute path"),
    ({"spec.metricsCollectorSpec": {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/m.log", "kind": "File", "format": "JSON"}, "filter": {"metricsFormat": ["(a)(b)"]}}}},
     "spec.metricsCollectorSpec.source.filter", "must be omitted"),
    ({"spec.metricsCollectorSpec": {"source": {"filter": {"metricsFormat": ["([a-z]+"]}}}}, "spec.metricsCollectorSpec.source.filter.metricsFormat[0]", "not a valid regular expression"),
    ({"spec.metricsCollectorSpec": {"source": {"filter": {"metricsFormat": ["acc=(.*)"]}}}}, "spec.metricsCollectorSpec.source.filter.metricsFormat[0]", "two groups"),
    ({"spec.metricsCollectorSpec": {"collector": {"kind": "TensorFlowEvent"}}}, "spec.metricsCollectorSpec.collector.kind", "not supported here"),
    ({"spec.nasConfig": {"graphConfig": {}}}, "spec.nasConfig", "not supported"),
    ({"spec.resumePolicy": "Sometimes"}, "spec.resumePolicy", "'Never'"),
    ({"apiVersion": "kubeflow.org/v1alpha3"}, "apiVersion", "'kubeflow.org/v1beta1'"),
]


@pytest.mark.parametrize("changes,path,text", CASES, ids=[c[1] + ":" + c[2] for c in CASES])
def test_bad_spec_names_the_field(basic_dict, changes, path, text):
    found = problems_of(basic_dict, **changes)
    messages = [m for p, m in found if p == path]
    assert messages, f"no problem at {path}; got {found}"
    assert any(text in m for m in messages), messages


def test_cmaes_needs_two_numeric_parameters(basic_dict):
    basic_dict["spec"]["parameters"] = basic_dict["spec"]["parameters"][:1] + basic_dict["spec"]["parameters"][2:3]
    basic_dict["spec"]["trialTemplate"]["trialParameters"] = [{"name": "lr", "reference": "lr"}, {"name": "opt", "reference": "opt"}]
    basic_dict["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "echo", "${trialParameters.lr}", "${trialParameters.opt}"]
    parse_experiment(basic_dict)
    basic_dict["spec"]["algorithm"]["algorithmName"] = "cmaes"
    with pytest.raises(SpecError, match="cmaes needs at least two"):
        parse_experiment(basic_dict)


def test_grid_too_large_is_rejected(basic_dict):
    found = problems_of(basic_dict, **{
        "spec.algorithm.algorithmName": "grid",
        "spec.parameters.0.feasibleSpace": {"min": "0.000001", "max": "1", "step": "0.000001"},
        "spec.parameters.3.feasibleSpace": {"min": "-1", "max": "1", "step": "0.5"},
    })
    assert any(p == "spec.parameters" and "grid has" in m for p, m in found)


@pytest.mark.parametrize("content,text", [
    (b"- just\n- a list\n", "must be a mapping"),
    (b"a: 1\n---\nb: 2\n", "2 YAML documents"),
    (b"\xff\xfe\x00bad", "not UTF-8"),
    (b"spec: [unclosed\n", "not valid YAML"),
    (b"", "is empty"),
    (b"[" * 5000, "nested too deeply"),
])
def test_unloadable_files(tmp_path, content, text):
    f = tmp_path / "exp.yaml"
    f.write_bytes(content)
    with pytest.raises(SpecError) as info:
        load_experiment(f)
    assert text in str(info.value)


def test_missing_file():
    with pytest.raises(SpecError, match="cannot read"):
        load_experiment(DATA / "does-not-exist.yaml")


def test_yaml_is_loaded_safely(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("metadata: !!python/object/apply:os.system ['touch /tmp/hp-pwned']\n")
    with pytest.raises(SpecError, match="tag !!python/object/apply:os.system .*not a JSON type"):
        load_experiment(f)
