"""The pipeline steps every engine runs: suggest, trial (the metrics wrapper) and collect.

The same JSON flows between them on KFP, on Argo and in tests (see DESIGN.md):

* **suggest** ``(experiment, history) -> trials``: a list of
  ``{"name", "parameterAssignments": [{"name", "value"}], "parameters": {trialParameterName: value}}``,
  empty when nothing is left to run; with ``medianstop`` each also has ``"stopRules"``, the rules the
  early-stopping algorithm gives a trial created now (Katib's ``name;value;comparison;startStep``,
  none until enough trials succeeded), which the engine hands to the trial's wrapper (``--stop-rule``).
* **trial**: ``python3 metrics.py <wrapper_args(experiment, rule)> --output obs.json -- <command>``
  runs the user's command (stopping it when its stop rule holds) and writes an observation
  ``{"condition", "metrics", "intermediateValues", ...}``; a failed training process is a recorded
  failure, not a failed task.
* **collect** ``(experiment, history, trials, observations) -> {history, status, done, best}``.

::

    from hp_components.steps import suggest_step, collect_step
    batch = suggest_step(exp, history=[])
    observations = [run_the_trial(t) for t in batch]        # engine-specific
    out = collect_step(exp, [], batch, observations)
    out["done"], out["best"]
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from hp_components import metrics as _metrics
from hp_components.earlystop import RULE_ALGORITHMS, EarlyStopping, get_early_stopping
from hp_components.experiment import Experiment
from hp_components.metrics import MAX_REPORTS, judge, objective_value
from hp_components.status import experiment_status
from hp_components.suggest import suggest
from hp_components.template import deadline, trial_parameters
from hp_components.trials import FINISHED, Trial

#: the image the suggest and collect steps run in (built from the repository's Dockerfile)
DEFAULT_IMAGE = "ghcr.io/hp-components/hp-components:0.1.0"

#: the metrics wrapper's source (hp_components/metrics.py, standard library only)
WRAPPER_SOURCE = Path(_metrics.__file__).read_text(encoding="utf-8")
#: what ``python3 -c`` runs in a training image that has nothing but python3: that source, on
#: one line (a multi-line value breaks the comment header KFP writes into a compiled YAML)
WRAPPER_PROGRAM = f"exec(compile({WRAPPER_SOURCE!r}, 'metrics.py', 'exec'))"

__all__ = ["DEFAULT_IMAGE", "ITEM_NAME_KEY", "STOP_RULE_KEY", "WRAPPER_PROGRAM", "fan_out_items", "WRAPPER_SOURCE", "slim",
           "status_summary", "stop_rule_text", "stop_rules_for", "suggest_step", "collect_step", "uses_stop_rules", "wrapper_args",
           "trial_from_observation"]


def _rule_stopper(experiment: Experiment) -> EarlyStopping | None:
    es = experiment.spec.early_stopping
    if es is None or es.algorithm_name not in RULE_ALGORITHMS:
        return None
    return get_early_stopping(es.algorithm_name, es.settings(), experiment.spec.objective.type)


def uses_stop_rules(experiment: Experiment) -> bool:
    """Whether the suggest step hands trials stop rules (``medianstop``): the trial step then takes one."""
    return _rule_stopper(experiment) is not None


def suggest_step(experiment: Experiment, history: Sequence[Trial], count: int | None = None) -> list[dict[str, Any]]:
    """The next batch (``parallelTrialCount`` by default) in the step contract's JSON shape."""
    batch = suggest(experiment, history, experiment.spec.parallel_trial_count if count is None else count)
    stopper = _rule_stopper(experiment)
    rules = ([str(r) for r in stopper.rules(history, experiment.spec.objective.objective_metric_name)]
             if stopper is not None and batch else [])
    out = []
    for t in batch:
        item = t.to_dict()
        out.append({
            "name": t.name,
            "parameterAssignments": item["parameterAssignments"],
            "parameters": trial_parameters(experiment, t),
            **({"systemAttrs": t.system_attrs} if t.system_attrs else {}),
            **({"stopRules": rules} if stopper is not None else {}),
        })
    return out


