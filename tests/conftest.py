"""Shared fixtures: experiments built from tests/data/basic.yaml with tweaks."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from hp_components.experiment import Experiment, parse_experiment

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
PY = sys.executable


@pytest.fixture
def basic_dict() -> dict[str, Any]:
    return yaml.safe_load((DATA / "basic.yaml").read_text())


def make_experiment(base: dict[str, Any], **changes: Any) -> Experiment:
    """``base`` with dotted-path changes applied, e.g. ``**{"spec.maxTrialCount": 5}``."""
    data = copy.deepcopy(base)
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return parse_experiment(data)


def script_experiment(name: str, script: str, *, params: list[dict[str, Any]] | None = None,
                      args: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    """An experiment whose trial runs ``python -c script`` with the given args (real subprocesses)."""
    params = params or [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-2", "max": "2"}}]
    args = args if args is not None else [f"--{p['name']}=${{trialParameters.{p['name']}}}" for p in params]
    body: dict[str, Any] = {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {"algorithmName": "random"},
        "parallelTrialCount": 2,
        "maxTrialCount": 4,
        "parameters": params,
        "trialTemplate": {
            "primaryContainerName": "main",
            "trialParameters": [{"name": p["name"], "reference": p["name"]} for p in params],
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                    {"name": "main", "image": "python:3.11", "command": [PY, "-c", script, *args]}]}}},
            },
        },
    }
    body.update(spec)
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name}, "spec": body}


@pytest.fixture
def make() -> Callable[..., Experiment]:
    return make_experiment
