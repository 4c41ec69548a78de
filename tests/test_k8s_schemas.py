"""Rendered trial manifests validate against the structural schemas of their kinds.

Schemas: ``tests/data/k8s-schemas/`` (batch/v1 Job; training-operator v1.9.0 PyTorchJob, TFJob,
MPIJob, XGBoostJob). Katib's own training-operator examples are copied in
``tests/data/katib-examples/`` (see the README in ``tests/data/k8s-schemas/``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from hp_components.experiment import Experiment, SpecError, load_experiment, parse_experiment
from hp_components.template import render_trial_spec
from hp_components.trials import Trial, trial_name
from tests.conftest import DATA, ROOT
from tests.k8s_schemas import KINDS, SCHEMA_DIR, UnknownKindError, validate_manifest

OURS = sorted([*(ROOT / "examples").glob("*.yaml"), *DATA.glob("*.yaml")])
KATIB = sorted((DATA / "katib-examples").glob("*.yaml"))


def _trial_spec(path: Path) -> dict[str, Any] | None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec = (((data or {}).get("spec") or {}).get("trialTemplate") or {}).get("trialSpec")
    return spec if isinstance(spec, dict) and spec.get("kind") in KINDS else None


def first_trial(exp: Experiment) -> Trial:
    """Trial 0 with every parameter at its first value (the list's first, or ``min``)."""
    return Trial(name=trial_name(exp.name, 0), assignments={
        p.name: (p.feasible_space.values or [p.feasible_space.min or ""])[0] for p in exp.spec.parameters})


def rendered(exp: Experiment) -> dict[str, Any]:
    spec = render_trial_spec(exp, first_trial(exp))
    assert "${trialParameters." not in json.dumps(spec)
    return spec


def load_katib(path: Path) -> Experiment:
    """A Katib example; collector settings this package refuses are dropped (they don't shape the trial)."""
    try:
        return load_experiment(path)
    except SpecError as err:
        if not all(p.startswith("spec.metricsCollectorSpec") for p, _ in err.problems):
            raise
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        del data["spec"]["metricsCollectorSpec"]
        return parse_experiment(data)


def pytorchjob() -> dict[str, Any]:
    return copy.deepcopy(_trial_spec(DATA / "katib-examples" / "pytorchjob-mnist.yaml") or {})


def job() -> dict[str, Any]:
    return copy.deepcopy(_trial_spec(DATA / "basic.yaml") or {})


# --------------------------------------------------------------------------- the schemas


@pytest.mark.parametrize("name", sorted(v[1] for v in KINDS.values()))
def test_schema_files_are_draft7(name: str) -> None:
    Draft7Validator.check_schema(json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8")))


def test_there_is_something_to_validate() -> None:
    assert [p for p in OURS if _trial_spec(p)], "no Job trialSpecs found in examples/ or tests/data/"
    assert {_trial_spec(p)["kind"] for p in KATIB} == {"PyTorchJob", "TFJob", "MPIJob", "XGBoostJob"}


# --------------------------------------------------------------------------- valid manifests


@pytest.mark.parametrize("path", [p for p in OURS if _trial_spec(p)], ids=lambda p: p.name)
def test_our_examples_render_valid_manifests(path: Path) -> None:
    assert validate_manifest(_trial_spec(path)) == []  # the template as written
    assert validate_manifest(rendered(load_experiment(path))) == []


@pytest.mark.parametrize("path", KATIB, ids=lambda p: p.name)
def test_katib_examples_render_valid_manifests(path: Path) -> None:
    assert validate_manifest(_trial_spec(path)) == []
    assert validate_manifest(rendered(load_katib(path))) == []


def test_katib_tfjob_example_needs_its_collector_dropped() -> None:
    """Katib's TFJob example uses the TensorFlowEvent collector, which load_experiment refuses."""
    with pytest.raises(SpecError, match="TensorFlowEvent"):
        load_experiment(DATA / "katib-examples" / "tfjob-mnist-with-summaries.yaml")


# --------------------------------------------------------------------------- invalid manifests


def test_misspelled_container_field_is_flagged() -> None:
    m = pytorchjob()
    c = m["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    c["comand"] = c.pop("command")
    assert validate_manifest(m) == [
        "spec.pytorchReplicaSpecs.Master.template.spec.containers[0]: "
        "Additional properties are not allowed ('comand' was unexpected)"]
    j = job()
    j["spec"]["template"]["spec"]["containers"][0]["contianers"] = []
    assert any("'contianers' was unexpected" in e for e in validate_manifest(j))


def test_replicas_must_be_an_integer() -> None:
    m = pytorchjob()
    m["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] = "two"
    assert validate_manifest(m) == ["spec.pytorchReplicaSpecs.Worker.replicas: 'two' is not of type 'integer'"]


def test_job_pods_must_not_restart_always() -> None:
    j = job()
    j["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert validate_manifest(j) == ["spec.template.spec.restartPolicy: 'Always' is not one of ['Never', 'OnFailure']"]
    del j["spec"]["template"]["spec"]["restartPolicy"]  # the PodSpec default, Always, is refused too
    assert validate_manifest(j) == ["spec.template.spec: 'restartPolicy' is a required property"]


def test_job_needs_a_template() -> None:
    j = job()
    del j["spec"]["template"]
    assert validate_manifest(j) == ["spec: 'template' is a required property"]


def test_kind_under_the_wrong_api_version() -> None:
    j = job()
    j["apiVersion"] = "kubeflow.org/v1"
    assert validate_manifest(j) == ["apiVersion: 'batch/v1' was expected"]
    m = pytorchjob()
    m["apiVersion"] = "batch/v1"
    assert validate_manifest(m) == ["apiVersion: 'kubeflow.org/v1' was expected"]


def test_quantities_and_int_or_string() -> None:
    m = pytorchjob()
    c = m["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    c["resources"] = {"limits": {"cpu": 2, "memory": "2Gi"}}
    c["ports"] = [{"containerPort": 8080}]
    c["readinessProbe"] = {"httpGet": {"port": "http"}}
    assert validate_manifest(m) == []
    c["resources"]["limits"]["memory"] = "2GB"
    c["readinessProbe"]["httpGet"]["port"] = 1.5
    at = "spec.pytorchReplicaSpecs.Master.template.spec.containers[0]"
    assert validate_manifest(m) == [
        f"{at}.readinessProbe.httpGet.port: 1.5 is not valid under any of the given schemas "
        "(1.5 is not of type 'integer'; 1.5 is not of type 'string')",
        f"{at}.resources.limits.memory: '2GB' is not a Kubernetes quantity (like 500m, 2Gi, 1e3)"]


def test_unknown_kind_is_a_clear_key_error() -> None:
    with pytest.raises(KeyError, match="no schema for apiVersion 'apps/v1' kind 'Deployment'"):
        validate_manifest({"apiVersion": "apps/v1", "kind": "Deployment"})
    with pytest.raises(UnknownKindError):
        validate_manifest({"apiVersion": "batch/v1"})
