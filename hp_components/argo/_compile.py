"""A Katib Experiment as a recursive Argo WorkflowTemplate, built with Hera.

    main:  suggest -> loop(trials, batch, history)          outputs: best, objective, status
    loop:  trial (withParam over flat items, parallelism: parallelTrialCount, continueOn failures,
                  retryStrategy for infrastructure faults)
           -> collect (the aggregate {{steps.trial.outputs.parameters}}: always defined, even
                       when every trial pod failed; records, decides, suggests the next batch)
           -> loop again, when collect says the experiment is not done
           outputs: the last round's (an expression on steps.next.status, Argo's documented
                    "conditional parameters" pattern)

Each fan-out item is flat (``{"hp-trial-name": ..., "<trialParameter>": "<value>"}``, every value a
string): Argo's processItem defines ``{{item.K}}`` for top-level keys only. With ``medianstop`` an
item also holds ``hp-stop-rule``, the trial's early-stopping rule ("" until enough trials
succeeded), which the trial pod's wrapper enforces (``--stop-rule``). Steps templates
declare their input artifacts without ``path`` (validate.go allows a path on leaves only).

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

from hp_components.drivers import seconds
from hp_components.experiment import Experiment
from hp_components.jobs import JobTrialError, check_job_trial, created_as_job, label_job, replica_specs, resource_path
from hp_components.steps import DEFAULT_IMAGE, ITEM_NAME_KEY, STOP_RULE_KEY, WRAPPER_PROGRAM, uses_stop_rules, wrapper_args
from hp_components.template import TemplateError, deadline, meta_value, primary_container_spec, render, render_text

from hp_components.argo._errors import CompileError

__all__ = ["workflow_template", "workflow", "MAX_ROUNDS", "template_name", "rbac", "Options"]

#: Argo stops nesting templates at depth 100 (workflow/controller/controller.go maxAllowedStackDepth;
#: operator.go executeTemplate errors once the depth reaches it, so 99 levels run). A run of R rounds
#: nests main, R loops, the trial and its pod: R + 3 levels; 90 rounds leave 6 for a templateRef caller.
MAX_ROUNDS = 90
_PARAM_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
_TRIAL_NAME = ITEM_NAME_KEY  # the trial name's key in a fan-out item is also the trial template's input
#: the outputs the entry point (``main``) exposes to a caller: {{steps.<step>.outputs.parameters.best}}
ENTRY_OUTPUTS = ("best", "objective", "status")
#: global output names (``status.outputs.parameters``) that ``hp-tune status`` reads (each round's
#: collect sets them; a caller that uses templateRef sees them among its own workflow outputs)
GLOBALS = {"done": "done", "best": "best", "status": "status"}


class Options:
    """Run-time settings of the generated workflow (Python API; the defaults suit most clusters).

    ``retries``: retries of a trial pod that fails or errors for an infrastructure reason (the
    metrics wrapper exits 0 after any training failure, so only infrastructure faults fail the
    pod); ``pending_timeout``: a trial pod Pending longer than this fails (Argo ``pendingTimeout``);
    ``pod_gc``: Argo ``podGC.strategy``; ``ttl_success`` / ``ttl_failure``: seconds the finished
    Workflow is kept (``ttlStrategy``; ``hp-tune status`` reads it until then);
    ``active_deadline_seconds``: the whole workflow's deadline (default: worst case from the
    trial deadline, else 7 days).
    """

    def __init__(self, retries: int = 2, pending_timeout: str = "30m", pod_gc: str = "OnPodSuccess",
                 ttl_success: int = 7 * 86400, ttl_failure: int = 14 * 86400,
                 active_deadline_seconds: int | None = None):
        self.retries, self.pending_timeout, self.pod_gc = retries, pending_timeout, pod_gc
        self.ttl_success, self.ttl_failure, self.active_deadline_seconds = ttl_success, ttl_failure, active_deadline_seconds
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
        if tp.name == _TRIAL_NAME:
            raise CompileError(f"{_TT}.trialParameters[{i}].name", f"{_TRIAL_NAME!r} is the trial name's key on Argo; rename it")
        if tp.name == STOP_RULE_KEY and uses_stop_rules(exp):
            raise CompileError(f"{_TT}.trialParameters[{i}].name", f"{STOP_RULE_KEY!r} is the stop rule's key on Argo; rename it")
    if uses_stop_rules(exp) and _UNSAFE.search(spec.objective.objective_metric_name):
        raise CompileError("spec.objective.objectiveMetricName",
                           "with early stopping the name travels in a fan-out item's value, which Argo hands over "
                           "as its JSON text without the outer quotes: it must not contain quotes, backslashes or "
                           "control characters")
    _check_item_values(exp)
    if "{{" in exp.to_json():
        where = "spec.trialTemplate.trialSpec" if "{{" in json.dumps(ts) else "spec"
        raise CompileError(where, "contains '{{', which Argo would read as one of its own variables; remove it")


_UNSAFE = re.compile(r'["\\\x00-\x1f\u2028\u2029]')


def _check_item_values(exp: Experiment) -> None:
    """Refuse categorical values that ``{{item.K}}`` would not hand over as they are.

    Argo (pkg/apis/workflow/v1alpha1/item.go ``Item.String``, used by operator.go processItem)
    formats a map item's value as its JSON text with the outer quotes cut off, so a ``"``, a
    backslash or a control character would reach the trial escaped (``\\"``). For job trials the
    value is also written into the job manifest's text.
    """
    for i, p in enumerate(exp.spec.parameters):
        for value in p.feasible_space.values or []:
            if _UNSAFE.search(value):
                raise CompileError(f"spec.parameters[{i}].feasibleSpace.list",
                                   f"{value!r}: Argo hands a fan-out item's value to the trial as its JSON text "
                                   "without the outer quotes, so it must not contain quotes, backslashes or "
                                   "control characters")


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


#: pod-spec fields an Argo template carries under the same name
_TEMPLATE_POD_FIELDS = ("nodeSelector", "tolerations", "affinity", "volumes", "securityContext", "serviceAccountName",
                        "automountServiceAccountToken", "priorityClassName", "schedulerName", "hostAliases")
#: pod-spec fields handled elsewhere: the containers (primary, sidecars, init), the workflow's pull
#: secrets, the trial deadline (the wrapper's --timeout), restartPolicy (Argo's pods run once)
_HANDLED_POD_FIELDS = ("containers", "initContainers", "imagePullSecrets", "activeDeadlineSeconds", "restartPolicy")


def _pod(exp: Experiment) -> dict[str, Any]:
    ts = exp.spec.trial_template.trial_spec or {}
    return ((ts.get("spec") or {}).get("template") or {}).get("spec") or {}


def _pod_template_fields(exp: Experiment) -> dict[str, Any]:
    """Every pod-spec field of the trialSpec, as the Argo template's own fields.

    Same-named template fields (volumes, securityContext, serviceAccountName, priorityClassName,
    nodeSelector, tolerations, ...); the other containers as ``sidecars``; ``initContainers``;
    the pod template's labels and annotations as ``metadata``; any other pod-spec field
    (runtimeClassName, hostNetwork, dnsPolicy, topologySpreadConstraints, ...) in ``podSpecPatch``,
    which Argo merges into the pod it creates. ``imagePullSecrets`` go to the workflow's spec and
    into ``podSpecPatch`` (templateRef callers use only the templates, not the template's spec).
    """
    ts = exp.spec.trial_template.trial_spec or {}
    pod = _pod(exp)
    primary = exp.spec.trial_template.primary_container_name
    fields: dict[str, Any] = {k: pod[k] for k in _TEMPLATE_POD_FIELDS if pod.get(k) not in (None, [], {})}
    sidecars = [c for c in pod.get("containers") or [] if c.get("name") != primary]
    if sidecars:
        fields["sidecars"] = sidecars
    if pod.get("initContainers"):
        fields["initContainers"] = pod["initContainers"]
    meta = ((ts.get("spec") or {}).get("template") or {}).get("metadata") or {}
    if meta.get("labels") or meta.get("annotations"):
        fields["metadata"] = {k: {str(a): str(b) for a, b in meta[k].items()} for k in ("labels", "annotations") if meta.get(k)}
    patch = {k: v for k, v in pod.items() if k not in _TEMPLATE_POD_FIELDS + _HANDLED_POD_FIELDS}
    if pod.get("imagePullSecrets"):  # also here: a caller using templateRef does not get the template's spec fields
        patch["imagePullSecrets"] = pod["imagePullSecrets"]
    if patch:
        fields["podSpecPatch"] = json.dumps(patch, sort_keys=True)
    return _render(fields, exp)


def _trial_template(exp: Experiment, opts: Options, extras: dict[str, dict[str, Any]]) -> Steps:
    """The trial: a steps template ``trial`` (with the retryStrategy) around the pod ``trial-pod``
    (with the pendingTimeout).

    Two levels because of how Argo's controller checks a Pending deadline (operator.go
    executeTemplate -> checkTemplateTimeouts): only on the node the template runs as, and only while
    that node is Pending. On a leaf with a retryStrategy that node is the Retry node, which stays
    Running, so the deadline would never fire; on a leaf straight under the loop, the ErrTimeout it
    returns fails the whole step group (steps.go executeStepGroup), whatever continueOn says. Here it
    fails the ``trial`` attempt's own step group, the attempt fails, is retried, and when the
    retries are used up the loop's continueOn records the trial Failed.
    """
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
    limit = deadline(ts)
    stops = [STOP_RULE_KEY] if uses_stop_rules(exp) else []
    args = [*wrapper_args(exp, "{{inputs.parameters.%s}}" % STOP_RULE_KEY), "--name", "{{inputs.parameters.%s}}" % _TRIAL_NAME,
            "--output", _OBS, "--", *user]
    container = _render({k: v for k, v in c.items() if k not in ("name", "command", "args", "image")}, exp)
    inputs = [Parameter(name=n) for n in [_TRIAL_NAME, *stops]] + [
        Parameter(name=tp.name) for tp in spec.trial_template.trial_parameters or []]
    extras["trial-pod"] = {
        **_pod_template_fields(exp),
        **({"pendingTimeout": opts.pending_timeout} if opts.pending_timeout else {}),
        "container": {k: v for k, v in container.items() if k != "resources"},  # env, volumeMounts, securityContext...
    }
    if opts.retries:
        extras["trial"] = {"retryStrategy": _retry(opts)}
    pod = Container(
        name="trial-pod",
        image=_arg(str(c["image"]), exp),
        command=["python3", "-c", WRAPPER_PROGRAM],
        args=[_arg(a, exp) for a in args],
        resources=_resources(container.get("resources")),
        # a safety net behind the wrapper's own --timeout (which records DeadlineExceeded)
        active_deadline_seconds=int(limit + 60) if limit else None,
        inputs=inputs,
        # no default: a pod that wrote no observation had an infrastructure fault (retried, then
        # recorded NoObservation), never an anonymous "{}" that collect could not match to its trial
        outputs=[Parameter(name="observation", value_from=m.ValueFrom(path=_OBS))],
    )
    names = [_TRIAL_NAME, *stops, *[tp.name for tp in spec.trial_template.trial_parameters or []]]
    with Steps(name="trial", inputs=[Parameter(name=n) for n in names], outputs=[Parameter(
            name="observation", value_from=m.ValueFrom(parameter="{{steps.run.outputs.parameters.observation}}"))]) as trial:
        Step(name="run", template=pod, arguments=[Parameter(name=n, value="{{inputs.parameters.%s}}" % n) for n in names])
    return trial


def _retry(opts: Options) -> dict[str, Any]:
    """Retries for infrastructure faults only: the metrics wrapper exits 0 after any training failure
    (recorded Failed in the observation), so a pod that fails or errors (eviction, OOM of the
    wrapper, node loss, executor errors) never hides a training result. Policy ``Always`` retries
    both Failed and Error nodes (operator.go processNodeRetries): which of the two Argo gives a pod
    that was evicted, OOM-killed or lost with its node depends on the pod's state, not on us."""
    return {"limit": str(opts.retries), "retryPolicy": "Always", "backoff": {"duration": "10s", "factor": "2", "cap": "5m"}}


def _primary_replica(exp: Experiment) -> str:
    """The replica type whose pods carry the metrics (Master, Chief or Launcher; else the first one)."""
    specs = replica_specs(exp.spec.trial_template.trial_spec or {})
    return next((k for k in specs if k.lower() in ("master", "chief", "launcher")), next(iter(specs), "Master"))


def _job_trial_template(exp: Experiment, image: str, experiment: str, opts: Options,
                        extras: dict[str, dict[str, Any]]) -> Steps:
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
    if opts.retries:  # the observe step fails only on infrastructure faults (it records a failed job)
        extras["observe-job"] = {"retryStrategy": _retry(opts)}
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


def _last_round(name: str) -> m.ValueFrom:
    """The loop's output ``name``: collect's when the recursion ends here, else the next round's.

    Argo's documented conditional-parameter pattern (an expr-lang ``valueFrom.expression``,
    workflow/controller/scope.go resolveParameter); a skipped step's status is ``Skipped``."""
    def ref(step: str) -> str:
        return f"steps['{step}'].outputs.parameters['{name}']"

    return m.ValueFrom(expression=f"steps['next'].status == 'Skipped' ? {ref('collect')} : {ref('next')}")


def _build(exp: Experiment, image: str | None, holder: Any, opts: Options, extras: dict[str, dict[str, Any]]) -> Any:
    _check(exp)
    image = image or DEFAULT_IMAGE
    experiment = exp.to_json()
    out = {p: f"/tmp/hp/{p}" for p in ("batch.json", "items.json", "history.json", "done", "best.json", "status.json",
                                       "best-parameters.json", "objective")}
    with holder as w:
        suggest = _step_container(
            exp, "suggest", image,
            ["suggest", "--experiment", experiment, "--trials-out", out["batch.json"], "--items-out", out["items.json"]],
            inputs=[],
            outputs=[Parameter(name="trials", value_from=m.ValueFrom(path=out["items.json"])),
                     Artifact(name="batch", path=out["batch.json"])])
        trial = (_job_trial_template(exp, image, experiment, opts, extras) if created_as_job(exp)
                 else _trial_template(exp, opts, extras))
        collect = _step_container(
            exp, "collect", image,
            ["collect", "--experiment", experiment, "--history", "/tmp/hp/in/history.json",
             "--trials", "/tmp/hp/in/batch.json", "--observations", "{{inputs.parameters.observations}}",
             "--history-out", out["history.json"], "--done-out", out["done"], "--best-out", out["best.json"],
             "--best-parameters-out", out["best-parameters.json"], "--objective-out", out["objective"],
             "--summary-out", out["status.json"], "--next-trials-out", out["batch.json"],
             "--next-items-out", out["items.json"]],
            inputs=[Parameter(name="observations"),
                    Artifact(name="history", path="/tmp/hp/in/history.json"),
                    Artifact(name="batch", path="/tmp/hp/in/batch.json")],
            outputs=[Parameter(name="done", value_from=m.ValueFrom(path=out["done"]), global_name=GLOBALS["done"]),
                     Parameter(name="best-trial", value_from=m.ValueFrom(path=out["best.json"]), global_name=GLOBALS["best"]),
                     Parameter(name="best", value_from=m.ValueFrom(path=out["best-parameters.json"])),
                     Parameter(name="objective", value_from=m.ValueFrom(path=out["objective"])),
                     Parameter(name="status", value_from=m.ValueFrom(path=out["status.json"]), global_name=GLOBALS["status"]),
                     Parameter(name="trials", value_from=m.ValueFrom(path=out["items.json"])),
                     Artifact(name="history", path=out["history.json"]),
                     Artifact(name="batch", path=out["batch.json"])])
        # one flat item per trial: processItem defines {{item.K}} for top-level keys only
        stops = [STOP_RULE_KEY] if uses_stop_rules(exp) and not created_as_job(exp) else []  # job trials: no wrapper
        trial_args = [Parameter(name=n, value="{{item.%s}}" % n) for n in [_TRIAL_NAME, *stops]] + [
            Parameter(name=tp.name, value="{{item.%s}}" % tp.name)
            for tp in exp.spec.trial_template.trial_parameters or []]
        with Steps(name="loop", parallelism=exp.spec.parallel_trial_count,
                   inputs=[Parameter(name="trials"), Artifact(name="batch"), Artifact(name="history")],
                   outputs=[Parameter(name=n, value_from=_last_round(n)) for n in ENTRY_OUTPUTS]) as loop:
            Step(name="trial", template=trial, with_param="{{inputs.parameters.trials}}", arguments=trial_args,
                 continue_on=m.ContinueOn(failed=True, error=True))
            # the whole aggregate, not .parameters.observation: processAggregateNodeOutputs sets it
            # ("[]") even when no trial pod succeeded, so collect records those trials Failed
            Step(name="collect", template=collect, arguments=[
                Parameter(name="observations", value="{{steps.trial.outputs.parameters}}"),
                Artifact(name="history", from_="{{inputs.artifacts.history}}"),
                Artifact(name="batch", from_="{{inputs.artifacts.batch}}")])
            Step(name="next", template="loop", when="{{steps.collect.outputs.parameters.done}} == false", arguments=[
                Parameter(name="trials", value="{{steps.collect.outputs.parameters.trials}}"),
                Artifact(name="batch", from_="{{steps.collect.outputs.artifacts.batch}}"),
                Artifact(name="history", from_="{{steps.collect.outputs.artifacts.history}}")])
        with Steps(name="main", outputs=[Parameter(name=n, value_from=m.ValueFrom(
                parameter="{{steps.loop.outputs.parameters.%s}}" % n)) for n in ENTRY_OUTPUTS]):
            Step(name="suggest", template=suggest)
            Step(name="loop", template=loop, arguments=[
                Parameter(name="trials", value="{{steps.suggest.outputs.parameters.trials}}"),
                Artifact(name="batch", from_="{{steps.suggest.outputs.artifacts.batch}}"),
                RawArtifact(name="history", data="[]")])  # the first round starts from an empty history
    return w


def _deadline(exp: Experiment, opts: Options) -> int:
    """The workflow's activeDeadlineSeconds: the worst case of every round, else 7 days."""
    if opts.active_deadline_seconds:
        return int(opts.active_deadline_seconds)
    limit = deadline(exp.spec.trial_template.trial_spec or {})
    if not limit:
        return 7 * 86400
    rounds = math.ceil((exp.spec.max_trial_count or 1) / exp.spec.parallel_trial_count)
    pending = _seconds(opts.pending_timeout) if opts.pending_timeout else 1800
    per_round = (opts.retries + 1) * (limit + 60 + pending + 300) + 600  # trials with retries, suggest/collect
    return int(rounds * per_round)


def _seconds(duration: str) -> int:
    found = seconds(duration)
    if found is None:
        raise CompileError("pending_timeout", f"{duration!r}: give seconds, or a number with s, m or h")
    return found


def _spec_fields(exp: Experiment, opts: Options) -> dict[str, Any]:
    """Workflow-level fields: clean-up, deadline, and the trial pods' pull secrets."""
    fields: dict[str, Any] = {
        "activeDeadlineSeconds": _deadline(exp, opts),
        "ttlStrategy": {"secondsAfterSuccess": opts.ttl_success, "secondsAfterFailure": opts.ttl_failure},
    }
    if opts.pod_gc:
        fields["podGC"] = {"strategy": opts.pod_gc}
    if _pod(exp).get("imagePullSecrets"):
        fields["imagePullSecrets"] = _pod(exp)["imagePullSecrets"]
    return fields


def workflow_template(exp: Experiment, image: str | None = None, options: Options | None = None) -> dict[str, Any]:
    """The WorkflowTemplate ``<experiment>-tune`` (``argo submit --from workflowtemplate/<name>``, or a
    ``templateRef: {name: <experiment>-tune, template: main}`` step in another workflow)."""
    opts = options or Options()
    labels = {"hp-components/experiment": exp.name}
    holder = WorkflowTemplate(name=template_name(exp), namespace=exp.metadata.namespace, entrypoint="main",
                              labels=labels, service_account_name=template_name(exp) if created_as_job(exp) else None)
    extras: dict[str, dict[str, Any]] = {}
    return _finish(_build(exp, image, holder, opts, extras).to_dict(), extras, _spec_fields(exp, opts))


def _finish(doc: dict[str, Any], extras: dict[str, dict[str, Any]], spec_fields: dict[str, Any]) -> dict[str, Any]:
    """Fields written on the dict: the trial pod's fields, workflow-level fields, and Argo's JSON schema
    typing of activeDeadlineSeconds (IntOrString, a string there) where Hera writes an int."""
    doc["spec"].update(spec_fields)
    for t in doc["spec"]["templates"]:
        if isinstance(t.get("activeDeadlineSeconds"), int):
            t["activeDeadlineSeconds"] = str(t["activeDeadlineSeconds"])
        extra = copy.deepcopy(extras.get(t["name"], {}))
        container = extra.pop("container", None)
        if container:
            t["container"].update(container)
        t.update(extra)
    return doc


def workflow(exp: Experiment, image: str | None = None, options: Options | None = None) -> dict[str, Any]:
    """A standalone Workflow (``argo submit workflow.yaml``), named ``<experiment>-<random>``."""
    opts = options or Options()
    labels = {"hp-components/experiment": exp.name}
    holder = Workflow(generate_name=f"{exp.name}-", namespace=exp.metadata.namespace, entrypoint="main", labels=labels,
                      service_account_name=template_name(exp) if created_as_job(exp) else None)
    extras: dict[str, dict[str, Any]] = {}
    return _finish(_build(exp, image, holder, opts, extras).to_dict(), extras, _spec_fields(exp, opts))
