"""The Katib ``kubeflow.org/v1beta1`` Experiment: model, defaults and validation.

A user's existing Katib Experiment loads unchanged. Every problem found is reported at once,
each with its field path, so a bad spec is fixed in one round trip::

    from hp_components.experiment import load_experiment, SpecError

    try:
        exp = load_experiment("examples/random-digits.yaml")
    except SpecError as err:
        for path, message in err.problems:
            print(f"{path}: {message}")
    else:
        print(exp.name, exp.spec.algorithm.algorithm_name, exp.spec.parallel_trial_count)

Defaults follow Katib's webhook (``parallelTrialCount: 3``, ``resumePolicy: Never``, metric
strategies from the objective type, the StdOut collector, ``distribution: uniform``, Job success
and failure conditions) and validation covers what Katib's webhook checks plus value checks
Katib leaves to its suggestion services (numbers parse, ``min <= max``, log ranges positive,
grid needs steps, algorithm settings).
"""

from __future__ import annotations

import math
import re
import unicodedata
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import re2  # noqa: F401  google-re2: filters are validated with RE2 (metrics.py would fall back to re without it)
from hp_components import algorithms
from hp_components._records import build, camel
from hp_components.conditions import ConditionError, parse as parse_condition
from hp_components.earlystop import validate_early_stopping
from hp_components.metrics import COLLECTORS, Collector, collector

from hp_components.space import grid_size
from hp_components.spec import *  # noqa: F403  the model, re-exported: hp_components.experiment is its public home
from hp_components.spec import __all__ as _spec_names
from hp_components.spec import (KUBEFLOW_JOB_KINDS, META_KEYS, Experiment, ExperimentSpec,
                                 FileSystemPath, MetricsCollectorSpec, MetricStrategy, ObjectiveSpec, SourceSpec, SpecError,
                                 find_containers, is_meta_reference, placeholders, shown)

__all__ = ["load_experiment", "new_experiment", "parse_experiment", "trial_collector", *_spec_names]

_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_MAX_NAME = 40
_MAX_COUNT = 100_000
_MAX_GRID = 1_000_000
_MAX_STEPS = 1e15  # steps in one parameter's range: past this, min + i * step stops being exact in a double

_JOB_CONDITIONS = {
    "Job": (
        'status.conditions.#(type=="Complete")#|#(status=="True")#',
        'status.conditions.#(type=="Failed")#|#(status=="True")#',
    ),
    "kubeflow": (
        'status.conditions.#(type=="Succeeded")#|#(status=="True")#',
        'status.conditions.#(type=="Failed")#|#(status=="True")#',
    ),
    "TrainJob": (
        'status.conditions.#(type=="Complete")#|#(status=="True")#',
        'status.conditions.#(type=="Failed")#|#(status=="True")#',
    ),
}
_PRIMARY_POD_LABELS = {
    "kubeflow": {"training.kubeflow.org/job-role": "master"},
    "TrainJob": {
        "jobset.sigs.k8s.io/replicatedjob-name": "node",
        "batch.kubernetes.io/job-completion-index": "0",
    },
}


