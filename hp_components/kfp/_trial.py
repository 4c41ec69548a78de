"""The trial step of a compiled Katib Experiment: the user's container under the metrics wrapper.

(A trialSpec that is not a ``batch/v1 Job`` - PyTorchJob, TFJob, MPIJob, XGBoostJob - runs
through the launcher step instead, see :func:`hp_components.jobs.created_as_job` and
:func:`configure_launcher_task`.)

The trial runs in the trialSpec's image with its command, as::

    python3 <hp_wrapper artifact path> <wrapper_args(exp)> --output <observation> -- <command>

so the image needs nothing but ``python3``. The wrapper (hp_components/metrics.py, 36 KB) is the
``hp_wrapper`` input artifact, written once per run by the suggest step: it is neither a pipeline
parameter nor part of any resolved command, so a trial pod's executor input holds only the trial's
own values and a few URIs. ``${trialParameters.x}`` in the command becomes the
loop item's field ``x`` (an input of the component), ``${trialSpec.Name}`` the trial's name.
The container's resources, env, node selector, tolerations and volumes go on the task::

    comp = trial_component(exp)                       # a KFP component (loadable YAML inside)
    task = comp(hp_wrapper=suggest.outputs["wrapper"], **trial_inputs(exp, item))
    configure_trial_task(task, exp)
"""

from __future__ import annotations

import warnings
from typing import Any

import yaml

from hp_components.experiment import Experiment
from hp_components.jobs import JobTrialError, check_job_trial, created_as_job
from hp_components.steps import WRAPPER_PROGRAM, WRAPPER_SOURCE, uses_stop_rules, wrapper_args
from hp_components.template import PLACEHOLDER_RE, TemplateError, meta_value, primary_container_spec, render_text

from hp_components.kfp._errors import UnsupportedExperiment
from hp_components.kfp._fields import STOP_KEY, TRIAL_KEY, WRAPPER_KEY, trial_fields

__all__ = ["WRAPPER_SOURCE", "WRAPPER_PROGRAM", "trial_fields", "trial_component_text", "trial_component", "trial_inputs",
           "configure_trial_task", "check_experiment", "configure_launcher_task"]

_TT = "spec.trialTemplate.trialSpec"


def check_experiment(exp: Experiment) -> None:
    """Raise :class:`UnsupportedExperiment` for what this driver cannot compile."""
    spec = exp.spec
    if spec.max_trial_count is None:
        raise UnsupportedExperiment("spec.maxTrialCount", "is required on KFP: rounds are unrolled at compile time "
                                    "(ceil(maxTrialCount / parallelTrialCount) of them); set it")
    if created_as_job(exp):
        try:
            check_job_trial(exp)
        except JobTrialError as e:
            raise UnsupportedExperiment(e.field, e.message) from None


def _container(exp: Experiment) -> dict[str, Any]:
    try:
        return primary_container_spec(exp)
    except TemplateError:
        name = exp.spec.trial_template.primary_container_name
        raise UnsupportedExperiment("spec.trialTemplate.primaryContainerName", f"no container named {name!r}") from None


def _pod_spec(exp: Experiment) -> dict[str, Any]:
    ts = exp.spec.trial_template.trial_spec or {}
    return (((ts.get("spec") or {}).get("template") or {}).get("spec") or {})


def _meta(exp: Experiment, key: str) -> str | None:
    """Static trial metadata (``${trialSpec.Namespace}`` ...); None for the name (an input)."""
    if key == "Name":
        return None
    return meta_value(exp, "", key)


def _arg(text: str, exp: Experiment, keys: dict[str, str]) -> str:
    """One command argument with ``${trialParameters.x}`` / ``${trialSpec.Name}`` as KFP input placeholders.

    Placeholders sit inside the string (``--lr={{$.inputs.parameters['lr']}}``), as KFP compiles an
    f-string in a container component; static metadata (``${trialSpec.Namespace}``) is filled in.
    """
    def placeholder(name: str) -> str:
        return "{{$.inputs.parameters['%s']}}" % name

    def meta(key: str) -> str:
        value = _meta(exp, key)
        return placeholder(TRIAL_KEY) if value is None else value

    return render_text(text, lambda name: placeholder(keys[name]), meta)


