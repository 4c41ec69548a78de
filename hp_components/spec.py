"""The Katib ``kubeflow.org/v1beta1`` Experiment as data: the spec model, no validation.

The model alone, plain dataclasses importing nothing of the project but the standard-library record
reader, so every module can use it (the search space, the algorithms, the drivers; the pipeline steps
without pydantic's import cost) while :mod:`hp_components.experiment` loads, defaults and validates it::

    from hp_components.experiment import load_experiment   # validated
    from hp_components.spec import ParameterSpec            # the types
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from hp_components._records import dump, shown

__all__ = [
    "PLACEHOLDER_RE", "placeholders", "meta_key", "META_KEYS", "KUBEFLOW_JOB_KINDS",
    "SpecError", "MetricStrategy", "ObjectiveSpec", "AlgorithmSetting", "AlgorithmSpec", "FeasibleSpace",
    "ParameterSpec", "TrialParameterSpec", "TrialTemplate", "FileSystemPath", "FilterSpec", "SourceSpec",
    "CollectorSpec", "MetricsCollectorSpec", "EarlyStoppingSpec", "ExperimentSpec", "Metadata", "Experiment",
    "find_containers", "is_meta_reference",
]

#: Katib's two placeholder kinds in one pattern: group 1 ``trialParameters`` or ``trialSpec``, group 2 the
#: key. Validation (:func:`placeholders`) and rendering (:func:`hp_components.template.render_text`) both
#: read text through it, so what is checked is what is rendered.
PLACEHOLDER_RE = re.compile(r"\$\{(trialParameters|trialSpec)\.(.+?)\}")
META_KEYS = ("Name", "Namespace", "Kind", "APIVersion", "Annotations", "Labels")
KUBEFLOW_JOB_KINDS = ("TFJob", "PyTorchJob", "XGBoostJob", "MPIJob", "TrainJob")


def _cut(text: str, limit: int) -> str:
    """``text``, or its start and end around a note of how much was cut when it is longer than ``limit``."""
    if len(text) <= limit:
        return text
    head, tail = limit * 3 // 5, limit // 5
    return f"{text[:head]} ... ({len(text) - head - tail} characters cut) ... {text[-tail:]}"


class SpecError(ValueError):
    """A spec that cannot run. ``problems`` lists ``(field path, message)`` pairs, all of them."""

    #: a path or message longer than this is cut in its middle (a 50 MB value is not echoed back)
    MAX_TEXT = 500

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = [(_cut(p, self.MAX_TEXT), _cut(m, self.MAX_TEXT)) for p, m in problems]
        problems = self.problems
        super().__init__("\n".join(f"{p}: {m}" for p, m in problems))


# --------------------------------------------------------------------------- model
# Plain dataclasses, read from a dict by :func:`hp_components._records.build` (each field's type is its
# check; JSON keys are the camelCase names) and written back by :meth:`Experiment.to_dict`.

_record = dataclass(kw_only=True)


def _stringify(value: Any) -> Any:
    """Katib keeps numbers in ``feasibleSpace`` and settings as strings; accept YAML numbers too."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    return value


def _stringify_all(value: Any) -> Any:
    return [_stringify(x) for x in value] if isinstance(value, list) else value


_AS_STRING = {"before": _stringify}


@_record
class MetricStrategy:
    name: str
    value: Literal["min", "max", "latest"]


@_record
class ObjectiveSpec:
    type: Literal["minimize", "maximize"]
    goal: float | None = None
    objective_metric_name: str
    additional_metric_names: list[str] = field(default_factory=list)
    metric_strategies: list[MetricStrategy] = field(default_factory=list)

    def strategies(self) -> dict[str, str]:
        """Metric name -> ``min``/``max``/``latest``, with Katib's defaults filled in."""
        default = "min" if self.type == "minimize" else "max"
        out = {s.name: s.value for s in self.metric_strategies}
        for name in [self.objective_metric_name, *self.additional_metric_names]:
            out.setdefault(name, default)
        return out

    @property
    def metric_names(self) -> list[str]:
        return [self.objective_metric_name, *self.additional_metric_names]


@_record
class AlgorithmSetting:
    name: str
    value: str = field(default="", metadata=_AS_STRING)


@_record
class AlgorithmSpec:
    algorithm_name: str
    algorithm_settings: list[AlgorithmSetting] = field(default_factory=list)

    def settings(self) -> dict[str, str]:
        return {s.name: s.value for s in self.algorithm_settings}


@_record
class FeasibleSpace:
    max: str | None = field(default=None, metadata=_AS_STRING)
    min: str | None = field(default=None, metadata=_AS_STRING)
    values: list[str] | None = field(default=None, metadata={"key": "list", "before": _stringify_all})
    step: str | None = field(default=None, metadata=_AS_STRING)
    distribution: Literal["uniform", "logUniform", "normal", "logNormal"] = field(
        default="uniform", metadata={"before": lambda v: "uniform" if v in (None, "") else v})


@_record
class ParameterSpec:
    name: str
    parameter_type: Literal["double", "int", "discrete", "categorical"]
    feasible_space: FeasibleSpace


