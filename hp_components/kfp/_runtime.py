"""What the suggest, collect and report steps do inside their containers (no KFP import).

The KFP components in :mod:`hp_components.kfp._components` are thin shells around these
functions, so the logic is plain Python that tests call directly::

    from hp_components.kfp._runtime import suggest_items, collect_round
    items, done = suggest_items(exp_json, [], config)
    observations = [{"condition": "Succeeded", "metrics": [...]}, 0.93, None]   # per item, in order
    out = collect_round(exp_json, [], items, observations, config)
    out["done"], out["next_trials"]

A loop item is flat so that KFP can select its fields (``item.<key>``)::

    {"hp_trial": "seed-bayesopt-0003", "hp_item": {<the suggest step's trial>}, "<key>": value, ...}

(with ``medianstop`` also ``"hp_stop_rule"``: the trial's stop rule, "" for none yet)

``config["fields"]`` says what each ``<key>`` holds: ``{"trialParameter": name}`` (the value
``${trialParameters.name}`` takes) or ``{"parameter": name}`` (a search parameter's value),
converted to ``config["fields"][key]["type"]`` (``str``, ``float``, ``int`` or ``bool``).
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

from hp_components.experiment import Experiment, load_experiment
from hp_components.steps import collect_step, stop_rule_text, suggest_step
from hp_components.trials import load_history

from hp_components.kfp._fields import ITEM_KEY, STOP_KEY, TRIAL_KEY, trial_fields

__all__ = ["experiment_from", "suggest_items", "record_round", "collect_round", "observation_of", "without_nulls", "launch_trial"]



def experiment_from(experiment: str | dict[str, Any] | Experiment) -> Experiment:
    """The Experiment from its JSON text (a pipeline parameter), a dict, or itself."""
    if isinstance(experiment, Experiment):
        return experiment
    if isinstance(experiment, str):
        experiment = json.loads(experiment)
    return load_experiment(experiment)


def _convert(value: str, kind: str) -> Any:
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(float(value))
    if kind == "bool":
        return str(value).strip().lower() in ("true", "1", "yes")
    return str(value)


def _flat(item: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A suggested trial as a flat loop item (see the module docstring)."""
    assignments = {a["name"]: str(a["value"]) for a in item["parameterAssignments"]}
    out: dict[str, Any] = {TRIAL_KEY: item["name"], ITEM_KEY: item}
    if "stopRules" in item:
        out[STOP_KEY] = stop_rule_text(item)
    for key, field in (config.get("fields") or {}).items():
        if "parameter" in field:
            raw = assignments[field["parameter"]]
        else:
            raw = item["parameters"].get(field["trialParameter"], "")
        out[key] = _convert(raw, field.get("type", "str"))
    return out