def trial_component_text(exp: Experiment) -> str:
    """A batch/v1 Job trial as KFP component YAML (loads with ``load_component_from_text``)."""
    check_experiment(exp)
    c = _container(exp)
    command = [str(x) for x in (c.get("command") or [])] + [str(x) for x in (c.get("args") or [])]
    if not c.get("command"):
        raise UnsupportedExperiment(f"{_TT}: container {c.get('name')!r} command",
                                    "is required on KFP: the metrics wrapper runs the command, so the image's "
                                    "entrypoint cannot be used; give the container a command")
    fields = trial_fields(exp)
    keys = {f["trialParameter"]: k for k, f in fields.items()}
    argv = [_arg(a, exp, keys) for a in command]
    spec = {
        "name": f"{exp.name}-trial",
        "description": f"One trial of Katib Experiment {exp.name}: the training command under the metrics wrapper.",
        "inputs": [{"name": TRIAL_KEY, "type": "String", "description": "the trial's name"},
                   {"name": WRAPPER_KEY, "type": "Artifact",
                    "description": "the metrics wrapper, hp_components/metrics.py (the suggest step's wrapper output)"}]
        + ([{"name": STOP_KEY, "type": "String",
             "description": "the trial's early-stopping rule (name;value;comparison;startStep), empty for none"}]
           if uses_stop_rules(exp) else [])
        + [{"name": k, "type": "String", "description": f"${{trialParameters.{f['trialParameter']}}}"}
           for k, f in fields.items()],
        "outputs": [{"name": "observation", "type": "String",
                     "description": "the wrapper's result: {condition, reason, exitCode, metrics, objectiveValue, intermediateValues}"}],
        "implementation": {"container": {
            "image": str(c.get("image") or "python:3.11-slim"),
            "command": ["python3", {"inputPath": WRAPPER_KEY}, *wrapper_args(exp, {"inputValue": STOP_KEY}),
                        "--output", {"outputPath": "observation"},
                        "--", *argv],
        }},
    }
    return yaml.safe_dump(spec, sort_keys=False, width=120)


def trial_inputs(exp: Experiment, item: Any) -> dict[str, Any]:
    """The trial component's arguments from a ParallelFor loop item (all but ``hp_wrapper``)."""
    stop = {STOP_KEY: getattr(item, STOP_KEY)} if uses_stop_rules(exp) else {}
    return {TRIAL_KEY: getattr(item, TRIAL_KEY), **stop, **{k: getattr(item, k) for k in trial_fields(exp)}}


def trial_component(exp: Experiment) -> Any:
    """The trial as a KFP component."""
    from kfp import components

    return components.load_component_from_text(trial_component_text(exp))


