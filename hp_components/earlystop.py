"""Early stopping: the rules a trial gets from the history, and whether a running trial should stop.

``medianstop`` is Katib's (pkg/earlystopping/v1beta1/medianstop/service.py
``GetEarlyStoppingRules``), with a true median where Katib's service takes the mean: once
``min_trials_required`` trials succeeded, a trial gets one rule, "objective worse than R at report
``start_step``", R the median over the succeeded trials of the mean of their first ``start_step``
values. The rule is checked by :class:`hp_components.metrics.StopRules` (Katib's metrics-collector
check: the trial's best value so far at its ``start_step``-th report), the same code in the local
runner and in the trial wrapper on KFP and Argo, where the suggest step hands each trial its rules
(:meth:`EarlyStopping.rules`). Locally the rule is recomputed from the history at each report, so
a trial also stops when enough trials succeed after it started::

    from hp_components.earlystop import get_early_stopping
    stopper = get_early_stopping("medianstop", {"min_trials_required": "3", "start_step": "4"}, "maximize")
    stopper.rules(history, "accuracy")   # [StopRule(name='accuracy', value=0.64, comparison='less', start_step=4)]
    if stopper.should_stop(history, [(0, 0.61), (1, 0.64), (2, 0.66), (3, 0.67)]):
        ...  # stop the trial, record it EarlyStopped

``hyperband`` and ``successive-halving`` are Optuna's pruners, fed with the same intermediate values,
locally only: a pruner compares a trial at each rung with every trial that reached that rung,
running ones included, and stops it at the first rung it fails, which Katib's rules (all of them
must be met, the objective compared by its best value so far) cannot express; :meth:`rules` is []
for them, and on KFP and Argo their trials run to the end.
"""

from __future__ import annotations

import math
import statistics
import warnings
from typing import Any, Sequence

import optuna
from optuna.trial import TrialState

from hp_components.metrics import StopRule, StopRules
from hp_components.settings import Setting, int_setting, read_settings
from hp_components.trials import Trial

__all__ = ["EarlyStopping", "MedianStop", "OptunaPruner", "RULE_ALGORITHMS", "get_early_stopping", "validate_early_stopping",
           "SETTINGS"]

Values = Sequence[tuple[int, float]]


#: per algorithm: setting name -> its parser, rule and default
SETTINGS: dict[str, dict[str, Setting]] = {
    "medianstop": {
        "min_trials_required": int_setting(1, default=3),
        "start_step": int_setting(1, default=4),
    },
    "hyperband": {
        "min_resource": int_setting(1, default=1),
        "max_resource": int_setting(1, default=100),
        "reduction_factor": int_setting(2, default=3),
    },
    "successive-halving": {
        "min_resource": int_setting(1, default=1),
        "reduction_factor": int_setting(2, default=4),
        "min_early_stopping_rate": int_setting(0, default=0),
    },
}


def validate_early_stopping(name: str, settings: dict[str, str], path: str = "spec.earlyStopping") -> list[tuple[str, str]]:
    """Problems with an early stopping algorithm name and its settings, each with its field path."""
    if name not in SETTINGS:
        return [(f"{path}.algorithmName", f"{name!r} is not supported; use one of {', '.join(SETTINGS)}")]
    return read_settings(SETTINGS[name], settings, path, name)[1]


class EarlyStopping:
    """Decides whether a running trial with these intermediate values should stop."""

    def __init__(self, settings: dict[str, Any], direction: str):
        self.settings = settings
        self.direction = direction

    def should_stop(self, history: Sequence[Trial], values: Values) -> bool:
        raise NotImplementedError

    def rules(self, history: Sequence[Trial], objective: str) -> list[StopRule]:
        """The stop rules a trial created now gets (Katib's ``GetEarlyStoppingRules``); [] for none."""
        return []


#: the metric name the local check gives the objective's values (any name works: rule and values agree)
_OBJECTIVE = "objective"


class MedianStop(EarlyStopping):
    """Katib's median stopping rule, with a true median (see the module docstring)."""

    def rules(self, history, objective):
        step = self.settings["start_step"]
        done = [t for t in history if t.condition == "Succeeded" and t.intermediate_values]
        if len(done) < self.settings["min_trials_required"]:
            return []
        reference = statistics.median(statistics.fmean(v for _, v in t.intermediate_values[:step]) for t in done)
        return [StopRule(objective, reference, "less" if self.direction == "maximize" else "greater", step)]

    def should_stop(self, history, values):
        step = self.settings["start_step"]
        if len(values) < step:
            return False
        rules = self.rules(history, _OBJECTIVE)
        if not rules:
            return False
        check = StopRules(rules, objective=_OBJECTIVE, objective_type=self.direction)
        # the rule is judged at report start_step: the later values cannot change the answer
        return any([check.feed(_OBJECTIVE, v) for _, v in values[:step]])


class OptunaPruner(EarlyStopping):
    """An Optuna pruner asked about the running trial in a study replayed from the history."""

    def pruner(self) -> optuna.pruners.BasePruner:
        s = self.settings
        if "max_resource" in s:
            return optuna.pruners.HyperbandPruner(min_resource=s["min_resource"], max_resource=s["max_resource"],
                                                  reduction_factor=s["reduction_factor"])
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=s["min_resource"],
                                                      reduction_factor=s["reduction_factor"],
                                                      min_early_stopping_rate=s["min_early_stopping_rate"])

    def should_stop(self, history, values):
        if not values:
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(direction=self.direction, pruner=self.pruner())
            # replay each finished trial through report/should_prune, so the pruner keeps the
            # per-rung records it would have written had it watched them run
            for t in history:
                if t.condition not in ("Succeeded", "EarlyStopped") or not t.intermediate_values:
                    continue
                past = study.ask()
                for step, value in t.intermediate_values:
                    if math.isfinite(value):
                        past.report(value, step)
                        past.should_prune()
                if t.condition == "Succeeded" and t.objective_value is not None:
                    study.tell(past, t.objective_value)
                else:
                    study.tell(past, state=TrialState.PRUNED)
            trial = study.ask()
            for step, value in values:
                trial.report(value, step)
            return trial.should_prune()


_CLASSES = {"medianstop": MedianStop, "hyperband": OptunaPruner, "successive-halving": OptunaPruner}
#: the algorithms that decide by rules fixed when a trial is created, so they also work on KFP and Argo
RULE_ALGORITHMS = ("medianstop",)


def get_early_stopping(name: str, settings: dict[str, str], direction: str) -> EarlyStopping:
    """The early stopping algorithm ``name`` with its settings parsed; ValueError when invalid."""
    problems = validate_early_stopping(name, settings)
    if problems:
        raise ValueError("; ".join(f"{p}: {m}" for p, m in problems))
    return _CLASSES[name](read_settings(SETTINGS[name], settings, "", name)[0], direction)
