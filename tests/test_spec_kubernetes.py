"""What Kubernetes (or Katib) would refuse is refused at validation (issue 15, point 8).

Sources followed (the API server's validation, which Katib's webhook leaves these fields to):

* ``activeDeadlineSeconds``: kubernetes pkg/apis/core/validation/validation.go ``ValidatePodSpec``
  (a pod's: 1..2147483647) and pkg/apis/batch/validation/validation.go ``validateJobSpec`` (a Job's:
  ``ValidateNonnegativeField``, >= 0). A Job's 0 ends every trial at once, and the local runner read
  it as "no limit", so it is refused here too. The field is an int64: a string, also one a
  ``${trialParameters...}`` placeholder becomes (Katib substitutes into the serialized JSON, so the
  value stays quoted), is refused by the API server's decoding.
* resources: pkg/apis/core/validation/validation.go ``ValidateResourceRequirements`` (each quantity
  >= 0; extended resources such as ``nvidia.com/gpu`` whole numbers) and apimachinery
  pkg/api/resource/quantity.go (the quantity grammar).
* ``metadata.namespace``: apimachinery pkg/api/validation/generic.go ``ValidateNamespaceName =
  NameIsDNSLabel`` (pkg/util/validation/validation.go ``IsDNS1123Label``).
* parameter names: Katib's webhook, pkg/webhook/v1beta1/experiment/validator/validator.go, has no
  rule on ``spec.parameters[].name`` (``DefaultValidator.validateParameters`` checks types,
  distributions and feasible spaces only); ``DefaultValidator.validateTrialTemplate`` refuses a
  ``trialParameters[].name`` that is empty or holds ``{`` or ``}``. So Katib accepts ``"\\u200b"``;
  this tool is stricter on purpose, refusing invisible and control characters (Unicode categories
  Cc, Cf, Cs, Co, Cn, Zl, Zp) only, so every name Katib's examples use still loads.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest
import yaml

from hp_components.experiment import SpecError, parse_experiment
from tests.conftest import DATA

BASE = yaml.safe_load((DATA / "basic.yaml").read_text())
_TS = "spec.trialTemplate.trialSpec"


def _problems(mutate: Callable[[dict[str, Any]], None]) -> list[tuple[str, str]]:
    data = copy.deepcopy(BASE)
    mutate(data)
    try:
        parse_experiment(data)
    except SpecError as err:
        return err.problems
    return []


def _job(d: dict[str, Any]) -> dict[str, Any]:
    return d["spec"]["trialTemplate"]["trialSpec"]["spec"]


def _pod(d: dict[str, Any]) -> dict[str, Any]:
    return _job(d)["template"]["spec"]


def _resources(**sections: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda d: _pod(d)["containers"][0].update(resources=sections)


@pytest.mark.parametrize("where, value, words", [
    ("job", "ten", "must be a whole number of seconds, not 'ten'"),
    ("job", "60", "must be a whole number of seconds, not '60'"),
    ("job", 60.5, "must be a whole number of seconds"),
    ("job", True, "must be a whole number of seconds"),
    ("job", "${trialParameters.n}", "substituted as a string"),
    ("job", -5, "must be at least 1 second, not -5"),
    ("job", 0, "must be at least 1 second, not 0"),
    ("pod", 0, "must be at least 1 second, not 0"),
    ("pod", 2**31, "must be at most 2147483647 seconds in a pod spec"),
])
def test_active_deadline_seconds_kubernetes_refuses(where, value, words):
    target, path = (_job, f"{_TS}.spec") if where == "job" else (_pod, f"{_TS}.spec.template.spec")
    problems = _problems(lambda d: target(d).update(activeDeadlineSeconds=value))
    assert [p for p, _ in problems] == [f"{path}.activeDeadlineSeconds"]
    assert words in problems[0][1]


@pytest.mark.parametrize("value", [1, 600, 2**31 - 1])
def test_active_deadline_seconds_kubernetes_accepts(value):
    assert _problems(lambda d: _pod(d).update(activeDeadlineSeconds=value)) == []
    assert _problems(lambda d: _job(d).update(activeDeadlineSeconds=value)) == []


def test_a_deadline_deep_in_a_training_operator_job_is_checked():
    def pytorch(d: dict[str, Any]) -> None:
        d["spec"]["trialTemplate"]["trialSpec"] = {
            "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
            "spec": {"runPolicy": {"activeDeadlineSeconds": -1},
                     "pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": {"spec": {"containers": [
                         {"name": "training", "image": "python:3.11", "command": ["python3", "-c", "pass",
                          "${trialParameters.lr}", "${trialParameters.n}", "${trialParameters.opt}",
                          "${trialParameters.x}", "${trialParameters.tn}"],
                          "resources": {"limits": {"nvidia.com/gpu": "-2"}}}]}}}}}}

    assert sorted(_problems(pytorch)) == [
        (f"{_TS}.spec.pytorchReplicaSpecs.Master.template.spec.containers[0].resources.limits[nvidia.com/gpu]",
         "must be greater than or equal to 0, not '-2' (Kubernetes' rule for resource quantities)"),
        (f"{_TS}.spec.runPolicy.activeDeadlineSeconds",
         "must be at least 1 second, not -1 (a negative limit is refused by Kubernetes, 0 ends every trial at once); "
         "omit it for no limit"),
    ]


@pytest.mark.parametrize("sections, field, words", [
    ({"limits": {"nvidia.com/gpu": -1}}, "limits[nvidia.com/gpu]", "greater than or equal to 0, not -1"),
    ({"limits": {"nvidia.com/gpu": "0.5"}}, "limits[nvidia.com/gpu]", "must be a whole number"),
    ({"limits": {"example.com/fpga": "1500m"}}, "limits[example.com/fpga]", "must be a whole number"),
    ({"requests": {"memory": "-1Gi"}}, "requests[memory]", "greater than or equal to 0"),
    ({"requests": {"cpu": "two"}}, "requests[cpu]", "'two' is not a Kubernetes quantity"),
    ({"requests": {"cpu": True}}, "requests[cpu]", "True is not a Kubernetes quantity"),
    ({"requests": {"memory": "4 GB"}}, "requests[memory]", "not a Kubernetes quantity"),
    ({"requests": {"memory": "1Ki1"}}, "requests[memory]", "not a Kubernetes quantity"),
    ({"limits": {"example.com/fpga": "10u"}}, "limits[example.com/fpga]", "must be a whole number"),
])
def test_resource_quantities_kubernetes_refuses(sections, field, words):
    problems = _problems(_resources(**sections))
    assert [p for p, _ in problems] == [f"{_TS}.spec.template.spec.containers[0].resources.{field}"]
    assert words in problems[0][1]


def test_resource_quantities_kubernetes_accepts():
    ok = _resources(limits={"nvidia.com/gpu": 2, "cpu": "500m", "memory": "4Gi", "ephemeral-storage": "1e9",
                            "hugepages-2Mi": "128Mi", "example.com/fpga": "1k"},
                    requests={"cpu": 0.25, "memory": "512M", "nvidia.com/gpu": "${trialParameters.n}",
                              "example.com/timer": "3000000u", "example.com/clock": "+.5e3"})
    assert _problems(ok) == []


@pytest.mark.parametrize("namespace", ["../../Bad NS", "Kubeflow", "-ns", "ns-", "a" * 64, "my_ns", "ns.example"])
def test_a_namespace_must_be_a_dns_label(namespace):
    problems = _problems(lambda d: d["metadata"].update(namespace=namespace))
    assert [p for p, _ in problems] == ["metadata.namespace"] and "DNS-1123 label" in problems[0][1]


@pytest.mark.parametrize("namespace", ["kubeflow", "kubeflow-user-example-com", "a" * 63, "0ns"])
def test_namespaces_kubernetes_accepts(namespace):
    assert _problems(lambda d: d["metadata"].update(namespace=namespace)) == []


@pytest.mark.parametrize("name, shown", [
    ("\u200b", "U+200B ZERO WIDTH SPACE"),
    ("lr\u200d", "U+200D ZERO WIDTH JOINER"),
    ("l\u202er", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("lr\x00", "U+0000 a control character"),
    ("lr\n", "U+000A a control character"),
])
def test_a_parameter_name_with_invisible_characters_is_refused(name, shown):
    def rename(d: dict[str, Any]) -> None:
        d["spec"]["parameters"][0]["name"] = name
        d["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = name

    problems = _problems(rename)
    assert [p for p, _ in problems] == ["spec.parameters[0].name"] and shown in problems[0][1]


@pytest.mark.parametrize("name", ["learning_rate", "learning-rate", "lr.x", "LR", "学习率", "lr x"])
def test_parameter_names_katib_accepts_still_load(name):
    def rename(d: dict[str, Any]) -> None:
        d["spec"]["parameters"][0]["name"] = name
        d["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = name

    assert _problems(rename) == []


def test_a_trial_parameter_name_with_invisible_characters_is_refused():
    def rename(d: dict[str, Any]) -> None:
        d["spec"]["trialTemplate"]["trialParameters"][0]["name"] = "lr\u200b"
        _pod(d)["containers"][0]["command"][3] = "--lr=${trialParameters.lr\u200b}"

    problems = _problems(rename)
    assert [p for p, _ in problems] == ["spec.trialTemplate.trialParameters[0].name"]
    assert "U+200B ZERO WIDTH SPACE" in problems[0][1]


def _workflow(deadline: Any) -> Callable[[dict[str, Any]], None]:
    """An Argo Workflow trial: its activeDeadlineSeconds is an IntOrString (Argo resolves expressions)."""
    def mutate(d: dict[str, Any]) -> None:
        tt = d["spec"]["trialTemplate"]
        tt["successCondition"] = 'status.conditions.#(type=="Completed")#|#(status=="True")#'
        tt["failureCondition"] = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
        tt["trialSpec"] = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {
            "entrypoint": "main", "templates": [{"name": "main", "activeDeadlineSeconds": deadline, "container": {
                "name": "training", "image": "python:3.11", "command": ["python3", "-c", "pass",
                "${trialParameters.lr}", "${trialParameters.n}", "${trialParameters.opt}", "${trialParameters.x}",
                "${trialParameters.tn}"]}}]}}
    return mutate


@pytest.mark.parametrize("deadline", [600, "600", "{{workflow.parameters.limit}}"])
def test_an_argo_workflow_trial_may_give_its_deadline_as_a_string(deadline):
    assert _problems(_workflow(deadline)) == []


@pytest.mark.parametrize("deadline, words", [("ten", "whole number of seconds"), (-5, "at least 1 second")])
def test_an_argo_workflow_trial_deadline_is_still_checked(deadline, words):
    problems = _problems(_workflow(deadline))
    assert [p for p, _ in problems] == [f"{_TS}.spec.templates[0].activeDeadlineSeconds"] and words in problems[0][1]
