"""Tuning inside a user's own workflow: examples/argo/tune-and-train.yaml prepares data, runs the
compiled experiment through ``templateRef`` and trains the final model with
``{{steps.tune.outputs.parameters.best}}``, interpreted for real (tests/argo_engine.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("hera")

from hp_components.argo import workflow_template  # noqa: E402
from hp_components.experiment import load_experiment  # noqa: E402
from tests.argo_engine import Interpreter, semantic_problems  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.test_argo import schema_errors  # noqa: E402

EXAMPLE = ROOT / "examples" / "argo"


def _docs():
    template = workflow_template(load_experiment(EXAMPLE / "regression-experiment.yaml"))
    caller = yaml.safe_load((EXAMPLE / "tune-and-train.yaml").read_text())
    return template, caller


def test_example_workflow_validates_with_its_template():
    template, caller = _docs()
    assert template["metadata"]["name"] == "regression-tune"
    assert schema_errors(caller, "Workflow") == [] and schema_errors(template, "WorkflowTemplate") == []
    assert semantic_problems(template) == []
    assert semantic_problems(caller, library=[template]) == []  # templateRef resolves; main declares best/objective
    assert "templates.pipeline.steps[1].tune template reference regression-tune.main not found" in semantic_problems(caller)
    trial = next(t for t in template["spec"]["templates"] if t["name"] == "trial-pod")
    assert trial["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "regression-data"}}]


def test_example_runs_prepare_tune_train(tmp_path):
    template, caller = _docs()
    shared = tmp_path / "pvc"  # the PersistentVolumeClaim every pod mounts at /data
    shared.mkdir()

    def rewrite(argv: list[str]) -> list[str]:
        argv = [sys.executable if a == "python3" else a for a in argv]
        return [str(shared / a[len("/data/"):]) if a.startswith("/data/") else a for a in argv]

    (tmp_path / "wf").mkdir()
    engine = Interpreter(caller, tmp_path / "wf", library=[template], rewrite=rewrite, name="tune-and-train-x")
    result = engine.run()
    model = json.loads(result["parameters"]["model"])
    trials = json.loads(sorted((tmp_path / "wf").glob("pod-*/tmp/hp/history.json"))[-1].read_text())
    assert len(trials) == 6 and all(t["condition"] == "Succeeded" for t in trials)
    best = min(trials, key=lambda t: t["objectiveValue"])
    assert {k: model[k] for k in ("lr", "epochs")} == {a["name"]: a["value"] for a in best["parameterAssignments"]}
    assert model["loss"] == pytest.approx(best["objectiveValue"])  # the final training reproduces the best trial
    steps = [n["name"] for n in engine.nodes if n["templateName"] in ("prepare", "train")]
    assert steps == ["tune-and-train-x[0].prepare", "tune-and-train-x[2].train"]
    assert 1 < engine.max_running <= 3
    assert engine.max_seen_depth == 1 + 2 + 3  # the caller's level, then main + 2 rounds + trial + pod