def suggest_items(experiment: Any, history: Sequence[dict[str, Any]], config: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The first (or next) batch as flat loop items, and whether there is nothing to run."""
    exp = experiment_from(experiment)
    batch = suggest_step(exp, load_history(list(history or [])))
    return [_flat(item, config) for item in batch], not batch


def launch_trial(experiment: Any, item: str | dict[str, Any], *, poll: float = 5.0) -> dict[str, Any]:
    """Run the loop item's trial (a dict or its JSON) as a Kubernetes job: the launcher step.

    Create, wait, collect, delete (see :func:`hp_components.jobs.launch`). The job goes to the
    experiment's ``metadata.namespace``, else the pod's own namespace; the result has the metrics
    wrapper's shape::

        launch_trial(exp_json, {"hp_trial": "ddp-0001", "x": "1.5", ...})["objectiveValue"]
    """
    from hp_components.jobs import KubeJobs, default_namespace, launch

    exp = experiment_from(experiment)
    if isinstance(item, str):
        item = json.loads(item)
    values = {f["trialParameter"]: str(item[key]) for key, f in trial_fields(exp).items()}
    return launch(exp, item[TRIAL_KEY], values, KubeJobs.from_environment(),
                  namespace=exp.metadata.namespace or default_namespace(), poll=poll)


def observation_of(value: Any, objective: str) -> dict[str, Any] | None:
    """One trial's output as a wrapper observation.

    Accepts what the trial wrapper writes (a dict or its JSON text), a bare objective value
    (a lightweight component's float output; NaN/inf/None mean "no objective reported"), or
    metrics (a ``Metrics`` artifact's metadata ``{name: value}``).
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {"condition": "Succeeded", "metrics": []}  # -> MetricsUnavailable
        try:
            value = float(text)  # a str objective output: "0.93", "nan", "none"
        except ValueError:
            pass
        else:
            return observation_of(value, objective)
        if text.lower() in ("none", "null"):
            return {"condition": "Succeeded", "metrics": []}
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return {"condition": "Failed", "reason": "BadObservation", "metrics": [],
                    "message": "the trial's objective output is neither a number nor JSON"}
    if isinstance(value, bool):
        value = None
    if isinstance(value, (int, float)) or value is None:
        number = None if value is None else float(value)
        if number is None or not math.isfinite(number):
            return {"condition": "Succeeded", "metrics": []}  # -> MetricsUnavailable
        v = repr(number)
        return {"condition": "Succeeded", "metrics": [{"name": objective, "min": v, "max": v, "latest": v}]}
    if isinstance(value, dict) and "condition" not in value and "metrics" not in value:
        metrics = []  # a Metrics artifact's metadata: {name: number}
        for name, raw in value.items():
            try:
                number = float(raw)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                v = repr(number)
                metrics.append({"name": str(name), "min": v, "max": v, "latest": v})
        return {"condition": "Succeeded", "metrics": metrics}
    return value if isinstance(value, dict) else None


def without_nulls(value: Any) -> Any:
    """``value`` with every ``None`` dict entry dropped (``objectiveValue: null`` of a failed trial).

    KFP parameters are protobuf Values; kfp.local cannot convert a null inside a list or struct,
    and a trial record without ``objectiveValue`` reads back the same.
    """
    if isinstance(value, dict):
        return {k: (v if k == "systemAttrs" else without_nulls(v)) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def record_round(experiment: Any, history: Sequence[dict[str, Any]], items: Sequence[dict[str, Any]],
                 observations: Sequence[Any]) -> dict[str, Any]:
    """Record one round's loop ``items`` and their ``observations`` (in loop order) after ``history``.

    What collect records, and what ``hp-tune status`` replays from the collect steps' inputs;
    returns :func:`hp_components.steps.collect_step`'s ``{history, status, done, condition, best}``.
    """
    exp = experiment_from(experiment)
    objective = exp.spec.objective.objective_metric_name
    trials = [item.get(ITEM_KEY) or {"name": item[TRIAL_KEY], "parameterAssignments": []} for item in items]
    obs = [observation_of(o, objective) for o in observations]
    if len(obs) < len(trials):
        obs += [None] * (len(trials) - len(obs))
    return collect_step(exp, load_history(list(history or [])), trials, obs[: len(trials)])


def collect_round(experiment: Any, history: Sequence[dict[str, Any]], items: Sequence[dict[str, Any]],
                  observations: Sequence[Any], config: dict[str, Any]) -> dict[str, Any]:
    """Record a batch, decide, and suggest the next batch when the experiment goes on.

    ``observations`` are in the batch's order (KFP's ``dsl.Collected`` keeps the loop's order).
    Returns ``{history, status, done, condition, best, next_trials}``; ``done`` is also true when
    the algorithm has nothing left to suggest (``ExperimentSuggestionEndReached``), so the next
    round never loops over an empty list.
    """
    exp = experiment_from(experiment)
    out = record_round(exp, history, items, observations)
    out["next_trials"] = []
    if not out["done"]:
        full = load_history(out["history"])
        batch = suggest_step(exp, full)
        if batch:
            out["next_trials"] = [_flat(item, config) for item in batch]
        else:
            out = collect_step(exp, full, [], [])
            out["next_trials"] = []
    out["history"] = without_nulls(out["history"])
    out["status"] = without_nulls(out["status"])
    return out


# --------------------------------------------------------------------------- the state artifact
# The history travels between rounds as one artifact (a JSON file), not as a list parameter: a
# parameter sits inside every consumer's --executor_input (one argv string, 128 KiB at most) and
# in the Workflow's node status; an artifact is a URI there. Its content:
#     {"history": [<trial record>, ...], "status": <Katib Experiment.status> | null}
# ``status`` is null until a collect step (or a suggest step with nothing to run) decides it.


def read_state(path: str) -> dict[str, Any]:
    """The state artifact at ``path``."""
    with open(path, encoding="utf-8") as fh:
        state = json.load(fh)
    if not isinstance(state, dict) or not isinstance(state.get("history"), list):
        raise ValueError(f"{path}: not a tuning state (expected {{'history': [...], 'status': ...}})")
    return state


def write_state(path: str, history: Sequence[dict[str, Any]], status: dict[str, Any] | None) -> None:
    import os

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"history": list(history), "status": status}, fh, separators=(",", ":"))


def suggest_state(experiment: Any, history: Sequence[dict[str, Any]], config: dict[str, Any],
                  state_path: str) -> tuple[list[dict[str, Any]], bool]:
    """The first batch as loop items and whether there is nothing to run; writes the state artifact."""
    exp = experiment_from(experiment)
    items, done = suggest_items(exp, history, config)
    status = None
    if done:  # nothing to run: decided here (ExperimentSuggestionEndReached, or the warm start already finished it)
        status = without_nulls(collect_step(exp, load_history(list(history or [])), [], [])["status"])
    write_state(state_path, without_nulls(list(history or [])), status)
    return items, done


def collect_state(experiment: Any, state_path: str, items: Sequence[dict[str, Any]], observations: Sequence[Any],
                  config: dict[str, Any], done: bool, out_path: str) -> tuple[list[dict[str, Any]], bool, dict[str, Any]]:
    """One round's collect: record ``observations``, decide, suggest; writes the new state to ``out_path``.

    With ``done`` (the round was skipped: an earlier round finished the experiment) the state is
    passed on unchanged and nothing is suggested. Returns ``(next_trials, done, status)``.
    """
    state = read_state(state_path)
    if done:
        status = state.get("status")
        if status is None:
            status = without_nulls(collect_step(experiment_from(experiment), load_history(state["history"]),
                                                [], [])["status"])
        write_state(out_path, state["history"], status)
        return [], True, status
    out = collect_round(experiment, state["history"], items, observations, config)
    write_state(out_path, out["history"], out["status"])
    return out["next_trials"], bool(out["done"]), out["status"]


# --------------------------------------------------------------------------- lanes (hp-tune step lane-*)


def _lane_step(command: str, args: Sequence[str]) -> dict[str, Any]:
    """Run ``hp-tune step <command> <args>`` (the engine-independent lane step) and read its JSON result.

    Its stderr goes to this step's log; a non-zero exit (2: bad input, 3: the store unreachable,
    naming the host and the Secret) ends this step with the same code.
    """
    import subprocess
    import sys

    proc = subprocess.run(["hp-tune", "step", command, *args], capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(proc.returncode)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def lane_claim(experiment: str, storage: str, config: dict[str, Any], *, lane: str, run: str, depth: int,
               max_per_lane: int, lost_after: float | None = None) -> tuple[list[dict[str, Any]], str, bool, str]:
    """``lane-suggest`` for lane ``lane`` of run ``run``: (loop items: the one claimed trial or none, its
    name, whether the lane ends, why); ``lost_after``: its ``--lost-after`` (None: no trial is ever lost)."""
    lost = ["--lost-after", f"{lost_after:g}"] if lost_after else []
    out = _lane_step("lane-suggest", ["--experiment", experiment, "--storage", storage, "--lane", str(lane),
                                      "--run", run, "--depth", str(depth), "--max-per-lane", str(max_per_lane), *lost])
    if out["done"]:
        return [], "", True, out["reason"]
    return [_flat(out["trial"], config)], out["trial"]["name"], False, out["reason"]


def lane_record_trial(experiment: str, storage: str, name: str, observations: Sequence[Any]) -> dict[str, Any]:
    """``lane-record`` of trial ``name`` with the trial step's outputs (wrapper JSON, a bare objective
    value, or none: recorded Failed ``NoObservation``)."""
    objective = experiment_from(experiment).spec.objective.objective_metric_name
    obs = [o for o in (observation_of(v, objective) for v in observations or []) if o is not None]
    return _lane_step("lane-record", ["--experiment", experiment, "--storage", storage, "--name", name,
                                      "--observations", json.dumps([{**o, "name": name} for o in obs])])


def lane_results(experiment: str, storage: str) -> dict[str, Any]:
    """``lane-summary``: ``{"status", "done", "best": {name, parameters, objective}}`` from the store."""
    return _lane_step("lane-summary", ["--experiment", experiment, "--storage", storage])
