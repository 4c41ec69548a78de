"""``hp-tune status --target kfp RUN_ID --host URL``: a run's state, its trials so far and the best one.

Two sources, both behind ``--host`` (the KFP UI, ``svc/ml-pipeline-ui``, which serves the API and
proxies ML Metadata), kubeflow/pipelines 7b70c7b:

R1 ``GET <host>/apis/v2beta1/runs/<run_id>`` (backend/api/v2beta1/run.proto ``RunService.GetRun``):
   a ``Run`` with ``state`` (``RuntimeState``: PENDING, RUNNING, SUCCEEDED, SKIPPED, FAILED,
   CANCELING, CANCELED, PAUSED), ``created_at``, ``finished_at``, ``error``, ``pipeline_spec`` and
   ``run_details.task_details``. Those task details are the Argo Workflow's nodes
   (backend/src/apiserver/server/api_converter.go ``toModelTasks``, ``util.NodeStatus`` case): their
   ``display_name`` is the Argo node's, i.e. the IR *task key* (backend/src/v2/compiler/argocompiler/dag.go
   ``task(name, ...)``; ``<key>-driver`` for the driver pod, ``executor`` for the pod), their
   ``inputs``/``outputs`` are not filled from nodes ("TODO ... parse input and output artifacts"),
   and no parameter value is in this API.
R2 ML Metadata through grpc-web (:mod:`hp_components.kfp._mlmd`): every task's execution, named by
   ``taskInfo.name`` (our ``suggest``, ``trial``, ``collect``, ``report``), with its input and
   output parameter values. The trials and the best trial are replayed from the collect steps'
   own inputs (``trials``, the loop items, and ``observations``, in loop order) with
   :func:`hp_components.kfp._runtime.record_round`, what collect itself records, after the suggest
   step's ``history`` input; a batch not collected yet comes from the last step's
   ``next_trials``/``trials`` output, each item with its trial execution's state and observation.

A lanes run (``--lanes``) has no collect steps: its trials are the ``suggest`` steps' claims, judged
from their ``record`` steps' inputs and verdicts (:func:`_from_lane_executions`).

Without R2 (a ``--host`` that is the API server itself, or an older UI), the answer has the run's
state and the trial tasks counted from R1, ``best`` is None and ``best_note`` says why.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from typing import Any, Sequence

from hp_components.kfp._errors import KfpError

__all__ = ["read_status", "summarize_run"]

#: RuntimeState values that mean a run or task is over (run.proto RuntimeState)
FINISHED_STATES = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED")
#: ML Metadata Execution.State values that mean a task is over (metadata_store.proto Execution.State)
MLMD_FINISHED = ("COMPLETE", "FAILED", "CACHED", "CANCELED")


def _task_keys(run: dict[str, Any], display: str) -> set[str]:
    """The IR task keys (R1: the Argo node names) whose ``taskInfo.name`` is ``display``."""
    spec = run.get("pipeline_spec") or {}
    spec = spec.get("pipeline_spec", spec)  # a package with a platform spec is {pipeline_spec, platform_spec}
    keys = set()
    for comp in [spec.get("root") or {}, *(spec.get("components") or {}).values()]:
        for key, task in ((comp.get("dag") or {}).get("tasks") or {}).items():
            if (task.get("taskInfo") or {}).get("name") == display:
                keys.add(key)
    return keys


def _from_tasks(run: dict[str, Any]) -> dict[str, Any]:
    """Trial counts from R1's task details alone (no parameter values there)."""
    tasks = (run.get("run_details") or {}).get("task_details") or []
    trial_keys, collect_keys = _task_keys(run, "trial"), _task_keys(run, "collect")
    trials = [t for t in tasks if t.get("display_name") in trial_keys]
    states = Counter(str(t.get("state") or "RUNTIME_STATE_UNSPECIFIED") for t in trials)
    return {
        "trials": [{"name": t.get("task_id"), "condition": t.get("state"), "objectiveValue": None, "parameters": {}}
                   for t in trials],
        "trialCounts": {"started": len(trials), "finished": sum(n for s, n in states.items() if s in FINISHED_STATES),
                        "running": states.get("RUNNING", 0) + states.get("PENDING", 0),
                        "task_failed": states.get("FAILED", 0)},
        "rounds_collected": sum(1 for t in tasks if t.get("display_name") in collect_keys
                                and t.get("state") == "SUCCEEDED"),
    }


def _trial_name(execution: dict[str, Any]) -> str | None:
    """The trial a trial execution ran: its ``hp_trial`` input, or a launcher's ``trial`` item JSON."""
    from hp_components.kfp._fields import TRIAL_KEY

    inputs = execution["inputs"]
    if inputs.get(TRIAL_KEY):
        return str(inputs[TRIAL_KEY])
    try:
        return str(json.loads(inputs.get("trial") or "{}").get(TRIAL_KEY) or "") or None
    except (ValueError, AttributeError):
        return None