def new_experiment(name: str, parameters: Sequence[Mapping[str, Any]], container: Mapping[str, Any], *,
                   objective_metric_name: str, objective_type: str, goal: float | None = None,
                   additional_metric_names: Sequence[str] = (), algorithm_name: str,
                   algorithm_settings: Mapping[str, Any] | None = None, max_trial_count: int | None,
                   parallel_trial_count: int, max_failed_trial_count: int | None = None,
                   early_stopping: tuple[str, Mapping[str, Any]] | None = None) -> Experiment:
    """A validated Experiment from keyword arguments: the one builder behind ``hp.tune``, ``KatibClient.tune``
    and ``hp_components.kfp.tune``. ``parameters`` are Katib parameter specs (``{"name", "parameterType",
    "feasibleSpace"}``), each a trialParameter of the same name; ``container`` is the trial's only
    container, whose ``name`` is the primary container. Raises :class:`SpecError`. ::

        new_experiment("demo", [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.1"}}],
                       {"name": "main", "image": "python:3.11", "command": ["python3", "train.py", "--lr=${trialParameters.lr}"]},
                       objective_metric_name="loss", objective_type="minimize", algorithm_name="random",
                       max_trial_count=8, parallel_trial_count=2)
    """
    def settings(values: Mapping[str, Any] | None) -> list[dict[str, str]]:
        return [{"name": k, "value": str(v)} for k, v in (values or {}).items()]

    spec: dict[str, Any] = {
        "objective": {"type": objective_type, "objectiveMetricName": objective_metric_name,
                      **({"goal": goal} if goal is not None else {}),
                      **({"additionalMetricNames": list(additional_metric_names)} if additional_metric_names else {})},
        "algorithm": {"algorithmName": algorithm_name, "algorithmSettings": settings(algorithm_settings)},
        "parallelTrialCount": parallel_trial_count,
        "parameters": [dict(p) for p in parameters],
        "trialTemplate": {
            "primaryContainerName": container["name"],
            "trialParameters": [{"name": p["name"], "reference": p["name"]} for p in parameters],
            "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [dict(container)]}}}},
        },
    }
    if max_trial_count is not None:
        spec["maxTrialCount"] = max_trial_count
    if max_failed_trial_count is not None:
        spec["maxFailedTrialCount"] = max_failed_trial_count
    if early_stopping is not None:
        spec["earlyStopping"] = {"algorithmName": early_stopping[0], "algorithmSettings": settings(early_stopping[1])}
    return parse_experiment({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name},
                             "spec": spec})


def trial_collector(experiment: Experiment) -> Collector:
    """A fresh metrics collector for one trial of ``experiment`` (``metricsCollectorSpec``), the one the
    local runner, the job launcher and the validator use (the wrapper builds it from its arguments)::

        c = trial_collector(exp)
        c.feed_output("accuracy=0.9")
    """
    mc = experiment.spec.metrics_collector_spec
    return collector(mc.collector.kind, experiment.spec.objective.metric_names, filters=mc.filters or None,
                     file_path=mc.file_path, file_format=mc.file_format)


# --------------------------------------------------------------------------- loading


