"""A Katib Experiment as a recursive Argo WorkflowTemplate, built with Hera.

    main:  suggest -> loop(trials, batch)
    loop:  trial (withParam over the batch, parallelism: parallelTrialCount, continueOn failures)
           -> collect (records the batch in the history, decides, suggests the next batch)
           -> loop again, when collect says the experiment is not done

The history travels as an artifact (``history.json``); parameters carry only the batch (names
and parameter values), the trial observations and a small status, so a round adds about the
same few kilobytes to the Workflow's status however long the experiment has run. The
experiment itself is written into the suggest/collect templates, not passed per step.
"""

from __future__ import annotations

import copy
import json
import math
import re
from typing import Any, Callable

from hera.workflows import Artifact, Container, Parameter, RawArtifact, Resource, Step, Steps, Workflow, WorkflowTemplate, models as m

from hp_components.experiment import Experiment
from hp_components.jobs import JobTrialError, check_job_trial, created_as_job, label_job, replica_specs, resource_path
from hp_components.steps import DEFAULT_IMAGE, WRAPPER_PROGRAM, wrapper_args
from hp_components.template import TemplateError, deadline, meta_value, primary_container_spec, render, render_text

from hp_components.argo._errors import CompileError

__all__ = ["workflow_template", "workflow", "MAX_ROUNDS", "template_name", "rbac"]

#: Argo stops nesting templates at depth 100 (maxAllowedStackDepth); each round nests one level
MAX_ROUNDS = 90
_PARAM_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
_TRIAL_NAME = "hp-trial-name"
_OBS = "/tmp/hp-observation.json"
_TT = "spec.trialTemplate"


def template_name(exp: Experiment) -> str:
    """The WorkflowTemplate's name: ``<experiment>-tune``."""
    return f"{exp.name}-tune"


def _check(exp: Experiment) -> None:
    spec = exp.spec
    ts = spec.trial_template.trial_spec or {}
    if created_as_job(exp):
        try:
            check_job_trial(exp)
        except JobTrialError as e:
            raise CompileError(e.field, e.message) from None
        _check_manifest_values(exp)
    if spec.max_trial_count is None:
        raise CompileError("spec.maxTrialCount", "is required on Argo: each round nests the loop template one level "
                           f"deeper, and Argo stops at depth 100; set it (at most {MAX_ROUNDS} rounds)")
    rounds = math.ceil(spec.max_trial_count / spec.parallel_trial_count)
    if rounds > MAX_ROUNDS:
        raise CompileError("spec.maxTrialCount", f"{spec.max_trial_count} trials at {spec.parallel_trial_count} at a time "
                           f"take {rounds} rounds, but Argo nests templates at most 100 deep; raise "
                           f"spec.parallelTrialCount or lower spec.maxTrialCount (at most {MAX_ROUNDS} rounds)")
    for i, tp in enumerate(spec.trial_template.trial_parameters or []):
        if not _PARAM_NAME.match(tp.name):
            raise CompileError(f"{_TT}.trialParameters[{i}].name",
                               f"{tp.name!r} cannot be an Argo parameter name (letters, digits, '-' and '_' only)")
    if "{{" in exp.to_json():
        where = "spec.trialTemplate.trialSpec" if "{{" in json.dumps(ts) else "spec"
        raise CompileError(where, "contains '{{', which Argo would read as one of its own variables; remove it")


_UNSAFE = re.compile(r'["\\\x00-\x1f]')


def _check_manifest_values(exp: Experiment) -> None:
    """Argo writes parameter values into the manifest's text: refuse values that would break it."""
    for i, p in enumerate(exp.spec.parameters):
        for value in p.feasible_space.values or []:
            if _UNSAFE.search(value):
                raise CompileError(f"spec.parameters[{i}].feasibleSpace.list",
                                   f"{value!r}: a {exp.trial_kind} trial's values are written into the job manifest "
                                   "by Argo, so they must not contain quotes, backslashes or control characters")


def _arg(text: str, exp: Experiment) -> str:
    """A trialSpec string with ``${trialParameters.x}`` and ``${trialSpec.*}`` as Argo inputs."""
    return render_text(text, *_placeholders(exp))