def _trial_counts(states: Counter[str]) -> dict[str, int]:
    """``trialCounts`` from the trial executions' ML Metadata states."""
    return {"started": sum(states.values()), "finished": sum(n for s, n in states.items() if s in MLMD_FINISHED),
            "running": states.get("RUNNING", 0) + states.get("NEW", 0), "task_failed": states.get("FAILED", 0)}


def _from_lane_executions(executions: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """A lanes run (``--lanes``, :mod:`hp_components.kfp._lanes`) replayed from its executions: each
    ``suggest``/``lane-end`` step's claimed trial (its ``trials`` output, one loop item), judged from its
    ``record`` step's ``observations`` input as ``lane-record`` judged it (its JSON output gives the
    store's verdict: a trial recorded lost stays lost), else from its trial execution (running, or its
    pod failed after its retries); Katib's status over them. None when the run is not a lanes run. The
    store is the full truth (``hp-tune report --storage URL``): another run's trials are not here."""
    from hp_components.kfp._fields import ITEM_KEY, TRIAL_KEY
    from hp_components.kfp._runtime import experiment_from, observation_of
    from hp_components.status import experiment_status
    from hp_components.steps import status_summary, trial_from_observation
    from hp_components.trials import Trial

    claims = [e for e in executions if e["display_name"] in ("suggest", "lane-end") and "storage" in e["inputs"]]
    if not claims:
        return None
    exp = experiment_from(claims[0]["inputs"]["experiment"])
    objective = exp.spec.objective.objective_metric_name
    items: dict[str, dict[str, Any]] = {}
    for c in claims:
        for item in (c.get("outputs") or {}).get("trials") or []:
            items.setdefault(str(item.get(TRIAL_KEY)), item)
    records = {str(e["inputs"].get("name")): e for e in executions
               if e["display_name"] == "record" and e["state"] in ("COMPLETE", "CACHED")}
    trial_runs = {_trial_name(e): e for e in executions if e["display_name"] == "trial"}
    trials: list[Trial] = []
    for name, item in items.items():
        record = item.get(ITEM_KEY) or {"name": name, "parameterAssignments": []}
        done, run = records.get(name), trial_runs.get(name)
        if done is not None:
            seen = [o for o in (observation_of(v, objective) for v in done["inputs"].get("observations") or [])
                    if o is not None]
            trial = trial_from_observation(exp, record, next((o for o in seen if o.get("name") in (None, name)), None))
            try:
                verdict = json.loads((done.get("outputs") or {}).get("Output") or "{}")
            except ValueError:
                verdict = {}
            if verdict.get("condition") and verdict["condition"] != trial.condition:
                trial = Trial(name=trial.name, assignments=trial.assignments, condition=verdict["condition"],
                              reason=verdict.get("reason") or "")
        else:
            failed = run is not None and run["state"] == "FAILED"
            trial = Trial(name=name, assignments={a["name"]: str(a["value"]) for a in record.get("parameterAssignments", [])},
                          condition="Running", reason="TrialPodFailed" if failed else "")
        trials.append(trial)
    status = experiment_status(exp, trials, suggestion_done=any(
        (c.get("outputs") or {}).get("done") for c in claims) and not any(t.active for t in trials))
    best = status.best
    return {
        "status": status_summary(status.to_dict()),
        "best": ({"name": best.name, "parameters": dict(best.assignments), "objective": best.objective_value}
                 if best is not None else None),
        "trials": [{"name": t.name, "condition": t.condition, "objectiveValue": t.objective_value,
                    "parameters": dict(t.assignments), **({"reason": t.reason} if t.reason else {})} for t in trials],
        "trialCounts": _trial_counts(Counter(e["state"] for e in trial_runs.values())),
        "rounds_collected": None,
        "lanes": {"trials_recorded": len(records),
                  "ended": sum(bool((c.get("outputs") or {}).get("done")) for c in claims)},
        "report": next((e["state"] for e in executions if e["display_name"] == "summary"), None),
    }


def _from_executions(executions: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Trials, Katib's status and the best trial replayed from the run's executions (R2); a lanes run
    by :func:`_from_lane_executions`."""
    lanes = _from_lane_executions(executions)
    if lanes is not None:
        return lanes
    from hp_components.kfp._fields import ITEM_KEY, TRIAL_KEY
    from hp_components.kfp._runtime import experiment_from, observation_of, record_round
    from hp_components.steps import status_summary, trial_from_observation
    from hp_components.trials import load_history

    def named(name: str) -> list[dict[str, Any]]:
        return [e for e in executions if e["display_name"] == name]

    steps = named("suggest") + named("collect") + named("report")
    spec = next((e["inputs"]["experiment"] for e in steps if e["inputs"].get("experiment")), None)
    if spec is None:
        return None
    exp = experiment_from(spec)
    suggest = next((e for e in named("suggest")), None)
    history: list[dict[str, Any]] = list((suggest or {}).get("inputs", {}).get("history") or [])
    recorded = None
    collects = [e for e in named("collect") if e["state"] in ("COMPLETE", "CACHED")]
    rounds = 0
    for c in collects:  # oldest first: the rounds run one after the other
        if c["inputs"].get("done"):
            continue  # a skipped round passes the state on
        recorded = record_round(exp, history, c["inputs"].get("trials") or [], c["inputs"].get("observations") or [])
        history, rounds = recorded["history"], rounds + 1
    last = collects[-1]["outputs"] if collects else (suggest or {}).get("outputs") or {}
    pending = [] if last.get("done") else list(last.get("next_trials", last.get("trials")) or [])
    trial_runs = {_trial_name(e): e for e in named("trial")}
    rows = [{"name": t.name, "condition": t.condition, "objectiveValue": t.objective_value,
             "parameters": dict(t.assignments)} for t in load_history(history)]
    objective = exp.spec.objective.objective_metric_name
    for item in pending:  # the batch in flight: each trial's own execution, if it has one yet
        run = trial_runs.get(str(item.get(TRIAL_KEY)))
        record = item.get(ITEM_KEY) or {"name": item.get(TRIAL_KEY), "parameterAssignments": []}
        row = {"name": str(record["name"]), "condition": "Created", "objectiveValue": None,
               "parameters": {a["name"]: str(a["value"]) for a in record.get("parameterAssignments", [])}}
        if run is not None and run["state"] in ("COMPLETE", "CACHED") and "observation" in run["outputs"]:
            t = trial_from_observation(exp, record, observation_of(run["outputs"]["observation"], objective))
            row.update(condition=t.condition, objectiveValue=t.objective_value)
        elif run is not None:
            row["condition"] = "Running" if run["state"] in ("NEW", "RUNNING") else "Failed"
        rows.append(row)
    states = Counter(e["state"] for e in named("trial"))
    best = (recorded or {}).get("best") or {}
    report = next((e for e in named("report")), None)
    return {
        "status": status_summary(recorded["status"]) if recorded else None,
        "best": ({"name": best["name"], "parameters": best["parameters"], "objective": best["objective"]}
                 if best.get("name") else None),
        "trials": rows,
        "trialCounts": _trial_counts(states),
        "rounds_collected": rounds,
        "report": (report or {}).get("state"),
    }


def summarize_run(run: dict[str, Any], executions: Sequence[dict[str, Any]] | None = None,
                  mlmd_error: str | None = None) -> dict[str, Any]:
    """What ``hp-tune status`` prints for a v2beta1 ``Run`` (R1) and its ML Metadata executions (R2).

    The drivers' common keys (:data:`hp_components.drivers.STATUS_KEYS`) plus ``run_id``,
    ``state``, ``created_at``, ``finished_at``, ``trialCounts`` (trial tasks), ``rounds_collected``,
    ``report`` and, when the best trial is unknown, ``best_note``.
    """
    out: dict[str, Any] = {
        "run_id": run.get("run_id"), "name": run.get("display_name"), "state": run.get("state"),
        "created_at": run.get("created_at"), "finished_at": run.get("finished_at"),
        "phase": run.get("state"), "done": run.get("state") in FINISHED_STATES,
        "status": None, "best": None, "report": None,
    }
    replayed = _from_executions(executions) if executions else None
    if replayed is not None:
        out.update(replayed)
    else:
        out.update(_from_tasks(run))
    if out["best"] is None:
        out["best_note"] = (f"ML Metadata could not be read ({mlmd_error}); give --host the KFP UI's address "
                            "(kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80), which proxies it"
                            if mlmd_error else "no trial has been collected yet")
    if run.get("error"):
        out["error"] = (run["error"] or {}).get("message") or run["error"]
    return out


def read_status(run_id: str, *, host: str | None = None, token: str | None = None, timeout: float = 30.0,
                **_: Any) -> dict[str, Any]:
    """The run's state, trials so far and best trial (R1 then R2 on ``host``)::

        read_status("3f1c...", host="http://localhost:8080")["best"]   # {name, parameters, objective}
    """
    from hp_components.kfp._mlmd import MlmdUnavailable, run_executions

    if not host:
        raise KfpError("--host: give the KFP API endpoint (e.g. http://localhost:8080 after "
                       "kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80)")
    url = f"{host.rstrip('/')}/apis/v2beta1/runs/{urllib.request.quote(run_id, safe='')}"
    request = urllib.request.Request(url, headers={"Accept": "application/json",
                                                   **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            run = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        raise KfpError(f"run {run_id!r}: the KFP API at {host} answered {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise KfpError(f"--host {host}: cannot reach the KFP API ({e})") from None
    except json.JSONDecodeError:
        raise KfpError(f"run {run_id!r}: the KFP API at {host} did not answer JSON") from None
    if not isinstance(run, dict):
        raise KfpError(f"run {run_id!r}: unexpected answer from {host}")
    try:
        executions, error = run_executions(host, str(run.get("run_id") or run_id), token=token, timeout=timeout), None
    except MlmdUnavailable as e:
        executions, error = None, str(e)
    return summarize_run(run, executions, error)