def load_experiment(source: Union[str, Path, Mapping[str, Any]]) -> Experiment:
    """Load, default and validate an Experiment from a YAML/JSON file path, YAML text or a dict.

    Raises :class:`SpecError` listing every problem, each with its field path.
    """
    if isinstance(source, Mapping):
        return parse_experiment(dict(source))
    text: str
    where = "(input)"
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and not source.lstrip().startswith("{")):
        path = Path(source)
        where = str(path)
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise SpecError([(where, f"cannot read the file: {err.strerror or err}")]) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise SpecError(
                [(where, f"is not UTF-8 text (byte {err.start}); save it as UTF-8")]
            ) from None
    else:
        text = str(source)
    import yaml  # imported here: the pipeline steps hand their Experiment as JSON (a dict by then)

    from hp_components._yaml import YamlRefused, load_documents

    try:
        docs = [d for d in load_documents(text) if d is not None]
    except YamlRefused as err:
        raise SpecError([(err.path or where, err.message)]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError([(where, f"is not valid YAML{at}: {problem}")]) from None
    except RecursionError:
        raise SpecError([(where, "is nested too deeply to be an Experiment")]) from None
    if not docs:
        raise SpecError([(where, "is empty; expected one Katib Experiment")])
    if len(docs) > 1:
        raise SpecError([(where, f"holds {len(docs)} YAML documents; expected exactly one Experiment")])
    if not isinstance(docs[0], dict):
        raise SpecError([(where, f"must be a mapping (a Katib Experiment), not {type(docs[0]).__name__}")])
    return parse_experiment(docs[0])


def parse_experiment(data: dict[str, Any]) -> Experiment:
    """Validate a dict holding a Katib Experiment (see :func:`load_experiment`)."""
    try:
        exp, problems = build(Experiment, data)
    except RecursionError:
        raise SpecError([("(input)", "is nested too deeply to be an Experiment")]) from None
    if problems:
        raise SpecError(problems)
    _apply_defaults(exp)
    problems = _check(exp)
    if problems:
        raise SpecError(problems)
    return exp


def _apply_defaults(exp: Experiment) -> None:
    spec = exp.spec
    if spec.resume_policy == "":
        spec.resume_policy = "Never"
    strategies = spec.objective.strategies()
    named = {s.name for s in spec.objective.metric_strategies}
    for name, value in strategies.items():
        if name not in named:
            spec.objective.metric_strategies.append(MetricStrategy(name=name, value=value))  # type: ignore[arg-type]
    tt = spec.trial_template
    kind = exp.trial_kind
    family = "Job" if kind == "Job" else ("TrainJob" if kind == "TrainJob" else ("kubeflow" if kind in KUBEFLOW_JOB_KINDS else None))
    if family:
        ok, bad = _JOB_CONDITIONS[family]
        tt.success_condition = tt.success_condition or ok
        tt.failure_condition = tt.failure_condition or bad
        if family != "Job" and not tt.primary_pod_labels:
            tt.primary_pod_labels = dict(_PRIMARY_POD_LABELS[family])
    mc = spec.metrics_collector_spec
    if mc.collector.kind == "File":
        mc.source = mc.source or SourceSpec()
        mc.source.file_system_path = mc.source.file_system_path or FileSystemPath(path="/var/log/katib/metrics.log")
        fsp = mc.source.file_system_path
        fsp.path = fsp.path or "/var/log/katib/metrics.log"
        fsp.format = fsp.format or "TEXT"


# --------------------------------------------------------------------------- semantic checks


def _num(value: str | None) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _check(exp: Experiment) -> list[tuple[str, str]]:

    problems: list[tuple[str, str]] = []
    add = lambda path, msg: problems.append((path, msg))  # noqa: E731
    spec = exp.spec
    name = exp.metadata.name
    if not _NAME_RE.match(name) or len(name) > _MAX_NAME:
        add(
            "metadata.name",
            f"{shown(name)} must be lower case letters, digits or '-', start with a letter, end with a letter "
            f"or digit, and be at most {_MAX_NAME} characters (Katib's rule)",
        )
    for field in ("max_trial_count", "parallel_trial_count", "max_failed_trial_count"):
        value = getattr(spec, field)
        path = "spec." + camel(field)
        if value is None:
            continue
        low = 0 if field == "max_failed_trial_count" else 1
        if value < low:
            add(path, f"must be at least {low}, not {value}")
        elif value > _MAX_COUNT:
            add(path, f"{value} is more than this tool runs ({_MAX_COUNT}); split the experiment")
    if spec.max_trial_count is not None:
        if spec.max_failed_trial_count is not None and spec.max_failed_trial_count > spec.max_trial_count:
            add("spec.maxFailedTrialCount", "should be less than or equal to spec.maxTrialCount")
        if spec.parallel_trial_count > spec.max_trial_count:
            add("spec.parallelTrialCount", "should be less than or equal to spec.maxTrialCount")
    if spec.nas_config is not None:
        add("spec.nasConfig", "neural architecture search (nasConfig) is not supported; use spec.parameters")

    _check_objective(spec.objective, add)
    problems.extend(algorithms.validate(spec.algorithm.algorithm_name, spec.algorithm.settings(), spec, "spec.algorithm"))
    if spec.early_stopping is not None:
        problems.extend(
            validate_early_stopping(spec.early_stopping.algorithm_name, spec.early_stopping.settings(), "spec.earlyStopping")
        )
    if not spec.parameters:
        if spec.nas_config is None:
            add("spec.parameters", "must list at least one parameter to tune")
    else:
        _check_parameters(spec, add)
    _check_trial_template(exp, add)
    _check_collector(spec.metrics_collector_spec, add)
    _check_kubernetes(exp, add)
    return problems


def _check_objective(obj: ObjectiveSpec, add: Any) -> None:
    if not obj.objective_metric_name.strip():
        add("spec.objective.objectiveMetricName", "must be specified")
    if obj.objective_metric_name in obj.additional_metric_names:
        add("spec.objective.additionalMetricNames", "should not contain spec.objective.objectiveMetricName")
    seen: set[str] = set()
    for i, m in enumerate(obj.additional_metric_names):
        if m in seen:
            add(f"spec.objective.additionalMetricNames[{i}]", f"{m!r} is listed twice")
        seen.add(m)
    known = set(obj.metric_names)
    names: set[str] = set()
    for i, s in enumerate(obj.metric_strategies):
        if s.name not in known:
            add(f"spec.objective.metricStrategies[{i}].name", f"{s.name!r} is not the objective or an additional metric")
        if s.name in names:
            add(f"spec.objective.metricStrategies[{i}].name", f"{s.name!r} has two strategies")
        names.add(s.name)
    if obj.goal is not None and not math.isfinite(obj.goal):
        add("spec.objective.goal", "must be a finite number")


def _check_parameters(spec: ExperimentSpec, add: Any) -> None:
    seen: set[str] = set()
    grid = spec.algorithm.algorithm_name == "grid"
    for i, p in enumerate(spec.parameters):
        base = f"spec.parameters[{i}]"
        fs = p.feasible_space
        if not p.name.strip():
            add(f"{base}.name", "must be specified")
        if p.name in seen:
            add(f"{base}.name", f"{p.name!r} is used by another parameter")
        seen.add(p.name)
        if p.parameter_type in ("double", "int"):
            if fs.values:
                add(f"{base}.feasibleSpace.list", f"is not supported for parameterType {p.parameter_type}; use min and max")
            lo, hi = _num(fs.min), _num(fs.max)
            for key, raw, val in (("min", fs.min, lo), ("max", fs.max, hi)):
                if raw is None or raw == "":
                    add(f"{base}.feasibleSpace.{key}", f"is required for parameterType {p.parameter_type}")
                elif val is None:
                    add(f"{base}.feasibleSpace.{key}", f"{raw!r} is not a finite number")
                elif p.parameter_type == "int" and not float(val).is_integer():
                    add(f"{base}.feasibleSpace.{key}", f"{raw!r} is not a whole number (parameterType int)")
            if lo is not None and hi is not None:
                # min == max is a fixed value: Katib's webhook (pkg/webhook/v1beta1/experiment/validator/
                # validator.go) does not compare them, and its hyperband example fixes num-epochs so
                if lo > hi:
                    add(f"{base}.feasibleSpace.min", f"min ({fs.min}) must be less than or equal to max ({fs.max})")
                if fs.distribution in ("logUniform", "logNormal") and lo <= 0:
                    add(f"{base}.feasibleSpace.min", f"must be > 0 for distribution {fs.distribution}, not {fs.min}")
            if fs.step not in (None, ""):
                step = _num(fs.step)
                if step is None or step <= 0:
                    add(f"{base}.feasibleSpace.step", f"{fs.step!r} must be a positive number")
                elif p.parameter_type == "int" and not float(step).is_integer():
                    add(f"{base}.feasibleSpace.step", f"{fs.step!r} must be a whole number for parameterType int")
                elif lo is not None and hi is not None and lo < hi and step > hi - lo:
                    add(f"{base}.feasibleSpace.step", f"{fs.step} is larger than the range {fs.min}..{fs.max}")
                elif lo is not None and hi is not None and lo < hi and (hi - lo) / step > _MAX_STEPS:
                    add(f"{base}.feasibleSpace.step", f"{fs.step} splits {fs.min}..{fs.max} into more than {_MAX_STEPS:.0e} "
                                                      "steps, finer than a double can tell apart; use a larger step or drop it")
            elif grid and p.parameter_type == "double":
                add(f"{base}.feasibleSpace.step", "the grid algorithm needs a step for double parameters")
        else:
            if fs.min not in (None, "") or fs.max not in (None, "") or fs.step not in (None, ""):
                add(f"{base}.feasibleSpace", f"min, max and step are not supported for parameterType {p.parameter_type}; use list")
            if not fs.values:
                add(f"{base}.feasibleSpace.list", f"must list the values of a {p.parameter_type} parameter")
            else:
                if len(set(fs.values)) != len(fs.values):
                    add(f"{base}.feasibleSpace.list", "has duplicate values")
                if p.parameter_type == "discrete":
                    for j, v in enumerate(fs.values):
                        if _num(v) is None:
                            add(f"{base}.feasibleSpace.list[{j}]", f"{v!r} is not a number (parameterType discrete)")
            if fs.distribution != "uniform":
                add(f"{base}.feasibleSpace.distribution", f"{fs.distribution} applies to double and int parameters only")
    if grid:
        try:
            size = grid_size(spec.parameters)
        except (ValueError, ArithmeticError):  # a parameter problem, reported above
            return
        if size > _MAX_GRID:
            add("spec.parameters", f"the grid has {size} points, more than {_MAX_GRID}; use larger steps or another algorithm")


def _walk_strings(obj: Any):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk_strings(k)
            yield from _walk_strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk_strings(v)


def _check_trial_template(exp: Experiment, add: Any) -> None:
    tt = exp.spec.trial_template
    base = "spec.trialTemplate"
    if tt.config_map is not None and tt.trial_spec is None:
        add(f"{base}.configMap", "trial templates from a ConfigMap need a cluster; inline the template as spec.trialTemplate.trialSpec")
        return
    if tt.config_map is not None and tt.trial_spec is not None:
        add(base, "only one of spec.trialTemplate.trialSpec or spec.trialTemplate.configMap can be specified")
    if tt.trial_spec is None:
        add(f"{base}.trialSpec", "is required")
        return
    if not tt.primary_container_name:
        add(f"{base}.primaryContainerName", "must be specified")
    if not tt.success_condition or not tt.failure_condition:
        add(base, f"successCondition and failureCondition must be specified for a trialSpec of kind {exp.trial_kind or '(none)'}")
    for field, condition in (("successCondition", tt.success_condition), ("failureCondition", tt.failure_condition)):
        try:
            parse_condition(condition) if condition else None
        except ConditionError as e:
            add(f"{base}.{field}", f"{e} (a GJSON path, e.g. status.conditions.#(type==\"Complete\")#|#(status==\"True\")#)")
    ts = tt.trial_spec
    if not ts.get("apiVersion") or not ts.get("kind"):
        add(f"{base}.trialSpec", "apiVersion and kind must be specified")
    md = ts.get("metadata") or {}
    if isinstance(md, dict) and (md.get("name") or md.get("namespace")):
        add(f"{base}.trialSpec.metadata", "name and namespace must be omitted (each trial gets its own)")
    # containers sit in pod templates for Job and the training operator's jobs; other kinds
    # (Argo Workflow, Tekton, TrainJob) are checked when a driver renders them
    known_layout = exp.trial_kind == "Job" or exp.trial_kind in KUBEFLOW_JOB_KINDS[:-1]
    if known_layout and tt.primary_container_name and not find_containers(ts, tt.primary_container_name):
        add(
            f"{base}.primaryContainerName",
            f"no container named {tt.primary_container_name!r} in spec.trialTemplate.trialSpec",
        )
    if tt.trial_parameters is None:
        add(f"{base}.trialParameters", "must be specified")
        return
    params = {p.name for p in exp.spec.parameters}
    used = set()
    for s in _walk_strings(ts):
        used.update(placeholders(s, "trialParameters"))
    names: set[str] = set()
    refs: set[str] = set()
    for i, tp in enumerate(tt.trial_parameters):
        path = f"{base}.trialParameters[{i}]"
        if not tp.name or "{" in tp.name or "}" in tp.name:
            add(f"{path}.name", "must be specified and must not contain '{' or '}'")
            continue
        if not tp.reference:
            add(f"{path}.reference", "must be specified")
            continue
        if tp.name in names:
            add(f"{path}.name", f"{tp.name!r} is declared twice")
        if tp.reference in refs:
            add(f"{path}.reference", f"{tp.reference!r} is referenced twice")
        names.add(tp.name)
        refs.add(tp.reference)
        if tp.reference not in params and not is_meta_reference(tp.reference):
            add(
                f"{path}.reference",
                f"{tp.reference!r} is not a parameter in spec.parameters nor trial metadata like ${{trialSpec.Name}}",
            )
        if tp.name not in used:
            add(f"{path}.name", f"${{trialParameters.{tp.name}}} is declared but not used in spec.trialTemplate.trialSpec")
    for missing in sorted(used - names):
        add(f"{base}.trialSpec", f"uses ${{trialParameters.{missing}}}, which spec.trialTemplate.trialParameters does not declare")
    for s in _walk_strings(ts):
        for key in placeholders(s, "trialSpec"):
            if not is_meta_reference("${trialSpec.%s}" % key):
                add(f"{base}.trialSpec", f"${{trialSpec.{key}}} is not trial metadata Katib knows ({', '.join(META_KEYS)})")


def _check_collector(mc: MetricsCollectorSpec, add: Any) -> None:
    base = "spec.metricsCollectorSpec"
    kind = mc.collector.kind
    if kind not in COLLECTORS:
        add(f"{base}.collector.kind", f"collector {kind} is not supported here; use {' or '.join(COLLECTORS)}")
    if kind == "File":
        fsp = mc.source.file_system_path if mc.source else None
        if fsp is None or fsp.kind != "File" or not fsp.path.startswith("/"):
            add(f"{base}.source.fileSystemPath.path", "must be an absolute path to the metrics file (kind File)")
        if fsp is not None and fsp.format == "JSON" and mc.source and mc.source.filter is not None:
            add(f"{base}.source.filter", "must be omitted when the metrics file format is JSON")
    # Katib's webhook (pkg/webhook/v1beta1/experiment/validator/validator.go, validateMetricsCollector):
    # regexp.Compile(filter) must succeed and `.*\(.*\).*\(.*\).*` match ("two top subexpressions")
    two_groups = re.compile(r".*\(.*\).*\(.*\).*")
    for i, f in enumerate(mc.filters):
        path = f"{base}.source.filter.metricsFormat[{i}]"
        try:  # compiled exactly as the trials will: RE2 (Katib's engine), and Python's re for images without it
            collector("StdOut", ["metric"], filters=[f])
        except ValueError as err:
            add(path, str(err))
            continue
        if not two_groups.match(f):
            add(path, f"{f!r} needs two groups: the metric name, then its value")


# --------------------------------------------------------------------------- what Kubernetes refuses

# apimachinery/pkg/util/validation/validation.go IsDNS1123Label (namespaces: api/validation/generic.go
# ValidateNamespaceName = NameIsDNSLabel)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# apimachinery/pkg/api/resource/quantity.go: <signedNumber><suffix>, suffix binarySI | decimalSI | e<signedNumber>
_QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_MAX_INT64 = 2**63 - 1
_MAX_INT32 = 2**31 - 1
#: Unicode categories no name may hold: controls, format (zero-width) characters, line and paragraph
#: separators, surrogates, private use and unassigned code points
_UNSEEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _unseen(name: str) -> str | None:
    """The first invisible or control character of ``name``, as ``U+200B ZERO WIDTH SPACE``; None when none."""
    for ch in name:
        if unicodedata.category(ch) in _UNSEEN:
            return f"U+{ord(ch):04X} {unicodedata.name(ch, 'a control character')}"
    return None


def _quantity(value: Any) -> float | None:
    """A Kubernetes resource quantity's value (``"500m"`` -> 0.5, ``2`` -> 2.0); None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if not isinstance(value, str):
        try:
            return float(value)
        except OverflowError:  # an int past a double's range
            return math.inf
    m = _QUANTITY.match(value.strip()) if len(value) <= 64 else None
    if not m:
        return None
    suffix = m.group(3) or ""
    number = value.strip()[: len(value.strip()) - len(suffix)]
    try:
        return float(number) * (_SUFFIX[suffix] if suffix in _SUFFIX else 10.0 ** int(suffix[1:]) if suffix else 1.0)
    except OverflowError:
        return math.inf


def _extended(resource: str) -> bool:
    """Extended resources (``nvidia.com/gpu``): a domain of their own, counted in whole units."""
    domain = resource.split("/", 1)[0] if "/" in resource else ""
    return bool(domain) and not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io")) and not resource.startswith("requests.")


def _check_kubernetes(exp: Experiment, add: Any) -> None:
    """What the API server would refuse in the Experiment and its trialSpec (Katib's webhook leaves these to it)."""
    ns = exp.metadata.namespace
    if ns and (len(ns) > 63 or not _DNS1123_LABEL.match(ns)):
        add("metadata.namespace", f"{shown(ns)} is not a Kubernetes namespace: at most 63 lower case letters, digits "
                                  "or '-', starting and ending with a letter or digit (a DNS-1123 label)")
    for i, p in enumerate(exp.spec.parameters):
        bad = _unseen(p.name)
        if bad:
            add(f"spec.parameters[{i}].name", f"{shown(p.name)} holds an invisible or control character ({bad}), which "
                                              "no one can read or type in a reference; use visible characters")
    for i, tp in enumerate(exp.spec.trial_template.trial_parameters or []):
        bad = _unseen(tp.name)
        if bad:
            add(f"spec.trialTemplate.trialParameters[{i}].name",
                f"{shown(tp.name)} holds an invisible or control character ({bad}); use visible characters")
    ts = exp.spec.trial_template.trial_spec
    if isinstance(ts, dict):
        _check_manifest(ts, "spec.trialTemplate.trialSpec", exp.trial_kind == "Workflow", add)


def _check_manifest(obj: Any, path: str, argo: bool, add: Any) -> None:
    """activeDeadlineSeconds and container resources, anywhere in a trialSpec (walked without recursion)."""
    stack: list[tuple[Any, str]] = [(obj, path)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, list):
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        if "activeDeadlineSeconds" in node:
            _check_deadline(node["activeDeadlineSeconds"], f"{at}.activeDeadlineSeconds", "containers" in node, argo, add)
        for key in ("containers", "initContainers"):
            containers = node.get(key)
            for i, c in enumerate(containers if isinstance(containers, list) else []):
                resources = c.get("resources") if isinstance(c, dict) else None
                if isinstance(resources, dict):
                    _check_resources(resources, f"{at}.{key}[{i}].resources", add)
        stack.extend((v, f"{at}.{k}") for k, v in node.items())


def _check_deadline(value: Any, path: str, pod: bool, argo: bool, add: Any) -> None:
    # Pod: pkg/apis/core/validation/validation.go ValidatePodSpec, 1..2147483647; Job:
    # pkg/apis/batch/validation/validation.go validateJobSpec, >= 0 (0 fails the Job at once, so refused here too)
    if argo and isinstance(value, str) and ("{{" in value or value.strip().isdigit()):
        return  # Argo's activeDeadlineSeconds is an IntOrString, its expressions resolved when the step runs
    if isinstance(value, bool) or not isinstance(value, int):
        hint = (" (a ${trialParameters...} value is substituted as a string, which Kubernetes refuses here)"
                if isinstance(value, str) and "${" in value else "")
        add(path, f"must be a whole number of seconds, not {shown(value)}{hint}; Kubernetes refuses the trial otherwise")
    elif value < 1:
        add(path, f"must be at least 1 second, not {value} (a negative limit is refused by Kubernetes, 0 ends every "
                  "trial at once); omit it for no limit")
    elif pod and value > _MAX_INT32:
        add(path, f"must be at most {_MAX_INT32} seconds in a pod spec, not {value}")
    elif value > _MAX_INT64:
        add(path, f"must be at most {_MAX_INT64} seconds (a 64-bit integer in the Job API), not {value}")


def _check_resources(resources: dict[str, Any], path: str, add: Any) -> None:
    # pkg/apis/core/validation/validation.go ValidateResourceRequirements: each quantity >= 0, extended
    # resources (nvidia.com/gpu) whole numbers
    for section in ("limits", "requests"):
        values = resources.get(section)
        if not isinstance(values, dict):
            continue
        for name, raw in values.items():
            at = f"{path}.{section}[{name}]"
            if isinstance(raw, str) and "${" in raw:
                continue  # a trial parameter: checked by Kubernetes once substituted
            q = _quantity(raw)
            if q is None:
                add(at, f"{shown(raw)} is not a Kubernetes quantity (e.g. 2, 500m, 4Gi)")
            elif q < 0:
                add(at, f"must be greater than or equal to 0, not {shown(raw)} (Kubernetes' rule for resource quantities)")
            elif _extended(str(name)) and not float(q).is_integer():
                add(at, f"must be a whole number, not {shown(raw)}: {name} is counted in whole units (an extended resource)")
