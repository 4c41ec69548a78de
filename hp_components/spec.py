"""The Katib ``kubeflow.org/v1beta1`` Experiment as data: the spec model, no validation.

The model alone, importing nothing of the project, so every module can use it (the search space,
the algorithms, the drivers) while :mod:`hp_components.experiment` loads, defaults and validates it::

    from hp_components.experiment import load_experiment   # validated
    from hp_components.spec import ParameterSpec            # the types
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

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


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to about ``limit`` characters for error messages (a 50 MB name is not echoed)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} characters" if isinstance(value, (str, bytes, list, dict)) else f"{len(text)} characters shown"
    return f"{text[:limit]}... ({size})"


class SpecError(ValueError):
    """A spec that cannot run. ``problems`` lists ``(field path, message)`` pairs, all of them."""

    #: a path or message longer than this is cut in its middle (a 50 MB value is not echoed back)
    MAX_TEXT = 500

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = [(_cut(p, self.MAX_TEXT), _cut(m, self.MAX_TEXT)) for p, m in problems]
        problems = self.problems
        super().__init__("\n".join(f"{p}: {m}" for p, m in problems))


# --------------------------------------------------------------------------- model


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=False
    )


def _stringify(value: Any) -> Any:
    """Katib keeps numbers in ``feasibleSpace`` and settings as strings; accept YAML numbers too."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    return value


class MetricStrategy(_Model):
    name: str
    value: Literal["min", "max", "latest"]


class ObjectiveSpec(_Model):
    type: Literal["minimize", "maximize"]
    goal: float | None = None
    objective_metric_name: str
    additional_metric_names: list[str] = Field(default_factory=list)
    metric_strategies: list[MetricStrategy] = Field(default_factory=list)

    @field_validator("goal", mode="before")
    @classmethod
    def _goal_number(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("must be a number")
        return v

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


class AlgorithmSetting(_Model):
    name: str
    value: str = ""

    _v = field_validator("value", mode="before")(lambda cls, v: _stringify(v))


class AlgorithmSpec(_Model):
    algorithm_name: str
    algorithm_settings: list[AlgorithmSetting] = Field(default_factory=list)

    def settings(self) -> dict[str, str]:
        return {s.name: s.value for s in self.algorithm_settings}


class FeasibleSpace(_Model):
    max: str | None = None
    min: str | None = None
    values: list[str] | None = Field(None, alias="list")
    step: str | None = None
    distribution: Literal["uniform", "logUniform", "normal", "logNormal"] = "uniform"

    @field_validator("max", "min", "step", mode="before")
    @classmethod
    def _num_str(cls, v: Any) -> Any:
        return _stringify(v)

    @field_validator("values", mode="before")
    @classmethod
    def _list_str(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [_stringify(x) for x in v]
        return v

    @field_validator("distribution", mode="before")
    @classmethod
    def _dist_default(cls, v: Any) -> Any:
        return "uniform" if v in (None, "") else v


class ParameterSpec(_Model):
    name: str
    parameter_type: Literal["double", "int", "discrete", "categorical"]
    feasible_space: FeasibleSpace


class TrialParameterSpec(_Model):
    name: str
    description: str = ""
    reference: str


class TrialTemplate(_Model):
    retain: bool = False
    trial_parameters: list[TrialParameterSpec] | None = None
    trial_spec: dict[str, Any] | None = None
    config_map: dict[str, Any] | None = None
    primary_pod_labels: dict[str, str] | None = None
    primary_container_name: str = ""
    success_condition: str = ""
    failure_condition: str = ""


class FileSystemPath(_Model):
    path: str = ""
    kind: Literal["File", "Directory"] = "File"
    format: Literal["TEXT", "JSON", ""] = ""


class FilterSpec(_Model):
    metrics_format: list[str] = Field(default_factory=list)


class SourceSpec(_Model):
    file_system_path: FileSystemPath | None = None
    filter: FilterSpec | None = None
    http_get: dict[str, Any] | None = None


class CollectorSpec(_Model):
    kind: Literal["StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "None", "Push"] = (
        "StdOut"
    )
    custom_collector: dict[str, Any] | None = None


class MetricsCollectorSpec(_Model):
    source: SourceSpec | None = None
    collector: CollectorSpec = Field(default_factory=CollectorSpec)

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


class EarlyStoppingSpec(_Model):
    algorithm_name: str
    algorithm_settings: list[AlgorithmSetting] = Field(default_factory=list)

    def settings(self) -> dict[str, str]:
        return {s.name: s.value for s in self.algorithm_settings}


class ExperimentSpec(_Model):
    parameters: list[ParameterSpec] = Field(default_factory=list)
    objective: ObjectiveSpec
    algorithm: AlgorithmSpec
    early_stopping: EarlyStoppingSpec | None = None
    trial_template: TrialTemplate
    parallel_trial_count: int = Field(3, strict=True)
    max_trial_count: int | None = Field(None, strict=True)
    max_failed_trial_count: int | None = Field(None, strict=True)
    metrics_collector_spec: MetricsCollectorSpec = Field(default_factory=MetricsCollectorSpec)
    nas_config: dict[str, Any] | None = None
    resume_policy: Literal["Never", "LongRunning", "FromVolume", ""] = "Never"


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class Experiment(_Model):
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
        return self.model_dump(by_alias=True, exclude_none=True, exclude={"status"}, mode="json")

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