def stop_rules_for(experiment: Experiment, history: Sequence[Trial]) -> list[str] | None:
    """The stop rules a trial created now gets from ``history`` (None: the experiment uses none), as
    :func:`suggest_step` hands them out (for an engine that creates a trial outside a batch, the lanes)."""
    stopper = _rule_stopper(experiment)
    if stopper is None:
        return None
    return [str(r) for r in stopper.rules(history, experiment.spec.objective.objective_metric_name)]


def stop_rule_text(item: dict[str, Any]) -> str:
    """A suggested trial's stop rule as one ``--stop-rule`` argument ("": none yet); medianstop gives at
    most one rule, as in Katib."""
    rules = list(item.get("stopRules") or [])
    if len(rules) > 1:
        raise ValueError(f"trial {item.get('name')!r} has {len(rules)} stop rules; a trial step takes one")
    return str(rules[0]) if rules else ""


def _intermediate_values(raw: Any) -> list[tuple[int, float]]:
    """The wrapper's ``intermediateValues`` (``[[step, value], ...]``), what is not a finite pair dropped."""
    out: list[tuple[int, float]] = []
    for pair in raw if isinstance(raw, list) else []:
        try:
            step, value = int(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError, OverflowError):
            continue
        if math.isfinite(value) and len(out) < MAX_REPORTS:
            out.append((step, value))
    return out


def trial_from_observation(experiment: Experiment, item: dict[str, Any], observation: dict[str, Any] | None) -> Trial:
    """A finished trial record from a suggested item and what its wrapper wrote (None: nothing)."""
    trial = Trial(
        name=str(item["name"]),
        assignments={a["name"]: str(a["value"]) for a in item.get("parameterAssignments", [])},
        system_attrs=dict(item.get("systemAttrs", {})),
    )
    if not observation:
        trial.condition, trial.reason = "Failed", "NoObservation"
        trial.message = "the trial step left no observation (an infrastructure fault, not the training code)"
        return trial
    condition = observation.get("condition", "Failed")
    trial.condition = condition if condition in FINISHED else "Failed"
    trial.reason = str(observation.get("reason", ""))
    trial.message = str(observation.get("message", ""))
    trial.observation = {"metrics": list(observation.get("metrics", []))}
    trial.intermediate_values = _intermediate_values(observation.get("intermediateValues"))
    obj = experiment.spec.objective
    trial.objective_value = objective_value(trial.observation, obj.objective_metric_name,
                                            obj.strategies()[obj.objective_metric_name])
    if trial.condition == "Succeeded" and trial.objective_value is None:  # an observation not from the judge
        trial.condition, trial.reason, trial.message = judge(objective=obj.objective_metric_name, value=None)
    return trial


#: the key of a trial's name in :func:`fan_out_items` (not a valid Katib trialParameter reference)
ITEM_NAME_KEY = "hp-trial-name"
#: the key of a trial's stop rule in :func:`fan_out_items` (when the experiment uses them)
STOP_RULE_KEY = "hp-stop-rule"


