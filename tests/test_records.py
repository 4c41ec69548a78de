"""The record reader behind the spec model (``hp_components._records``): types checked from the
dataclasses' hints, camelCase keys, every problem listed with its path, and the dict written back."""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

from hp_components._records import build, camel, dump
from hp_components.experiment import Experiment, load_experiment

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "random-digits.yaml"


@dataclass(kw_only=True)
class _Inner:
    kind: Literal["a", "b"] = "a"
    count: int


@dataclass(kw_only=True)
class _Outer:
    EXTRA: ClassVar[str] = "rest"
    metric_name: str
    goal: float | None = None
    flag: bool = False
    tags: list[str] = field(default_factory=list)
    labels: dict[str, str] | None = None
    inner: _Inner | None = None
    items: list[_Inner] = field(default_factory=list)
    choices: list[str] | None = field(default=None, metadata={"key": "list", "before": lambda v: v or None})
    rest: dict[str, Any] = field(default_factory=dict)


def test_camel_case_names_are_katibs_keys() -> None:
    assert camel("objective_metric_name") == "objectiveMetricName"
    assert camel("api_version") == "apiVersion"
    assert camel("name") == "name"


def test_a_good_record_reads_and_writes_back_the_same_dict() -> None:
    data = {"metricName": "loss", "goal": 1, "flag": True, "tags": ["x"], "labels": {"a": "b"},
            "inner": {"kind": "b", "count": 2}, "items": [{"count": 1}], "list": ["p"], "generateName": "g-"}
    rec, problems = build(_Outer, data)
    assert problems == []
    assert rec.goal == 1.0 and isinstance(rec.goal, float)  # a YAML whole number is a number
    assert rec.inner == _Inner(kind="b", count=2) and rec.items == [_Inner(count=1)]
    assert rec.rest == {"generateName": "g-"}  # EXTRA: unknown keys are kept, not refused
    out = dump(rec)
    assert out == {**data, "goal": 1.0, "items": [{"kind": "a", "count": 1}]}
    assert list(out)[-1] == "generateName"  # the extras after the fields


def test_every_problem_is_listed_with_its_path() -> None:
    data = {"goal": True, "flag": "yes", "tags": "x", "labels": {"a": 1},
            "inner": {"kind": "c", "count": 1.5, "extra": 1}, "items": [{"count": 1}, 7]}
    _, problems = build(_Outer, data)
    assert sorted(problems) == sorted([
        ("metricName", "is required"),
        ("goal", "must be a number, not True"),  # a bool is not a number (Katib's Go decoder agrees)
        ("flag", "must be true or false, not 'yes'"),
        ("tags", "must be a list, not str"),
        ("labels.a", "must be a string, not int"),
        ("inner.kind", "must be 'a' or 'b', not 'c'"),
        ("inner.count", "must be a whole number, not 1.5"),
        ("inner.extra", "is not a Katib v1beta1 field (check the spelling)"),
        ("items[1]", "must be a mapping, not int"),
    ]), problems
    _, problems = build(_Inner, {"count": 1, "kindd": "a"})
    assert problems == [("kindd", "is not a Katib v1beta1 field (check the spelling)")]
    assert build(_Inner, ["not", "a", "mapping"])[1] == [("(input)", "must be a mapping, not list")]


def test_a_before_hook_runs_on_the_raw_value_and_the_key_can_differ_from_the_name() -> None:
    rec, problems = build(_Outer, {"metricName": "m", "list": []})
    assert problems == [] and rec.choices is None
    rec, problems = build(_Outer, {"metricName": "m", "choices": ["x"]})  # the field's name is not its key
    assert problems == [] and rec.choices is None and rec.rest == {"choices": ["x"]}


def test_an_experiment_dumps_as_pydantic_did_and_survives_a_deep_copy() -> None:
    """Nested None inside a free-form manifest is kept (it means something to Kubernetes), top-level
    None fields are left out, and the status never reaches the spec."""
    exp = load_experiment(EXAMPLE)
    exp.spec.trial_template.trial_spec["metadata"] = {"creationTimestamp": None}
    exp.status = {"conditions": []}
    out = exp.to_dict()
    assert "status" not in out and out["spec"]["trialTemplate"]["trialSpec"]["metadata"] == {"creationTimestamp": None}
    assert "goal" not in out["spec"]["objective"] and "earlyStopping" not in out["spec"]  # None: left out
    again = load_experiment(out)
    assert again.to_dict() == out and copy.deepcopy(again) == again
    assert isinstance(again, Experiment)


def test_snake_case_keys_are_not_katib_fields() -> None:
    data = load_experiment(EXAMPLE).to_dict()
    data["spec"]["max_trial_count"] = data["spec"].pop("maxTrialCount")
    with pytest.raises(ValueError, match=r"spec\.max_trial_count: is not a Katib v1beta1 field"):
        load_experiment(data)


def test_the_package_and_its_spec_model_load_without_pydantic_or_yaml() -> None:
    probe = ("import sys, hp_components; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in {'pydantic', 'yaml'}))")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