@_record
class TrialParameterSpec:
    name: str
    description: str = ""
    reference: str


@_record
class TrialTemplate:
    retain: bool = False
    trial_parameters: list[TrialParameterSpec] | None = None
    trial_spec: dict[str, Any] | None = None
    config_map: dict[str, Any] | None = None
    primary_pod_labels: dict[str, str] | None = None
    primary_container_name: str = ""
    success_condition: str = ""
    failure_condition: str = ""


@_record
class FileSystemPath:
    path: str = ""
    kind: Literal["File", "Directory"] = "File"
    format: Literal["TEXT", "JSON", ""] = ""


@_record
class FilterSpec:
    metrics_format: list[str] = field(default_factory=list)


@_record
class SourceSpec:
    file_system_path: FileSystemPath | None = None
    filter: FilterSpec | None = None
    http_get: dict[str, Any] | None = None


@_record
class CollectorSpec:
    kind: Literal["StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "None", "Push"] = "StdOut"
    custom_collector: dict[str, Any] | None = None


@_record
class MetricsCollectorSpec:
    source: SourceSpec | None = None
    collector: CollectorSpec = field(default_factory=CollectorSpec)

    @property
    def filters(self) -> list[str]:
        if self.source and self.source.filter:
            return list(self.source.filter.metrics_format)
        return []

    @property
    def file_path(self) -> str | None:
        if self.collector.kind == "File" and self.source and self.source.file_system_path:
            return self.source.file_system_path.path
        return None

    @property
    def file_format(self) -> str:
        if self.source and self.source.file_system_path and self.source.file_system_path.format:
            return self.source.file_system_path.format
        return "TEXT"


@_record
class EarlyStoppingSpec:
    algorithm_name: str
    algorithm_settings: list[AlgorithmSetting] = field(default_factory=list)

    def settings(self) -> dict[str, str]:
        return {s.name: s.value for s in self.algorithm_settings}


@_record
class ExperimentSpec:
    parameters: list[ParameterSpec] = field(default_factory=list)
    objective: ObjectiveSpec
    algorithm: AlgorithmSpec
    early_stopping: EarlyStoppingSpec | None = None
    trial_template: TrialTemplate
    parallel_trial_count: int = 3
    max_trial_count: int | None = None
    max_failed_trial_count: int | None = None
    metrics_collector_spec: MetricsCollectorSpec = field(default_factory=MetricsCollectorSpec)
    nas_config: dict[str, Any] | None = None
    resume_policy: Literal["Never", "LongRunning", "FromVolume", ""] = "Never"


@_record
class Metadata:
    #: keys other than these four (``generateName``, ``uid``, ...) are kept in ``extra`` and written back
    EXTRA: ClassVar[str] = "extra"
    name: str
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@_record
class Experiment:
    """A Katib Experiment with Katib's defaults applied. Build it with :func:`load_experiment`."""

    api_version: Literal["kubeflow.org/v1beta1"] = "kubeflow.org/v1beta1"
    kind: Literal["Experiment"] = "Experiment"
    metadata: Metadata
    spec: ExperimentSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    def to_dict(self) -> dict[str, Any]:
        """The spec as Katib YAML would hold it (camelCase, defaults filled in, no status)."""
        out = dump(self)
        out.pop("status", None)
        return out

    def to_yaml(self) -> str:
        """The spec as Katib YAML, ready for ``kubectl apply`` or ``hp-tune run``."""
        import yaml  # imported here: the pipeline steps read and write JSON only

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def trial_kind(self) -> str:
        return str((self.spec.trial_template.trial_spec or {}).get("kind", ""))


def find_containers(trial_spec: Any, name: str) -> list[dict[str, Any]]:
    """All containers called ``name`` in a trialSpec, at any depth (Job, PyTorchJob, ...)."""
    found: list[dict[str, Any]] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    found.extend(c for c in value if isinstance(c, dict) and c.get("name") == name and key == "containers")
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    walk(trial_spec)
    return found


def placeholders(text: str, kind: str) -> list[str]:
    """The keys of ``${<kind>.key}`` placeholders in ``text``, as the renderer sees them. ::

        placeholders("--lr=${trialParameters.lr} ${trialSpec.Name}", "trialParameters")   # -> ['lr']
    """
    return [key for found, key in PLACEHOLDER_RE.findall(text) if found == kind]


def meta_key(reference: str) -> str | None:
    """``"${trialSpec.Name}"`` -> ``"Name"``; None when ``reference`` is not one ``${trialSpec.…}``."""
    m = PLACEHOLDER_RE.fullmatch(reference)
    return m.group(2) if m and m.group(1) == "trialSpec" else None


def is_meta_reference(reference: str) -> bool:
    """``${trialSpec.Name}``-style references (Katib's trial metadata keys)."""
    key = meta_key(reference)
    if key is None:
        return False
    if key in META_KEYS:
        return True
    sub = re.fullmatch(r"(.+)\[(.+)\]", key)
    return bool(sub and sub.group(1) in ("Labels", "Annotations"))