def _placeholders(exp: Experiment) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """The template's callbacks: a trial parameter or the trial's name -> its Argo input; other metadata static."""
    def meta(key: str) -> str:
        return "{{inputs.parameters.%s}}" % _TRIAL_NAME if key == "Name" else meta_value(exp, "", key)

    return (lambda name: "{{inputs.parameters.%s}}" % name), meta


def _render(obj: Any, exp: Experiment) -> Any:
    return render(obj, *_placeholders(exp))


def _resources(res: dict[str, Any] | None) -> m.ResourceRequirements | None:
    """Requests and limits, quantities as Kubernetes strings (``nvidia.com/gpu: 2`` -> ``"2"``)."""
    if not res:
        return None
    return m.ResourceRequirements(**{k: {q: str(v) for q, v in (res.get(k) or {}).items()} or None
                                     for k in ("limits", "requests")})


def _trial_template(exp: Experiment) -> Container:
    spec = exp.spec
    ts = spec.trial_template.trial_spec or {}
    name = spec.trial_template.primary_container_name
    try:
        c = primary_container_spec(exp)
    except TemplateError:
        raise CompileError(f"{_TT}.primaryContainerName", f"no container named {name!r} in the trialSpec") from None
    user = [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]
    if not user:
        raise CompileError(f"{_TT}.trialSpec", f"container {name!r} needs a command: the metrics wrapper runs it")
    if not c.get("image"):
        raise CompileError(f"{_TT}.trialSpec", f"container {name!r} needs an image")
    pod = (((ts.get("spec") or {}).get("template") or {}).get("spec") or {})
    limit = deadline(ts)
    args = [*wrapper_args(exp), "--name", "{{inputs.parameters.%s}}" % _TRIAL_NAME, "--output", _OBS, "--", *user]
    container = _render({k: v for k, v in c.items() if k not in ("name", "command", "args", "image", "ports")}, exp)
    inputs = [Parameter(name=_TRIAL_NAME)] + [Parameter(name=tp.name) for tp in spec.trial_template.trial_parameters or []]
    return Container(
        name="trial",
        image=_arg(str(c["image"]), exp),
        command=["python3", "-c", WRAPPER_PROGRAM],
        args=[_arg(a, exp) for a in args],
        env=[m.EnvVar(**e) for e in container.get("env", [])] or None,
        resources=_resources(container.get("resources")),
        volume_mounts=[m.VolumeMount(**v) for v in container.get("volumeMounts", [])] or None,
        working_dir=container.get("workingDir"),
        image_pull_policy=container.get("imagePullPolicy"),
        node_selector=pod.get("nodeSelector"),
        tolerations=[m.Toleration(**t) for t in pod.get("tolerations", [])] or None,
        affinity=m.Affinity(**pod["affinity"]) if pod.get("affinity") else None,
        # a safety net behind the wrapper's own --timeout (which records DeadlineExceeded)
        active_deadline_seconds=int(limit + 60) if limit else None,
        inputs=inputs,
        outputs=[Parameter(name="observation", value_from=m.ValueFrom(path=_OBS, default="{}"))],
    )


def _primary_replica(exp: Experiment) -> str:
    """The replica type whose pods carry the metrics (Master, Chief or Launcher; else the first one)."""
    specs = replica_specs(exp.spec.trial_template.trial_spec or {})
    return next((k for k in specs if k.lower() in ("master", "chief", "launcher")), next(iter(specs), "Master"))


