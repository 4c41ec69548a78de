"""Experiment status from its history, with Katib's completion rules, counts and best trial.

Rules, checked in Katib's order:

1. the best objective reaches ``objective.goal`` -> Succeeded, ``ExperimentGoalReached``;
2. failed trials (Failed + MetricsUnavailable) reach ``maxFailedTrialCount`` -> Failed, ``ExperimentFailed``;
3. finished trials reach ``maxTrialCount`` -> Succeeded, ``ExperimentMaxTrialsReached``;
4. the algorithm has nothing left and no trial is active -> Succeeded, ``ExperimentSuggestionEndReached``;
5. otherwise Running, ``ExperimentRunning``.

::

    from hp_components.status import experiment_status
    st = experiment_status(exp, history)
    if st.done:
        print(st.reason, st.best.name if st.best else None)
    json.dump(st.to_dict(), open("status.json", "w"))   # Katib's Experiment.status shape
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Sequence

from hp_components.experiment import Experiment
from hp_components.trials import ACTIVE, FAILED, FINISHED, OBSERVED, Trial

__all__ = ["ExperimentStatus", "experiment_status", "best_trial", "remaining_slots"]

_MESSAGES = {
    "ExperimentGoalReached": "Experiment has succeeded because Objective goal has reached",
    "ExperimentFailed": "Experiment has failed because max failed count has reached",
    "ExperimentMaxTrialsReached": "Experiment has succeeded because max trial count has reached",
    "ExperimentSuggestionEndReached": "Experiment has succeeded because suggestion service has reached the end",
    "ExperimentRunning": "Experiment is running",
}
_LISTS = {
    "Running": "runningTrialList",
    "Created": "pendingTrialList",
    "Succeeded": "succeededTrialList",
    "Failed": "failedTrialList",
    "Killed": "killedTrialList",
    "EarlyStopped": "earlyStoppedTrialList",
    "MetricsUnavailable": "metricsUnavailableTrialList",
}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def best_trial(experiment: Experiment, history: Sequence[Trial]) -> Trial | None:
    """The trial with the best objective value (first one wins a tie) among those whose metrics count
    (:data:`~hp_components.trials.OBSERVED`: Succeeded or EarlyStopped, as in Katib), or None."""
    sign = -1.0 if experiment.spec.objective.type == "maximize" else 1.0
    scored = [t for t in history if t.objective_value is not None and t.condition in OBSERVED]
    return min(scored, key=lambda t: sign * t.objective_value, default=None)  # type: ignore[operator]


@dataclass
class ExperimentStatus:
    """Where an experiment stands. ``done`` once it Succeeded or Failed."""

    condition: str
    reason: str
    counts: dict[str, int]
    lists: dict[str, list[str]]
    best: Trial | None = None
    start_time: str | None = None
    completion_time: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.condition != "Running"

    @property
    def message(self) -> str:
        return _MESSAGES[self.reason]

    def to_dict(self) -> dict[str, Any]:
        """Katib's ``Experiment.status``: conditions, currentOptimalTrial, trial lists and counts."""
        now = _now()
        started = self.start_time or now
        ended = (self.completion_time or now) if self.done else None
        conditions = [
            {"type": "Created", "status": "True", "reason": "ExperimentCreated",
             "message": "Experiment is created", "lastUpdateTime": started, "lastTransitionTime": started},
            {"type": "Running", "status": "True" if not self.done else "False", "reason": "ExperimentRunning",
             "message": _MESSAGES["ExperimentRunning"], "lastUpdateTime": ended or now,
             "lastTransitionTime": ended or started},
        ]
        if ended:
            conditions.append({"type": self.condition, "status": "True", "reason": self.reason,
                               "message": self.message, "lastUpdateTime": ended, "lastTransitionTime": ended})
        best = self.best
        out: dict[str, Any] = {
            "conditions": conditions,
            "currentOptimalTrial": {
                "bestTrialName": best.name if best else "",
                "parameterAssignments": best.to_dict()["parameterAssignments"] if best else [],
                "observation": best.observation if best else {"metrics": []},
            },
            **{k: v for k, v in self.lists.items() if v},
            **self.counts,
        }
        out["startTime"] = started
        if ended:
            out["completionTime"] = ended
        out.update(self.extra)
        return out


def experiment_status(experiment: Experiment, history: Sequence[Trial], suggestion_done: bool = False) -> ExperimentStatus:
    """The status after ``history``; pass ``suggestion_done`` when the algorithm returned nothing."""
    spec = experiment.spec
    trials = [t for t in history if t.condition != "Interrupted"]
    lists: dict[str, list[str]] = {name: [] for name in _LISTS.values()}
    for t in trials:
        lists[_LISTS[t.condition]].append(t.name)
    counts = {
        "trials": len(trials),
        "trialsPending": len(lists["pendingTrialList"]),
        "trialsRunning": len(lists["runningTrialList"]),
        "trialsSucceeded": len(lists["succeededTrialList"]),
        "trialsFailed": len(lists["failedTrialList"]),
        "trialsKilled": len(lists["killedTrialList"]),
        "trialsEarlyStopped": len(lists["earlyStoppedTrialList"]),
        "trialMetricsUnavailable": len(lists["metricsUnavailableTrialList"]),
    }
    best = best_trial(experiment, trials)
    finished = sum(t.condition in FINISHED for t in trials)
    failed = sum(t.condition in FAILED for t in trials)
    active = sum(t.condition in ACTIVE for t in trials)
    goal = spec.objective.goal
    reason, condition = "ExperimentRunning", "Running"
    if best is not None and goal is not None and (
        best.objective_value >= goal if spec.objective.type == "maximize" else best.objective_value <= goal  # type: ignore[operator]
    ):
        reason, condition = "ExperimentGoalReached", "Succeeded"
    elif spec.max_failed_trial_count is not None and failed and failed >= spec.max_failed_trial_count:
        reason, condition = "ExperimentFailed", "Failed"
    elif spec.max_trial_count is not None and finished >= spec.max_trial_count:
        reason, condition = "ExperimentMaxTrialsReached", "Succeeded"
    elif suggestion_done and active == 0:
        reason, condition = "ExperimentSuggestionEndReached", "Succeeded"
    # Katib's times: the experiment started with its first trial and ended when the last one that
    # decided it finished (the trials' own RFC 3339 times, so a status written later says the same)
    starts = [t.start_time for t in trials if t.start_time]
    ends = [t.completion_time for t in trials if t.completion_time]
    return ExperimentStatus(condition=condition, reason=reason, counts=counts, lists=lists, best=best,
                            start_time=min(starts, default=None),
                            completion_time=max(ends, default=None) if condition != "Running" else None)


def remaining_slots(experiment: Experiment, history: Sequence[Trial]) -> int | None:
    """How many more trials may still be created (None: no ``maxTrialCount``)."""
    if experiment.spec.max_trial_count is None:
        return None
    counted = sum(t.condition != "Interrupted" for t in history)
    return max(0, experiment.spec.max_trial_count - counted)
