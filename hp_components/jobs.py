"""A trial as a Kubernetes job: create it, wait for Katib's conditions, collect metrics, clean up.

This is how a trial whose ``trialSpec`` is a ``batch/v1 Job`` or a Kubeflow training job
(``PyTorchJob``, ``TFJob``, ``MPIJob``, ``XGBoostJob``) runs on a cluster. The KFP driver runs
:func:`launch` in its launcher step (create, wait, collect, delete); the Argo driver creates the
job with a ``resource`` template and runs :func:`launch` with ``create=False`` afterwards. ::

    from hp_components.jobs import KubeJobs, launch
    result = launch(exp, "mnist-0003", {"learningRate": "0.01"}, KubeJobs.from_environment(), namespace="kubeflow")
    result["condition"], result["objectiveValue"]        # ("Succeeded", 0.98), like the metrics wrapper's result

The outcome follows Katib: the experiment's ``failureCondition`` and ``successCondition`` (GJSON,
see :mod:`hp_components.conditions`) are evaluated on the job object, failure first. Metrics come
from the log of the primary container in the primary pod: pods labelled with the trial's name
(:data:`TRIAL_LABEL`, added to every pod template) and ``primaryPodLabels``. A job still running at
its ``activeDeadlineSeconds`` (plus a grace period) is ``Failed`` with reason ``DeadlineExceeded``.
The job is deleted when the trial ends (also when the step is stopped with SIGTERM) unless
``trialTemplate.retain`` is set. Only the StdOut collector can work here (Katib reads files with a
sidecar we do not inject), which :func:`check_job_trial` says at compile time.

The Kubernetes calls this module makes, and what it expects back, are written down in
docs/kubernetes-contract.md; tests run them against a fake API server that honours it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from hp_components.conditions import job_outcome
from hp_components.experiment import KUBEFLOW_JOB_KINDS, Experiment, trial_collector
from hp_components.metrics import LineSplitter, Outcome, judge, objective_value
from hp_components.template import deadline, render_values

__all__ = ["TRIAL_LABEL", "EXPERIMENT_LABEL", "JOB_KINDS", "KubeJobs", "launch", "trial_manifest", "pod_templates",
           "primary_pod_selector", "resource_path", "label_job", "check_job_trial", "JobTrialError",
           "created_as_job", "replica_specs",
           "default_namespace"]

#: label on every pod of a trial's job (and the job): the trial's name
TRIAL_LABEL = "hp-components/trial"
#: label on every pod of a trial's job (and the job): the experiment's name
EXPERIMENT_LABEL = "hp-components/experiment"
#: (apiVersion, kind) of the jobs a trial can be on a cluster
JOB_KINDS = (("batch/v1", "Job"),) + tuple(("kubeflow.org/v1", k) for k in KUBEFLOW_JOB_KINDS if k != "TrainJob")
#: seconds a job may run past its activeDeadlineSeconds before the launcher gives up on it
DEADLINE_GRACE = 60.0


class JobTrialError(ValueError):
    """A trialSpec that cannot run as a job here: ``field`` names the part of the experiment."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


def created_as_job(exp: Experiment) -> bool:
    """True when a pipeline step creates the trial as a Kubernetes job: every trialSpec kind but a
    ``batch/v1 Job``, which the KFP and Argo drivers run as the trial step's own pod."""
    ts = exp.spec.trial_template.trial_spec or {}
    return (ts.get("apiVersion"), ts.get("kind")) != ("batch/v1", "Job")


def check_job_trial(exp: Experiment) -> None:
    """Raise :class:`JobTrialError` for a trialSpec a cluster driver cannot run as a job."""
    ts = exp.spec.trial_template.trial_spec or {}
    if (ts.get("apiVersion"), ts.get("kind")) not in JOB_KINDS:
        kinds = ", ".join(f"{a} {k}" for a, k in JOB_KINDS)
        raise JobTrialError("spec.trialTemplate.trialSpec.kind",
                            f"{ts.get('apiVersion')}/{ts.get('kind')} is not supported on a cluster; use one of: {kinds}")
    if exp.spec.metrics_collector_spec.collector.kind != "StdOut":
        raise JobTrialError("spec.metricsCollectorSpec.collector.kind",
                            f"a {ts.get('kind')} trial reports metrics through its primary pod's log: use StdOut "
                            "(print 'name=value' lines); the File collector needs Katib's sidecar")


