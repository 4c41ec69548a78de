"""Rendering a trial from ``trialTemplate``: ``${trialParameters.x}`` and ``${trialSpec.Name}``.

Values are substituted into the string leaves of the trialSpec, never into YAML or shell text,
so a value with quotes, spaces, ``;`` or newlines stays one string (Katib substitutes into the
serialized template and can break it). ::

    from hp_components.template import render_trial_spec, primary_container
    spec = render_trial_spec(exp, trial)              # the trialSpec with values filled in
    run = primary_container(exp, spec)
    print(run.argv, run.env, run.timeout, run.gpus)   # what a local runner executes
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from hp_components.experiment import Experiment, find_containers
from hp_components.spec import PLACEHOLDER_RE, meta_key
from hp_components.trials import Trial

__all__ = ["PLACEHOLDER_RE", "trial_parameters", "render_text", "render", "meta_value", "primary_container_spec",
           "render_trial_spec", "render_values", "primary_container", "pytorch_workers", "deadline", "Container",
           "TemplateError"]

_K8S_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class TemplateError(ValueError):
    """A trialSpec that cannot be run the way asked (for example a container without a command)."""


def render_text(text: str, parameter: Callable[[str], str], meta: Callable[[str], str]) -> str:
    """``text`` with each ``${trialParameters.x}`` -> ``parameter(x)`` and ``${trialSpec.K}`` -> ``meta(K)``.

    The only place ``${...}`` is rendered, for every engine: locally the callbacks give values, the
    Argo and KFP drivers give their engine's placeholders. One pass: what a callback returns is
    never scanned again, so a value that reads ``${trialSpec.Name}`` stays that text. ::

        render_text("--lr=${trialParameters.lr} ${trialSpec.Name}", {"lr": "0.1"}.__getitem__,
                    lambda key: "t-1")   # -> '--lr=0.1 t-1'
    """
    return PLACEHOLDER_RE.sub(lambda m: (parameter if m.group(1) == "trialParameters" else meta)(m.group(2)), text)


def render(obj: Any, parameter: Callable[[str], str], meta: Callable[[str], str]) -> Any:
    """:func:`render_text` applied to every string leaf of a JSON-like value (a copy; keys untouched)."""
    if isinstance(obj, str):
        return render_text(obj, parameter, meta)
    if isinstance(obj, dict):
        return {k: render(v, parameter, meta) for k, v in obj.items()}
    if isinstance(obj, list):
        return [render(v, parameter, meta) for v in obj]
    return copy.deepcopy(obj)


def meta_value(experiment: Experiment, trial_name: str, key: str) -> str:
    """What ``${trialSpec.<key>}`` is for a trial: Name, Namespace, Kind, APIVersion, Labels[k], Annotations[k]."""
    ts = experiment.spec.trial_template.trial_spec or {}
    md = ts.get("metadata") or {}
    simple = {
        "Name": trial_name,
        "Namespace": experiment.metadata.namespace or "default",
        "Kind": str(ts.get("kind", "")),
        "APIVersion": str(ts.get("apiVersion", "")),
    }
    if key in simple:
        return simple[key]
    m = re.fullmatch(r"(Labels|Annotations)\[(.+)\]", key)
    if m:
        return str((md.get(m.group(1).lower()) or {}).get(m.group(2), ""))
    return ""


def trial_parameters(experiment: Experiment, trial: Trial) -> dict[str, str]:
    """``trialParameters`` name -> the value this trial substitutes for ``${trialParameters.name}``."""
    out: dict[str, str] = {}
    for tp in experiment.spec.trial_template.trial_parameters or []:
        if tp.reference in trial.assignments:
            out[tp.name] = trial.assignments[tp.reference]
        else:
            key = meta_key(tp.reference)
            out[tp.name] = meta_value(experiment, trial.name, key) if key is not None else ""
    return out


def render_trial_spec(experiment: Experiment, trial: Trial) -> dict[str, Any]:
    """The trialSpec of ``trial`` with every placeholder replaced, and its name set."""
    return render_values(experiment, trial.name, trial_parameters(experiment, trial))


def render_values(experiment: Experiment, trial_name: str, values: dict[str, str]) -> dict[str, Any]:
    """The trialSpec with ``${trialParameters.x}`` -> ``values[x]`` and the trial's metadata, named ``trial_name``."""
    rendered = render(experiment.spec.trial_template.trial_spec or {},
                      lambda name: values.get(name, "${trialParameters.%s}" % name),
                      lambda key: meta_value(experiment, trial_name, key))
    rendered.setdefault("metadata", {})
    rendered["metadata"] = {**(rendered["metadata"] or {}), "name": trial_name}
    return rendered