def _job_trial_template(exp: Experiment, image: str, experiment: str) -> Steps:
    """A Kubeflow training job as a trial: create it (resource step), then ``hp-tune step launch --observe-only``.

    The resource step waits in Argo's condition syntax (label selectors over the job's JSON):
    done when the training operator sets ``status.completionTime`` (it does on success and on
    failure), failed when the primary replica has a failed pod. The observe step then decides
    the outcome with the experiment's own GJSON conditions, as Katib does, reads the primary
    pod's log for the metrics and deletes the job unless ``retain``; the job is owned by the
    workflow either way, so deleting the workflow deletes it.
    """
    spec = exp.spec
    name_param = "{{inputs.parameters.%s}}" % _TRIAL_NAME
    manifest = label_job(copy.deepcopy(spec.trial_template.trial_spec or {}), exp.name, name_param)
    manifest["metadata"]["name"] = name_param
    params = [tp.name for tp in spec.trial_template.trial_parameters or []]
    inputs = [Parameter(name=_TRIAL_NAME)] + [Parameter(name=n) for n in params]
    limit = deadline(manifest)
    create = Resource(
        name="create-job", action="create", set_owner_reference=True,
        manifest=json.dumps(_render(manifest, exp), indent=1),
        success_condition="status.completionTime",
        failure_condition=f"status.replicaStatuses.{_primary_replica(exp)}.failed > 0",
        active_deadline_seconds=int(limit + 60) if limit else None, inputs=inputs)
    observe = Container(
        name="observe-job", image=image, command=["hp-tune", "step"],
        args=["launch", "--observe-only", "--experiment", experiment, "--name", name_param,
              "--namespace", "{{workflow.namespace}}", "--output", _OBS,
              *[x for n in params for x in ("--param", "%s={{inputs.parameters.%s}}" % (n, n))]],
        inputs=inputs, outputs=[Parameter(name="observation", value_from=m.ValueFrom(path=_OBS))])
    arguments = [Parameter(name=n, value="{{inputs.parameters.%s}}" % n) for n in [_TRIAL_NAME, *params]]
    with Steps(name="trial", inputs=inputs, outputs=[Parameter(name="observation", value_from=m.ValueFrom(
            parameter="{{steps.observe.outputs.parameters.observation}}"))]) as trial:
        Step(name="create", template=create, arguments=arguments, continue_on=m.ContinueOn(failed=True, error=True))
        Step(name="observe", template=observe, arguments=arguments)
    return trial


def rbac(exp: Experiment) -> list[dict[str, Any]]:
    """The ServiceAccount, Role and RoleBinding a workflow with job trials runs as (``<experiment>-tune``).

    The Argo executor creates the job and reports step results (``workflowtaskresults``); the
    observe step reads the job, lists its pods, reads the primary pod's log and deletes the job.
    """
    ts = exp.spec.trial_template.trial_spec or {}
    group, _, plural = resource_path(ts)
    name, ns = template_name(exp), exp.metadata.namespace
    meta = {"name": name, **({"namespace": ns} if ns else {}), "labels": {"hp-components/experiment": exp.name}}
    rules = [
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
        {"apiGroups": [group], "resources": [plural], "verbs": ["create", "get", "list", "watch", "delete"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, **({"namespace": ns} if ns else {})}]},
    ]


def _step_container(exp: Experiment, name: str, image: str, args: list[str], inputs: list[Any],
                    outputs: list[Any]) -> Container:
    return Container(name=name, image=image, command=["hp-tune", "step"], args=args, inputs=inputs, outputs=outputs)