def resource_path(manifest: dict[str, Any]) -> tuple[str, str, str]:
    """``(group, version, plural)`` of a job manifest: ``batch/v1 Job`` -> ``("batch", "v1", "jobs")``."""
    group, _, version = str(manifest.get("apiVersion", "")).rpartition("/")
    return group, version, f"{str(manifest.get('kind', '')).lower()}s"


def replica_specs(manifest: dict[str, Any]) -> dict[str, Any]:
    """A training job's replica type -> replica spec (``spec.pytorchReplicaSpecs`` ...); {} for a Job."""
    spec = manifest.get("spec") or {}
    return next((v for k, v in spec.items() if k.endswith("ReplicaSpecs") and isinstance(v, dict)), {})


def pod_templates(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every pod template in a job (``spec.template``, each replica's ``template``)."""
    spec = manifest.get("spec") or {}
    if isinstance(spec.get("template"), dict):
        yield spec["template"]
    for replica in replica_specs(manifest).values():
        if isinstance(replica, dict) and isinstance(replica.get("template"), dict):
            yield replica["template"]


def _label(obj: dict[str, Any], labels: dict[str, str]) -> None:
    obj["metadata"] = {**(obj.get("metadata") or {})}
    obj["metadata"]["labels"] = {**(obj["metadata"].get("labels") or {}), **labels}


def label_job(manifest: dict[str, Any], experiment: str, trial: str) -> dict[str, Any]:
    """``manifest`` with the trial and experiment labels on the job and on every pod template (in place)."""
    labels = {EXPERIMENT_LABEL: experiment, TRIAL_LABEL: trial}
    _label(manifest, labels)
    for template in pod_templates(manifest):
        _label(template, labels)
    return manifest


def trial_manifest(exp: Experiment, trial_name: str, values: dict[str, str], namespace: str | None = None) -> dict[str, Any]:
    """The job to create for a trial: the rendered trialSpec, named after the trial, labelled."""
    manifest = label_job(render_values(exp, trial_name, values), exp.name, trial_name)
    if namespace:
        manifest["metadata"]["namespace"] = namespace
    return manifest


def primary_pod_selector(exp: Experiment, trial_name: str) -> str:
    """The label selector of the pods whose primary container's log has the trial's metrics."""
    labels = {TRIAL_LABEL: trial_name, **(exp.spec.trial_template.primary_pod_labels or {})}
    return ",".join(f"{k}={v}" for k, v in labels.items())


@dataclass
class KubeJobs:
    """The few Kubernetes API calls a job trial needs, through the official ``kubernetes`` client."""

    api: Any  # kubernetes.client.ApiClient

    @classmethod
    def from_environment(cls) -> "KubeJobs":
        """In a pod: its service account; elsewhere: the kubeconfig (``KUBECONFIG`` or ~/.kube/config)."""
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # read now, not at import
        return cls(client.ApiClient())

    def _objects(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    def create(self, manifest: dict[str, Any], namespace: str) -> bool:
        """Create the job; False if a job of that name exists already (a retried step adopts it)."""
        from kubernetes.client.exceptions import ApiException

        group, version, plural = resource_path(manifest)
        try:
            self._objects().create_namespaced_custom_object(group, version, namespace, plural, manifest)
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        return True

    def get(self, manifest: dict[str, Any], namespace: str) -> dict[str, Any] | None:
        """The job as the API server has it now; None once it is gone."""
        from kubernetes.client.exceptions import ApiException

        group, version, plural = resource_path(manifest)
        try:
            return self._objects().get_namespaced_custom_object(group, version, namespace, plural, manifest["metadata"]["name"])
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def delete(self, manifest: dict[str, Any], namespace: str) -> None:
        """Delete the job and, in the background, its pods (a Job's pods would be orphaned by default)."""
        from kubernetes.client.exceptions import ApiException

        group, version, plural = resource_path(manifest)
        try:
            self._objects().delete_namespaced_custom_object(group, version, namespace, plural, manifest["metadata"]["name"],
                                                            propagation_policy="Background")
        except ApiException as e:
            if e.status != 404:
                raise

    def primary_log(self, selector: str, container: str, namespace: str) -> tuple[str | None, str]:
        """``(log, pod name)`` of the primary pod (a succeeded one first, else the newest); None if none."""
        from kubernetes.client.exceptions import ApiException

        pods = self._core().list_namespaced_pod(namespace, label_selector=selector).items
        if not pods:
            return None, ""
        pods.sort(key=lambda p: (p.status is not None and p.status.phase == "Succeeded",
                                 p.metadata.creation_timestamp is not None and p.metadata.creation_timestamp.timestamp()))
        pod = pods[-1].metadata.name
        try:
            return self._core().read_namespaced_pod_log(pod, namespace, container=container), pod
        except ApiException as e:
            if e.status in (400, 404):  # the container never started, or the pod is gone
                return None, pod
            raise


def default_namespace() -> str:
    """The namespace of the pod this runs in, else the kubeconfig context's, else ``default``."""
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace", encoding="utf-8") as fh:
            return fh.read().strip() or "default"
    except OSError:
        pass
    try:
        from kubernetes import config

        _, context = config.list_kube_config_contexts(config_file=os.environ.get("KUBECONFIG"))
        return str((context or {}).get("context", {}).get("namespace") or "default")
    except Exception:  # no kubeconfig: the API call will say so
        return "default"


class _Stopped(Exception):
    """SIGTERM reached the launcher: the pipeline step is being stopped."""


def _raise_stopped(*_: Any) -> None:
    raise _Stopped()


def _result(name: str, outcome: Outcome, metrics: list[Any] | None = None, value: float | None = None) -> dict[str, Any]:
    return {"name": name, **outcome._asdict(), "exitCode": None, "metrics": metrics or [], "objectiveValue": value}


def _metrics(exp: Experiment, log: str) -> tuple[list[Any], float | None]:
    """The metrics in the primary container's log (job trials use the StdOut collector: check_job_trial)."""
    collecting = trial_collector(exp)
    lines = LineSplitter()
    for line in [*lines.feed(log.encode("utf-8", "surrogateescape")), lines.flush()]:
        collecting.feed_output(line)
    observation = collecting.observation()
    name = exp.spec.objective.objective_metric_name
    return observation["metrics"], objective_value(observation, name, exp.spec.objective.strategies()[name])


def _detail(detail: Any) -> str:
    if not isinstance(detail, dict):
        return ""
    return ": ".join(str(detail[k]) for k in ("reason", "message") if detail.get(k))


def _wait(jobs: KubeJobs, exp: Experiment, manifest: dict[str, Any], namespace: str, poll: float,
          timeout: float | None, sleep: Callable[[float], None]) -> dict[str, Any]:
    """Poll the job until a condition holds: the facts for :func:`~hp_components.metrics.judge` ({} = succeeded)."""
    tt = exp.spec.trial_template
    started = time.monotonic()
    while True:
        job = jobs.get(manifest, namespace)
        if job is None:
            return {"failure": ("JobDeleted", "the job was deleted before it finished")}
        outcome, detail = job_outcome(job, tt.success_condition, tt.failure_condition)
        if outcome == "Failed":
            return {"failure": ("TrialFailed", _detail(detail) or "the job's failureCondition holds")}
        if outcome == "Succeeded":
            return {}
        if timeout is not None and time.monotonic() - started > timeout:
            return {"timed_out": timeout}
        sleep(poll)


def launch(exp: Experiment, trial_name: str, values: dict[str, str], jobs: KubeJobs, *, namespace: str,
           create: bool = True, poll: float = 5.0, timeout: float | None = None,
           sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Run one trial as a job and return its result (the metrics wrapper's shape, plus ``name``).

    ``values`` maps trialParameter names to this trial's values. ``create=False`` waits for a job
    someone else created (Argo's resource step). ``timeout`` defaults to the trialSpec's
    ``activeDeadlineSeconds`` plus :data:`DEADLINE_GRACE` (no limit without one).
    """
    check_job_trial(exp)
    tt = exp.spec.trial_template
    manifest = trial_manifest(exp, trial_name, values, namespace)
    if timeout is None:
        limit = deadline(manifest)
        timeout = limit + DEADLINE_GRACE if limit else None
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_stopped) if main else None
    try:
        if create:
            jobs.create(manifest, namespace)
        facts = _wait(jobs, exp, manifest, namespace, poll, timeout, sleep)
        log, pod = jobs.primary_log(primary_pod_selector(exp, trial_name), tt.primary_container_name, namespace)
    except _Stopped:
        facts, log = {"failure": ("Killed", "the trial step was stopped")}, None
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        if not tt.retain:
            jobs.delete(manifest, namespace)
    objective = exp.spec.objective.objective_metric_name
    if log is None:
        note = f"no primary pod ({primary_pod_selector(exp, trial_name)}) with a log"
        return _result(trial_name, judge(objective=objective, value=None, note=note, **facts))
    metrics, value = _metrics(exp, log)
    outcome = judge(objective=objective, value=value, note=f"read from the log of pod {pod}", **facts)
    return _result(trial_name, outcome, metrics, value)