@dataclass
class Container:
    """The primary container of a rendered trial, as a local process would run it."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    gpus: int = 0


def _expand_k8s_vars(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion in command and args (``$$`` escapes, unknown stays)."""
    return _K8S_VAR.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def deadline(rendered: dict[str, Any]) -> float | None:
    """The smallest positive ``activeDeadlineSeconds`` anywhere in a trialSpec (the trial's time limit)."""
    found: list[float] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            v = obj.get("activeDeadlineSeconds")
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
                found.append(float(v))
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    walk(rendered)
    return min(found) if found else None


def primary_container_spec(experiment: Experiment, trial_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """The primary container (``primaryContainerName``) of ``trial_spec`` (default: the experiment's).

    Raises :class:`TemplateError` naming ``spec.trialTemplate.primaryContainerName`` when there is none.
    """
    name = experiment.spec.trial_template.primary_container_name
    spec = (experiment.spec.trial_template.trial_spec or {}) if trial_spec is None else trial_spec
    containers = find_containers(spec, name)
    if not containers:
        raise TemplateError(f"spec.trialTemplate.primaryContainerName: no container named {name!r}")
    return containers[0]


def primary_container(experiment: Experiment, rendered: dict[str, Any]) -> Container:
    """The command, env, deadline and GPU count of the primary container of a rendered trialSpec."""
    c = primary_container_spec(experiment, rendered)
    return _container(c, experiment.spec.trial_template.primary_container_name, deadline(rendered))


def _container(c: dict[str, Any], name: str, timeout: float | None) -> Container:
    env: dict[str, str] = {}
    for item in c.get("env") or []:
        if isinstance(item, dict) and "name" in item and "value" in item:
            env[str(item["name"])] = _expand_k8s_vars(str(item["value"]), env)
    command = [str(x) for x in (c.get("command") or [])]
    args = [str(x) for x in (c.get("args") or [])]
    if not command and not args:
        raise TemplateError(
            f"container {name!r} has no command or args: locally there is no image entrypoint to run; "
            "add a command to the container"
        )
    argv = [_expand_k8s_vars(x, env) for x in command + args]
    limits = ((c.get("resources") or {}).get("limits") or {})
    try:
        gpus = int(str(limits.get("nvidia.com/gpu", 0)))
    except ValueError:
        raise TemplateError(f"container {name!r}: nvidia.com/gpu limit {limits['nvidia.com/gpu']!r} is not a whole number") from None
    return Container(argv=argv, env=env, timeout=timeout, gpus=gpus)


def pytorch_workers(experiment: Experiment, rendered: dict[str, Any]) -> list[Container]:
    """A PyTorchJob's processes besides its master (rank 0), in rank order; [] for other kinds.

    Locally each replica is a process on this machine; the runner gives them the rendezvous
    environment torch.distributed expects (``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``,
    ``RANK``). Other Kubeflow job kinds (TFJob, MPIJob, XGBoostJob) run their primary replica only.
    """
    if rendered.get("kind") != "PyTorchJob":
        return []
    specs = ((rendered.get("spec") or {}).get("pytorchReplicaSpecs") or {})
    name = experiment.spec.trial_template.primary_container_name
    workers: list[Container] = []
    for role, replica in specs.items():
        if role.lower() == "master" or not isinstance(replica, dict):
            continue
        containers = find_containers(replica, name)
        if not containers:
            raise TemplateError(f"PyTorchJob replica {role!r} has no container named {name!r}")
        count = replica.get("replicas", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise TemplateError(f"PyTorchJob replica {role!r}: replicas must be a whole number >= 0, not {count!r}")
        workers += [_container(containers[0], name, deadline(rendered))] * count
    return workers
