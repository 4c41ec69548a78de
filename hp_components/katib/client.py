"""``KatibClient`` on this machine: Katib's SDK calls (kubeflow/katib/api/katib_client.py) over the local store.

``tune`` builds the experiment with :func:`hp_components.build_experiment` (the objective runs in
its own process per trial) and runs it with :func:`hp_components.run_local`; the other calls read
the experiment and its trials back from the Optuna store. ``tune`` returns when the experiment
is done (Katib's returns once the Experiment is created; its ``wait_for_experiment_condition``
then finds it already finished here)::

    from hp_components import katib

    def objective(parameters):
        print(f"loss={(parameters['x'] - 1) ** 2}")

    client = katib.KatibClient(storage="sqlite:///hp.db")
    client.tune(name="quadratic", objective=objective, parameters={"x": katib.search.double(-3, 3)},
                objective_metric_name="loss", objective_type="minimize", max_trial_count=6)
    client.wait_for_experiment_condition(name="quadratic")
    print(client.get_optimal_hyperparameters("quadratic"))

Returned objects are dataclasses with the field names of Katib's models (``V1beta1...``).
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import optuna

from hp_components.experiment import Experiment, ExperimentSpec, SpecError, parse_experiment
from hp_components.katib.report import PUSH_FILTER
from hp_components.katib.search import ParameterSpec
from hp_components.local import RunnerError, run_local
from hp_components.status import experiment_status
from hp_components.store import DEFAULT_STORAGE, ExperimentStore, StoreConflict, load_finished
from hp_components.suggest import suggest
from hp_components.trials import Trial

__all__ = [
    "KatibClient", "ObjectMeta", "ExperimentCondition", "Metric", "Observation", "ParameterAssignment",
    "OptimalTrial", "ExperimentStatus", "KatibExperiment", "TrialCondition", "TrialStatus", "TrialSpec",
    "KatibTrial", "MetricLog", "MetricValue",
]

#: Katib's tune defaults (katib_client.py; parallelTrialCount 3 is its webhook's default)
DEFAULT_ALGORITHM = "random"
DEFAULT_PARALLEL_TRIAL_COUNT = 3
DEFAULT_BASE_IMAGE = "docker.io/pytorch/pytorch:2.5.0-cuda12.4-cudnn9-runtime"


# --------------------------------------------------------------------------- Katib's models, as dataclasses


@dataclass
class ObjectMeta:
    name: str
    namespace: str = "default"


@dataclass
class ExperimentCondition:
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str | None = None
    last_update_time: str | None = None


@dataclass
class Metric:
    name: str
    min: str | None = None
    max: str | None = None
    latest: str | None = None


@dataclass
class Observation:
    metrics: List[Metric] = field(default_factory=list)


@dataclass
class ParameterAssignment:
    name: str
    value: str


@dataclass
class OptimalTrial:
    best_trial_name: str
    parameter_assignments: List[ParameterAssignment]
    observation: Observation


@dataclass
class ExperimentStatus:
    conditions: List[ExperimentCondition]
    current_optimal_trial: OptimalTrial
    start_time: str | None = None
    completion_time: str | None = None
    trials: int = 0
    trials_succeeded: int = 0
    trials_failed: int = 0
    trials_running: int = 0
    trials_pending: int = 0
    trials_killed: int = 0
    trials_early_stopped: int = 0
    trials_metrics_unavailable: int = 0


@dataclass
class KatibExperiment:
    """Katib's ``V1beta1Experiment``: ``spec`` is the validated spec (snake_case fields, as Katib's model)."""

    metadata: ObjectMeta
    spec: ExperimentSpec
    status: ExperimentStatus
    api_version: str = "kubeflow.org/v1beta1"
    kind: str = "Experiment"


@dataclass
class TrialCondition:
    type: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass
class TrialSpec:
    parameter_assignments: List[ParameterAssignment]


@dataclass
class TrialStatus:
    conditions: List[TrialCondition]
    observation: Observation
    start_time: str | None = None
    completion_time: str | None = None


@dataclass
class KatibTrial:
    metadata: ObjectMeta
    spec: TrialSpec
    status: TrialStatus


@dataclass
class MetricValue:
    name: str
    value: str


@dataclass
class MetricLog:
    """One reported value (Katib's ``api_pb2.MetricLog``): ``time_stamp`` is empty here, ``metric`` the value."""

    time_stamp: str
    metric: MetricValue


def _observation(raw: dict[str, Any] | None) -> Observation:
    return Observation([Metric(m.get("name", ""), m.get("min"), m.get("max"), m.get("latest"))
                        for m in (raw or {}).get("metrics", [])])


def _assignments(trial: Trial) -> List[ParameterAssignment]:
    return [ParameterAssignment(k, v) for k, v in trial.assignments.items()]


def _katib_trial(trial: Trial, namespace: str) -> KatibTrial:
    return KatibTrial(
        ObjectMeta(trial.name, namespace), TrialSpec(_assignments(trial)),
        TrialStatus([TrialCondition(trial.condition, "True", trial.reason, trial.message)],
                    _observation(trial.observation), trial.start_time, trial.completion_time))


# --------------------------------------------------------------------------- tune's inputs


def _parameters(parameters: Dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Katib's ``parameters``: search specs are tuned; a number or string is a fixed input (min == max)."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in parameters.items():
        if isinstance(value, ParameterSpec):
            out[name] = value.to_katib()
        elif isinstance(value, bool) or isinstance(value, str):
            out[name] = {"parameterType": "categorical", "feasibleSpace": {"list": [str(value)]}}
        elif isinstance(value, int):
            out[name] = {"parameterType": "int", "feasibleSpace": {"min": str(value), "max": str(value)}}
        elif isinstance(value, float):
            out[name] = {"parameterType": "double", "feasibleSpace": {"min": repr(value), "max": repr(value)}}
        else:
            raise ValueError(f"parameters[{name!r}]: use katib.search.double/int/categorical, or a number or string "
                             f"as a fixed input, not {type(value).__name__}")
    return out


def _settings(algorithm_settings: Any) -> dict[str, str]:
    if algorithm_settings is None:
        return {}
    if isinstance(algorithm_settings, dict):
        return {str(k): str(v) for k, v in algorithm_settings.items()}
    out = {}
    for s in algorithm_settings:
        name, value = (s["name"], s["value"]) if isinstance(s, dict) else (s.name, s.value)
        out[str(name)] = str(value)
    return out


def _env(env_per_trial: Any) -> list[dict[str, str]]:
    if not env_per_trial:
        return []
    if isinstance(env_per_trial, dict):
        return [{"name": str(k), "value": str(v)} for k, v in env_per_trial.items()]
    out = []
    for item in env_per_trial:
        name = item.get("name") if isinstance(item, dict) else getattr(item, "name", None)
        value = item.get("value") if isinstance(item, dict) else getattr(item, "value", None)
        if not name or value is None:
            raise ValueError(f"env_per_trial: {item!r} needs a name and a value (envFrom sources need a cluster)")
        out.append({"name": str(name), "value": str(value)})
    return out


def _resources(resources_per_trial: Any) -> dict[str, Any] | None:
    if resources_per_trial is None:
        return None
    if not isinstance(resources_per_trial, dict):
        raise ValueError("resources_per_trial: give a dict like {'cpu': '1', 'memory': '2Gi', 'gpu': 1}")
    keys = {"cpu": "cpu", "memory": "memory", "gpu": "nvidia.com/gpu"}
    unknown = set(resources_per_trial) - set(keys)
    if unknown:
        raise ValueError(f"resources_per_trial: {', '.join(sorted(unknown))} not known; use cpu, memory and gpu")
    limits = {keys[k]: str(v) for k, v in resources_per_trial.items()}
    return {"requests": dict(limits), "limits": limits}


def _installed(requirement: str) -> bool:
    """True when ``requirement`` (``name`` or ``name==1.2``, ``name>=1``...) is satisfied in this environment."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return False
    try:
        req = Requirement(requirement)
        version = importlib.metadata.version(req.name)
    except Exception:  # noqa: BLE001 - unparsable or not installed: pip decides
        return False
    return req.specifier.contains(version, prereleases=True)


def install_packages(packages: List[str], target: Path, index_urls: List[str]) -> Path | None:
    """Install the packages trials need into ``target`` (their PYTHONPATH); None when all are here already.

    Katib installs ``packages_to_install`` with pip in each trial's container; locally the trials
    share this Python, so missing packages go into a folder of the experiment that only its
    trials import from. Raises ValueError with pip's reason when pip fails.
    """
    missing = [p for p in packages if not _installed(p)]
    if not missing:
        return None
    target.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(target)]
    for i, url in enumerate(index_urls):
        argv += ["--index-url" if i == 0 else "--extra-index-url", url]
    res = subprocess.run(argv + missing, capture_output=True, text=True)
    if res.returncode != 0:
        reason = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ValueError(f"packages_to_install: pip could not install {', '.join(missing)} for the trials: {reason}. "
                         "Install them into this Python yourself, or fix the names or pip_index_urls")
    return target


# --------------------------------------------------------------------------- the client


class KatibClient:
    """Katib's ``KatibClient`` over a local store (``storage``: an Optuna RDB URL; trials under ``run_dir``).

    ``config_file``, ``context`` and ``client_configuration`` are Katib's Kubernetes settings;
    nothing here talks to a cluster, so they are accepted and not used.
    """

    def __init__(self, config_file: str | None = None, context: str | None = None,
                 client_configuration: Any = None, namespace: str = "default", *,
                 storage: str = DEFAULT_STORAGE, run_dir: str | os.PathLike[str] = "hp-runs"):
        self.namespace = namespace
        self.storage = storage
        self.run_dir = Path(run_dir)

    # ------------------------------------------------------------------ creating

    def tune(
        self,
        name: str,
        objective: Optional[Callable] = None,
        base_image: str = DEFAULT_BASE_IMAGE,
        parameters: Optional[Dict[str, Any]] = None,
        namespace: Optional[str] = None,
        env_per_trial: Any = None,
        algorithm_name: str = DEFAULT_ALGORITHM,
        algorithm_settings: Any = None,
        objective_metric_name: Optional[str] = None,
        additional_metric_names: Optional[List[str]] = None,
        objective_type: str = "maximize",
        objective_goal: Optional[float] = None,
        max_trial_count: Optional[int] = None,
        parallel_trial_count: Optional[int] = None,
        max_failed_trial_count: Optional[int] = None,
        resources_per_trial: Any = None,
        retain_trials: bool = False,
        packages_to_install: Optional[List[str]] = None,
        pip_index_urls: Optional[List[str]] = None,
        metrics_collector_config: Optional[Dict[str, Any]] = None,
        trial_active_deadline_seconds: Optional[int] = None,
        **unsupported: Any,
    ) -> None:
        """Create the experiment and run it here until it is done (Katib's ``tune`` for a function objective).

        Raises ValueError for a bad argument (naming it) and RuntimeError when an experiment of
        that name already exists (as Katib does; delete it first).
        """
        if unsupported:
            raise ValueError(f"{', '.join(sorted(unsupported))}: the LLM fine-tuning arguments of Katib's tune "
                             "(model/dataset providers, trainer parameters, storage_config) need a cluster; "
                             "pass an objective function")
        if not name or objective is None or not parameters or objective_metric_name is None:
            raise ValueError("name, objective, parameters and objective_metric_name must be set (as in Katib)")
        namespace = namespace or self.namespace
        if self._exists(name):
            raise RuntimeError(f"Failed to create Katib Experiment: {namespace}/{name} already exists in "
                               f"{self.storage}; delete it with delete_experiment({name!r}) first")
        collector = (metrics_collector_config or {"kind": "StdOut"}).get("kind", "StdOut")
        if collector not in ("StdOut", "Push"):
            raise ValueError(f"metrics_collector_config: kind {collector!r} is not supported; use StdOut or Push "
                             "(the collectors Katib's tune supports)")
        try:
            experiment = self._build(name, namespace, objective, parameters, base_image, env_per_trial,
                                     algorithm_name, algorithm_settings, objective_metric_name,
                                     additional_metric_names, objective_type, objective_goal, max_trial_count,
                                     parallel_trial_count, max_failed_trial_count, resources_per_trial,
                                     retain_trials, packages_to_install, pip_index_urls, collector,
                                     trial_active_deadline_seconds)
        except SpecError as e:
            message = str(e).replace("spec.trialTemplate.trialSpec.spec.activeDeadlineSeconds",
                                     "trial_active_deadline_seconds")
            raise ValueError(f"the experiment is not valid:\n{message}") from None
        run_local(experiment, storage=self.storage, run_dir=self.run_dir, python=sys.executable)

    def _build(self, name, namespace, objective, parameters, base_image, env_per_trial, algorithm_name,
               algorithm_settings, objective_metric_name, additional_metric_names, objective_type,
               objective_goal, max_trial_count, parallel_trial_count, max_failed_trial_count,
               resources_per_trial, retain_trials, packages_to_install, pip_index_urls, collector,
               trial_active_deadline_seconds) -> Experiment:
        from hp_components import build_experiment

        base = build_experiment(
            objective, _parameters(parameters), objective_metric_name=objective_metric_name,
            objective_type=objective_type, additional_metric_names=additional_metric_names or None,
            goal=objective_goal, max_trial_count=max_trial_count,
            parallel_trial_count=parallel_trial_count or DEFAULT_PARALLEL_TRIAL_COUNT,
            max_failed_trial_count=max_failed_trial_count, algorithm_name=algorithm_name,
            algorithm_settings=_settings(algorithm_settings), name=name, base_image=base_image)
        data = base.to_dict()
        data["metadata"]["namespace"] = namespace
        spec = data["spec"]
        template = spec["trialTemplate"]
        template["retain"] = bool(retain_trials)
        job = template["trialSpec"]["spec"]
        if trial_active_deadline_seconds is not None:
            job["activeDeadlineSeconds"] = trial_active_deadline_seconds
        container = job["template"]["spec"]["containers"][0]
        env = _env(env_per_trial)
        if packages_to_install:
            folder = install_packages(list(packages_to_install), self.run_dir / name / "site-packages",
                                      list(pip_index_urls or ["https://pypi.org/simple"]))
            if folder is not None:
                inherited = os.environ.get("PYTHONPATH", "")
                env.append({"name": "PYTHONPATH", "value": os.pathsep.join(
                    p for p in (str(folder.resolve()), inherited) if p)})
        if env:
            container["env"] = env
        resources = _resources(resources_per_trial)
        if resources:
            container["resources"] = resources
        if collector == "Push":
            spec["metricsCollectorSpec"] = {"collector": {"kind": "StdOut"},
                                            "source": {"filter": {"metricsFormat": [PUSH_FILTER]}}}
        return parse_experiment(data)

    # ------------------------------------------------------------------ reading

    def _exists(self, name: str) -> bool:
        return name in optuna.get_all_study_names(storage=self.storage) if self._has_storage() else False

    def _has_storage(self) -> bool:
        path = self.storage[len("sqlite:///"):] if self.storage.startswith("sqlite:///") else None
        return path is None or Path(path).exists()

    def _load(self, name: str) -> tuple[Experiment, list[Trial]]:
        try:
            if not self._has_storage():
                raise StoreConflict(name)
            spec, _ = load_finished(self.storage, name)
        except StoreConflict:
            raise RuntimeError(f"Failed to get Katib Experiment: {self.namespace}/{name} is not in {self.storage}") from None
        experiment = parse_experiment(spec)
        return experiment, ExperimentStore(self.storage, experiment).history()

    def get_experiment(self, name: str, namespace: Optional[str] = None, timeout: int = 120) -> KatibExperiment:
        """The experiment ``name`` with its status (Katib's ``V1beta1Experiment`` fields)."""
        experiment, history = self._load(name)
        ended = not any(t.active for t in history) and not suggest(experiment, history, 1)
        st = experiment_status(experiment, history, ended)
        raw = st.to_dict()
        best = raw["currentOptimalTrial"]
        counts = {k: raw.get(k, 0) for k in ("trials", "trialsSucceeded", "trialsFailed", "trialsRunning", "trialsPending",
                                              "trialsKilled", "trialsEarlyStopped", "trialsMetricsUnavailable")}
        status = ExperimentStatus(
            conditions=[ExperimentCondition(c["type"], c["status"], c["reason"], c["message"], c.get("lastTransitionTime"),
                                            c.get("lastUpdateTime")) for c in raw["conditions"]],
            current_optimal_trial=OptimalTrial(best["bestTrialName"],
                                               [ParameterAssignment(a["name"], a["value"]) for a in best["parameterAssignments"]],
                                               _observation(best["observation"])),
            start_time=raw.get("startTime"), completion_time=raw.get("completionTime"),
            trials=counts["trials"], trials_succeeded=counts["trialsSucceeded"], trials_failed=counts["trialsFailed"],
            trials_running=counts["trialsRunning"], trials_pending=counts["trialsPending"],
            trials_killed=counts["trialsKilled"], trials_early_stopped=counts["trialsEarlyStopped"],
            trials_metrics_unavailable=counts["trialsMetricsUnavailable"])
        return KatibExperiment(ObjectMeta(name, namespace or experiment.metadata.namespace or self.namespace),
                               experiment.spec, status)

    def get_experiment_conditions(self, name: str, namespace: Optional[str] = None,
                                  experiment: Optional[KatibExperiment] = None, timeout: int = 120) -> List[ExperimentCondition]:
        """The experiment's conditions (Created, Running, then Succeeded or Failed)."""
        experiment = experiment or self.get_experiment(name, namespace)
        return list(experiment.status.conditions)

    def _has_condition(self, name, namespace, experiment, kind: str) -> bool:
        return any(c.type == kind and c.status == "True"
                   for c in self.get_experiment_conditions(name, namespace, experiment))

    def is_experiment_created(self, name: str, namespace: Optional[str] = None, experiment=None, timeout: int = 120) -> bool:
        return self._has_condition(name, namespace, experiment, "Created")

    def is_experiment_running(self, name: str, namespace: Optional[str] = None, experiment=None, timeout: int = 120) -> bool:
        return self._has_condition(name, namespace, experiment, "Running")

    def is_experiment_succeeded(self, name: str, namespace: Optional[str] = None, experiment=None, timeout: int = 120) -> bool:
        return self._has_condition(name, namespace, experiment, "Succeeded")

    def is_experiment_failed(self, name: str, namespace: Optional[str] = None, experiment=None, timeout: int = 120) -> bool:
        return self._has_condition(name, namespace, experiment, "Failed")

    def wait_for_experiment_condition(self, name: str, namespace: Optional[str] = None,
                                      expected_condition: str = "Succeeded", timeout: int = 600,
                                      polling_interval: int = 15, apiserver_timeout: int = 120) -> KatibExperiment:
        """Wait until the experiment has ``expected_condition``; RuntimeError when it Failed instead, TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            experiment = self.get_experiment(name, namespace)
            if self._has_condition(name, namespace, experiment, expected_condition):
                return experiment
            if expected_condition != "Failed" and self.is_experiment_failed(name, namespace, experiment):
                raise RuntimeError(f"Experiment: {namespace or self.namespace}/{name} is Failed. "
                                   f"Experiment conditions: {experiment.status.conditions}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Timeout waiting for Experiment: {namespace or self.namespace}/{name} "
                                   f"to reach {expected_condition} state")
            time.sleep(polling_interval)

    def get_optimal_hyperparameters(self, name: str, namespace: Optional[str] = None, timeout: int = 120) -> OptimalTrial | None:
        """The best trial's parameters and metrics, or None while no trial reported the objective."""
        best = self.get_experiment(name, namespace).status.current_optimal_trial
        return best if best.best_trial_name and best.observation.metrics else None

    def list_trials(self, experiment_name: str, namespace: Optional[str] = None, timeout: int = 120) -> List[KatibTrial]:
        """Every trial of the experiment, in creation order."""
        experiment, history = self._load(experiment_name)
        ns = namespace or experiment.metadata.namespace or self.namespace
        return [_katib_trial(t, ns) for t in history if t.condition != "Interrupted"]

    def get_success_trial_details(self, experiment_name: str, namespace: Optional[str] = None,
                                  timeout: int = 120) -> List[Dict[str, Any]]:
        """Name, parameter assignments and metrics of each Succeeded trial (Katib's dicts)."""
        return [{"name": t.metadata.name, "parameter_assignments": t.spec.parameter_assignments,
                 "metrics": t.status.observation.metrics}
                for t in self.list_trials(experiment_name, namespace) if t.status.conditions[-1].type == "Succeeded"]

    def get_trial_metrics(self, name: str, namespace: Optional[str] = None, db_manager_address: str = "",
                          timeout: int = 120) -> List[MetricLog]:
        """The values trial ``name`` reported: each objective value in order, then each other metric's latest."""
        experiment_name = name.rsplit("-", 1)[0]
        experiment, history = self._load(experiment_name)
        trial = next((t for t in history if t.name == name), None)
        if trial is None:
            raise RuntimeError(f"Unable to get metrics for Trial {namespace or self.namespace}/{name}: no such trial")
        objective = experiment.spec.objective.objective_metric_name
        logs = [MetricLog("", MetricValue(objective, repr(v))) for _, v in trial.intermediate_values]
        for m in _observation(trial.observation).metrics:
            if m.name != objective or not logs:
                logs.append(MetricLog("", MetricValue(m.name, str(m.latest))))
        return logs

    # ------------------------------------------------------------------ changing

    def edit_experiment_budget(self, name: str, namespace: Optional[str] = None, max_trial_count: Optional[int] = None,
                               parallel_trial_count: Optional[int] = None,
                               max_failed_trial_count: Optional[int] = None, timeout: int = 120) -> None:
        """Change the budget and run the experiment on with it (Katib's restart rules apply)."""
        if max_trial_count is None and parallel_trial_count is None and max_failed_trial_count is None:
            raise ValueError("Invalid input arguments. You have to set max_trial_count, parallel_trial_count, "
                             "or max_failed_trial_count to modify Experiment Trial budget.")
        experiment, _ = self._load(name)
        data = experiment.to_dict()
        for key, value in (("maxTrialCount", max_trial_count), ("parallelTrialCount", parallel_trial_count),
                           ("maxFailedTrialCount", max_failed_trial_count)):
            if value is not None:
                data["spec"][key] = value
        try:
            run_local(parse_experiment(data), storage=self.storage, run_dir=self.run_dir, python=sys.executable)
        except (SpecError, StoreConflict, RunnerError) as e:
            raise RuntimeError(f"Failed to edit Katib Experiment: {namespace or self.namespace}/{name}: {e}") from None

    def delete_experiment(self, name: str, namespace: Optional[str] = None, delete_options: Any = None) -> None:
        """Forget the experiment and its trials (their run folders stay under ``run_dir``)."""
        try:
            optuna.delete_study(study_name=name, storage=self.storage)
        except KeyError:
            raise RuntimeError(f"Failed to delete Katib Experiment: {namespace or self.namespace}/{name}: not found") from None
