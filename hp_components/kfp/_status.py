"""``hp-tune status --target kfp RUN_ID --host URL``: a run's state and its trials so far, from the KFP API.

The contract (docs/kfp-contract.md, "Reading a run"): ``GET <host>/apis/v2beta1/runs/<run_id>``
(backend/api/v2beta1/run.proto ``RunService.GetRun``, kubeflow/pipelines 7b70c7b) returns a
``Run`` with ``state`` (``RuntimeState``: PENDING, RUNNING, SUCCEEDED, SKIPPED, FAILED, CANCELING,
CANCELED, PAUSED), ``created_at``, ``finished_at``, ``error`` and ``run_details.task_details``, a
list of ``PipelineTaskDetail`` (``display_name``, ``state``, ``start_time``, ``end_time``, ...).
Our trial tasks are displayed as ``trial``, the collect steps as ``collect`` (one per round that
ran), the last step as ``report``. A task detail carries artifact ids only, no parameter values
(those stay in ML Metadata), so the best trial is not in this API: it is reported as unknown here
and shown by the report step (its Markdown/HTML and Metrics artifacts, and the run's outputs in the UI).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

from hp_components.kfp._errors import KfpError

__all__ = ["read_status", "summarize_run"]

#: RuntimeState values that mean a task is over (run.proto RuntimeState)
FINISHED_STATES = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED")


def summarize_run(run: dict[str, Any]) -> dict[str, Any]:
    """What ``hp-tune status`` prints for a v2beta1 ``Run`` (see the module docstring)."""
    tasks = (run.get("run_details") or {}).get("task_details") or []
    trials = Counter(str(t.get("state") or "RUNTIME_STATE_UNSPECIFIED") for t in tasks if t.get("display_name") == "trial")
    rounds = sum(1 for t in tasks if t.get("display_name") == "collect" and t.get("state") == "SUCCEEDED")
    report = next((t for t in tasks if t.get("display_name") == "report"), None)
    out: dict[str, Any] = {
        "run_id": run.get("run_id"),
        "name": run.get("display_name"),
        "state": run.get("state"),
        "created_at": run.get("created_at"),
        "finished_at": run.get("finished_at"),
        # the drivers' common keys (hp_components.drivers.STATUS_KEYS): a run's tasks carry no parameter
        # values or observations, so each trial row has its task's state only
        "phase": run.get("state"),
        "done": run.get("state") in FINISHED_STATES,
        "status": None,
        "trials": [{"name": t.get("task_id"), "condition": t.get("state"), "objectiveValue": None, "parameters": {}}
                   for t in tasks if t.get("display_name") == "trial"],
        "trialCounts": {
            "started": sum(trials.values()),
            "finished": sum(n for s, n in trials.items() if s in FINISHED_STATES),
            "running": trials.get("RUNNING", 0) + trials.get("PENDING", 0),
            # a trial task that failed is an infrastructure fault (after its retries); a training
            # failure is a SUCCEEDED task whose observation says Failed
            "task_failed": trials.get("FAILED", 0),
        },
        "rounds_collected": rounds,
        "report": (report or {}).get("state"),
        "best": None,
        "best_note": "the KFP run API has no parameter values; see the report step's Markdown/HTML in the KFP UI",
    }
    if run.get("error"):
        out["error"] = (run["error"] or {}).get("message") or run["error"]
    return out


def read_status(run_id: str, *, host: str | None = None, token: str | None = None, timeout: float = 30.0,
                **_: Any) -> dict[str, Any]:
    """The run's state and trials so far (``GET /apis/v2beta1/runs/<run_id>`` on ``host``)."""
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
    return summarize_run(run)