def configure_trial_task(task: Any, exp: Experiment) -> Any:
    """Carry the container's resources, env, node selector, tolerations and volumes onto ``task``."""
    from kfp import kubernetes

    c = _container(exp)
    pod = _pod_spec(exp)
    where = f"{_TT} container {c.get('name')!r}"
    resources = c.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    if "cpu" in requests:
        task.set_cpu_request(str(requests["cpu"]))
    if "memory" in requests:
        task.set_memory_request(str(requests["memory"]))
    if "cpu" in limits:
        task.set_cpu_limit(str(limits["cpu"]))
    if "memory" in limits:
        task.set_memory_limit(str(limits["memory"]))
    accelerators = {k: v for k, v in {**requests, **limits}.items() if k not in ("cpu", "memory", "ephemeral-storage")}
    if len(accelerators) > 1:
        raise UnsupportedExperiment(f"{where} resources", f"KFP sets one accelerator per task, not {sorted(accelerators)}")
    for kind, count in accelerators.items():
        try:
            n = int(str(count))
        except ValueError:
            raise UnsupportedExperiment(f"{where} resources.limits.{kind}", f"{count!r} is not a whole number") from None
        task.set_accelerator_type(kind).set_accelerator_limit(n)
    for i, env in enumerate(c.get("env") or []):
        name = env.get("name")
        if "value" in env:
            value = str(env["value"])
            if PLACEHOLDER_RE.search(value):
                raise UnsupportedExperiment(f"{where} env[{i}].value", "KFP cannot substitute trial parameters into "
                                            "env values; pass them as command arguments")
            task.set_env_variable(name, value)
            continue
        source = env.get("valueFrom") or {}
        if "fieldRef" in source:
            kubernetes.use_field_path_as_env(task, name, source["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            kubernetes.use_secret_as_env(task, ref["name"], {ref["key"]: name}, optional=bool(ref.get("optional")))
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            kubernetes.use_config_map_as_env(task, ref["name"], {ref["key"]: name}, optional=bool(ref.get("optional")))
        else:
            raise UnsupportedExperiment(f"{where} env[{i}].valueFrom", f"{sorted(source)} is not supported on KFP")
    for key, value in (pod.get("nodeSelector") or {}).items():
        kubernetes.add_node_selector(task, key, str(value))
    for tol in pod.get("tolerations") or []:
        kubernetes.add_toleration(task, key=tol.get("key"), operator=tol.get("operator"), value=tol.get("value"),
                                  effect=tol.get("effect"), toleration_seconds=tol.get("tolerationSeconds"))
    affinity = (pod.get("affinity") or {}).get("nodeAffinity")
    if affinity:
        kubernetes.add_node_affinity_json(task, affinity)
    secrets = [s["name"] for s in pod.get("imagePullSecrets") or [] if s.get("name")]
    if secrets:
        kubernetes.set_image_pull_secrets(task, secrets)
    if c.get("imagePullPolicy"):
        kubernetes.set_image_pull_policy(task, c["imagePullPolicy"])
    _volumes(task, pod, c, where)
    ignored = sorted(k for k in ("serviceAccountName", "securityContext", "hostNetwork", "initContainers",
                                 "priorityClassName") if pod.get(k))
    if len(pod.get("containers") or []) > 1:
        ignored.append("containers other than the primary one")
    if ignored:
        warnings.warn(f"{_TT}: not carried over to KFP: {', '.join(ignored)}", stacklevel=3)
    return task


#: what the launcher step requests: it only talks to the API server (the job's replicas keep their resources)
LAUNCHER_CPU, LAUNCHER_MEMORY = "100m", "256Mi"


def configure_launcher_task(task: Any) -> Any:
    """A modest cpu/memory request on a launcher task; no accelerator, none of the trialSpec's resources."""
    return task.set_cpu_request(LAUNCHER_CPU).set_memory_request(LAUNCHER_MEMORY)


def _volumes(task: Any, pod: dict[str, Any], c: dict[str, Any], where: str) -> None:
    from kfp import kubernetes

    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    for i, mount in enumerate(c.get("volumeMounts") or []):
        vol = volumes.get(mount.get("name"))
        path = mount.get("mountPath")
        field = f"{where} volumeMounts[{i}]"
        if vol is None:
            raise UnsupportedExperiment(field, f"no volume named {mount.get('name')!r} in the pod spec")
        if "persistentVolumeClaim" in vol:
            kubernetes.mount_pvc(task, vol["persistentVolumeClaim"]["claimName"], path)
        elif "secret" in vol:
            kubernetes.use_secret_as_volume(task, vol["secret"]["secretName"], path)
        elif "configMap" in vol:
            kubernetes.use_config_map_as_volume(task, vol["configMap"]["name"], path)
        elif "emptyDir" in vol:
            ed = vol["emptyDir"] or {}
            kubernetes.empty_dir_mount(task, vol["name"], path, medium=ed.get("medium"), size_limit=ed.get("sizeLimit"))
        else:
            raise UnsupportedExperiment(field, f"volume {vol.get('name')!r} of this type is not supported on KFP "
                                        "(persistentVolumeClaim, secret, configMap and emptyDir are)")
