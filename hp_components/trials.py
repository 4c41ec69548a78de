"""The trial record and the experiment history (a list of trials), as JSON every engine shares.

A record, in Katib's words::

    {"name": "random-digits-0003",
     "parameterAssignments": [{"name": "lr", "value": "0.01"}],
     "condition": "Succeeded", "reason": "", "message": "",
     "observation": {"metrics": [{"name": "Validation-accuracy", "min": "0.8", "max": "0.93", "latest": "0.93"}]},
     "objectiveValue": 0.93,
     "intermediateValues": [[0, 0.8], [1, 0.93]],
     "systemAttrs": {}}

``systemAttrs`` is the sampler's private state (CMA-ES keeps its optimizer there) and travels
with the history so that a suggestion rebuilt from history continues where the last one left off.

    from hp_components.trials import Trial, dump_history, load_history
    t = Trial(name="x-0000", assignments={"lr": "0.1"})
    assert load_history(dump_history([t]))[0].assignments == {"lr": "0.1"}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

__all__ = [
    "Trial",
    "CONDITIONS",
    "FINISHED",
    "FAILED",
    "ACTIVE",
    "OBSERVED",
    "dump_history",
    "load_history",
    "trial_name",
]

#: Katib's trial conditions, plus ``Interrupted`` for a trial whose runner died (it is rerun).
CONDITIONS = (
    "Created",
    "Running",
    "Succeeded",
    "Failed",
    "MetricsUnavailable",
    "EarlyStopped",
    "Killed",
    "Interrupted",
)
FINISHED = frozenset({"Succeeded", "Failed", "MetricsUnavailable", "EarlyStopped", "Killed"})
#: conditions that count toward ``maxFailedTrialCount`` (Katib: failed + metrics unavailable)
FAILED = frozenset({"Failed", "MetricsUnavailable"})
ACTIVE = frozenset({"Created", "Running"})
#: conditions whose metrics count (Katib keeps an observation only for a trial that succeeded or was
#: stopped early: pkg/controller.v1beta1/trial/trial_controller.go): a Failed trial is never best
OBSERVED = frozenset({"Succeeded", "EarlyStopped"})


def trial_name(experiment_name: str, number: int) -> str:
    """The name of trial ``number`` of an experiment: ``<experiment>-<number, 4 digits>``."""
    return f"{experiment_name}-{number:04d}"


@dataclass
class Trial:
    """One trial: its parameter assignments, condition and observation."""

    name: str
    assignments: dict[str, str]
    condition: str = "Created"
    reason: str = ""
    message: str = ""
    observation: dict[str, Any] = field(default_factory=lambda: {"metrics": []})
    objective_value: float | None = None
    intermediate_values: list[tuple[int, float]] = field(default_factory=list)
    system_attrs: dict[str, Any] = field(default_factory=dict)
    start_time: str | None = None
    completion_time: str | None = None

    @property
    def finished(self) -> bool:
        return self.condition in FINISHED

    @property
    def active(self) -> bool:
        return self.condition in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "parameterAssignments": [{"name": k, "value": v} for k, v in self.assignments.items()],
            "condition": self.condition,
            "observation": self.observation,
            "objectiveValue": self.objective_value,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.message:
            out["message"] = self.message
        if self.intermediate_values:
            out["intermediateValues"] = [[s, v] for s, v in self.intermediate_values]
        if self.system_attrs:
            out["systemAttrs"] = self.system_attrs
        if self.start_time:
            out["startTime"] = self.start_time
        if self.completion_time:
            out["completionTime"] = self.completion_time
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Trial":
        if not isinstance(data, dict) or "name" not in data:
            raise ValueError("a trial record must be a mapping with a 'name'")
        condition = data.get("condition", "Created")
        if condition not in CONDITIONS:
            raise ValueError(f"trial {data['name']!r}: unknown condition {condition!r}")
        value = data.get("objectiveValue")
        if value is not None:
            value = float(value)
            if not math.isfinite(value):
                value = None
        return cls(
            name=str(data["name"]),
            assignments={str(a["name"]): str(a["value"]) for a in data.get("parameterAssignments", [])},
            condition=condition,
            reason=str(data.get("reason", "")),
            message=str(data.get("message", "")),
            observation=data.get("observation") or {"metrics": []},
            objective_value=value,
            intermediate_values=[(int(s), float(v)) for s, v in data.get("intermediateValues", [])],
            system_attrs=dict(data.get("systemAttrs", {})),
            start_time=data.get("startTime"),
            completion_time=data.get("completionTime"),
        )


def dump_history(trials: Iterable[Trial]) -> str:
    """History as compact JSON (a list of trial records)."""
    return json.dumps([t.to_dict() for t in trials], separators=(",", ":"), allow_nan=False)


def load_history(text: str | list[Any]) -> list[Trial]:
    """Parse history JSON (or an already-parsed list); ValueError with the reason when malformed."""
    data = json.loads(text) if isinstance(text, (str, bytes)) else text
    if not isinstance(data, list):
        raise ValueError("history must be a JSON list of trial records")
    return [Trial.from_dict(d) for d in data]