def fan_out_items(batch: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """A batch as flat items, one per trial: ``{"hp-trial-name": name, trialParameterName: value, ...}``.

    Every value is a string at the top level, so an engine that defines only top-level item keys
    (Argo's ``{{item.K}}``) reaches each of them, formatted as the text itself.
    """
    return [{ITEM_NAME_KEY: str(t["name"]), **({STOP_RULE_KEY: stop_rule_text(t)} if "stopRules" in t else {}),
             **{str(k): str(v) for k, v in t["parameters"].items()}} for t in batch]


def slim(batch: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A batch without the sampler state: what a fan-out over trials needs (name, parameters, stop rules)."""
    return [{"name": t["name"], "parameters": t["parameters"], **({"stopRules": t["stopRules"]} if "stopRules" in t else {})}
            for t in batch]


def status_summary(status: dict[str, Any]) -> dict[str, Any]:
    """Katib's status without the per-trial lists: small, whatever the number of trials."""
    last = status["conditions"][-1]
    counts = {k: v for k, v in status.items() if k.startswith("trial")}
    return {"condition": last["type"], "reason": last["reason"], "message": last["message"],
            "bestTrialName": status["currentOptimalTrial"]["bestTrialName"], **counts}


def _as_dict(obs: Any) -> dict[str, Any] | None:
    """An observation given as a dict or as JSON text (engines hand either)."""
    if isinstance(obs, dict) and set(obs) == {"observation"}:
        obs = obs["observation"]  # one entry of an engine's aggregated outputs ({output name: value})
    if isinstance(obs, str):
        try:
            obs = json.loads(obs)
        except json.JSONDecodeError:
            return None
    return obs if isinstance(obs, dict) else None


def collect_step(
    experiment: Experiment,
    history: Sequence[Trial],
    trials: Sequence[dict[str, Any]],
    observations: Sequence[dict[str, Any] | str | None] | dict[str, dict[str, Any]],
    suggest_next: bool = False,
) -> dict[str, Any]:
    """Record a batch: the new history, Katib's status, whether the experiment is done, the best trial.

    ``observations`` is either a list or a mapping from trial name to observation. In a list, an
    observation carrying its trial's ``name`` (the wrapper's ``--name``) is matched by name, one
    without by its place in the batch. A trial without an observation is recorded Failed
    (``NoObservation``): an engine that drops failed children from its aggregates cannot shift
    results onto the wrong trials. With ``suggest_next``, the result also holds ``next``, the
    following batch; when the algorithm has none left the experiment ends
    (``ExperimentSuggestionEndReached``) and ``done`` says so, so a loop never fans out over nothing.
    """
    if isinstance(observations, dict):
        by_name = {str(k): _as_dict(v) for k, v in observations.items()}
    else:
        by_name = {}
        named = [_as_dict(o) for o in observations]
        if all(o is not None and o.get("name") for o in named):
            by_name = {str(o["name"]): o for o in named}  # type: ignore[index]
        else:
            for item, obs in zip(trials, named):
                if obs is not None:
                    by_name[str(obs.get("name") or item["name"])] = obs
    new = [trial_from_observation(experiment, item, by_name.get(str(item["name"]))) for item in trials]
    known = {t.name for t in history}
    full = list(history) + [t for t in new if t.name not in known]
    status = experiment_status(experiment, full, suggestion_done=not trials)
    nxt: list[dict[str, Any]] = []
    if suggest_next and not status.done:
        nxt = suggest_step(experiment, full)
        if not nxt:
            status = experiment_status(experiment, full, suggestion_done=True)
    best = status.best
    return {
        "next": nxt,
        "history": [t.to_dict() for t in full],
        "status": status.to_dict(),
        "done": status.done,
        "condition": status.condition,
        "best": {
            "name": best.name if best else "",
            "parameters": dict(best.assignments) if best else {},
            "objective": best.objective_value if best else None,
        },
    }


def wrapper_args(experiment: Experiment, stop_rule: Any = None) -> list[Any]:
    """The metrics wrapper's options for this experiment (everything but --output and the command).

    ``stop_rule``: the engine's placeholder for the trial's stop rule (its fan-out item's
    :data:`STOP_RULE_KEY`), used when the experiment :func:`uses_stop_rules`."""
    spec = experiment.spec
    obj = spec.objective
    args: list[Any] = ["--objective", obj.objective_metric_name]
    if stop_rule is not None and uses_stop_rules(experiment):
        args += ["--objective-type", obj.type, "--stop-rule", stop_rule]
    for name in obj.additional_metric_names:
        args += ["--metric", name]
    for name, strategy in obj.strategies().items():
        args += ["--strategy", f"{name}={strategy}"]
    mc = spec.metrics_collector_spec
    if mc.file_path:
        args += ["--file", mc.file_path, "--format", mc.file_format]
    if mc.filters and mc.file_format == "TEXT":
        for f in mc.filters:
            args += ["--filter", f]
    limit = deadline(spec.trial_template.trial_spec or {})
    if limit:
        args += ["--timeout", f"{limit:g}"]
    return args