def _build(exp: Experiment, image: str | None, holder: Any) -> Any:
    _check(exp)
    image = image or DEFAULT_IMAGE
    experiment = exp.to_json()
    out = {p: f"/tmp/hp/{p}" for p in ("batch.json", "params.json", "history.json", "done", "best.json", "status.json")}
    with holder as w:
        suggest = _step_container(
            exp, "suggest", image,
            ["suggest", "--experiment", experiment, "--trials-out", out["batch.json"], "--params-out", out["params.json"]],
            inputs=[],
            outputs=[Parameter(name="trials", value_from=m.ValueFrom(path=out["params.json"])),
                     Artifact(name="batch", path=out["batch.json"])])
        trial = _job_trial_template(exp, image, experiment) if created_as_job(exp) else _trial_template(exp)
        collect = _step_container(
            exp, "collect", image,
            ["collect", "--experiment", experiment, "--history", "/tmp/hp/in/history.json",
             "--trials", "/tmp/hp/in/batch.json", "--observations", "{{inputs.parameters.observations}}",
             "--history-out", out["history.json"], "--done-out", out["done"], "--best-out", out["best.json"],
             "--summary-out", out["status.json"], "--next-trials-out", out["batch.json"],
             "--next-params-out", out["params.json"]],
            inputs=[Parameter(name="observations"),
                    Artifact(name="history", path="/tmp/hp/in/history.json"),
                    Artifact(name="batch", path="/tmp/hp/in/batch.json")],
            outputs=[Parameter(name="done", value_from=m.ValueFrom(path=out["done"]), global_name="done"),
                     Parameter(name="best", value_from=m.ValueFrom(path=out["best.json"]), global_name="best"),
                     Parameter(name="status", value_from=m.ValueFrom(path=out["status.json"]), global_name="status"),
                     Parameter(name="trials", value_from=m.ValueFrom(path=out["params.json"])),
                     Artifact(name="history", path=out["history.json"]),
                     Artifact(name="batch", path=out["batch.json"])])
        trial_args = [Parameter(name=_TRIAL_NAME, value="{{item.name}}")] + [
            Parameter(name=tp.name, value="{{item.parameters.%s}}" % tp.name)
            for tp in exp.spec.trial_template.trial_parameters or []]
        with Steps(name="loop", parallelism=exp.spec.parallel_trial_count,
                   inputs=[Parameter(name="trials"), Artifact(name="batch", path="/tmp/hp/loop/batch.json"),
                           Artifact(name="history", path="/tmp/hp/loop/history.json")]) as loop:
            Step(name="trial", template=trial, with_param="{{inputs.parameters.trials}}", arguments=trial_args,
                 continue_on=m.ContinueOn(failed=True, error=True))
            Step(name="collect", template=collect, arguments=[
                Parameter(name="observations", value="{{steps.trial.outputs.parameters.observation}}"),
                Artifact(name="history", from_="{{inputs.artifacts.history}}"),
                Artifact(name="batch", from_="{{inputs.artifacts.batch}}")])
            Step(name="next", template="loop", when="{{steps.collect.outputs.parameters.done}} == false", arguments=[
                Parameter(name="trials", value="{{steps.collect.outputs.parameters.trials}}"),
                Artifact(name="batch", from_="{{steps.collect.outputs.artifacts.batch}}"),
                Artifact(name="history", from_="{{steps.collect.outputs.artifacts.history}}")])
        with Steps(name="main"):
            Step(name="suggest", template=suggest)
            Step(name="loop", template=loop, arguments=[
                Parameter(name="trials", value="{{steps.suggest.outputs.parameters.trials}}"),
                Artifact(name="batch", from_="{{steps.suggest.outputs.artifacts.batch}}"),
                RawArtifact(name="history", data="[]")])  # the first round starts from an empty history
    return w


def workflow_template(exp: Experiment, image: str | None = None) -> dict[str, Any]:
    """The WorkflowTemplate ``<experiment>-tune`` (``argo submit --from workflowtemplate/<name>``)."""
    labels = {"hp-components/experiment": exp.name}
    holder = WorkflowTemplate(name=template_name(exp), namespace=exp.metadata.namespace, entrypoint="main",
                              labels=labels, service_account_name=template_name(exp) if created_as_job(exp) else None)
    return _finish(_build(exp, image, holder).to_dict())


def _finish(doc: dict[str, Any]) -> dict[str, Any]:
    """Argo's JSON schema types activeDeadlineSeconds (IntOrString) as a string; Hera writes an int."""
    for t in doc["spec"]["templates"]:
        if isinstance(t.get("activeDeadlineSeconds"), int):
            t["activeDeadlineSeconds"] = str(t["activeDeadlineSeconds"])
    return doc


def workflow(exp: Experiment, image: str | None = None) -> dict[str, Any]:
    """A standalone Workflow (``argo submit workflow.yaml``), named ``<experiment>-<random>``."""
    labels = {"hp-components/experiment": exp.name}
    holder = Workflow(generate_name=f"{exp.name}-", namespace=exp.metadata.namespace, entrypoint="main", labels=labels,
                      service_account_name=template_name(exp) if created_as_job(exp) else None)
    return _finish(_build(exp, image, holder).to_dict())
