"""The lane shape: ``parallelTrialCount`` lanes over a shared experiment store, no round barrier.

    main:  lane ×P (withItems over lane ids, parallelism P)  ->  summary      outputs: best, objective, status
    lane:  suggest (hp-tune step lane-suggest: claim one slot, suggest one trial, or say the lane is done)
           -> trial (withParam over that one item: the same trial template, wrapper, GPU limits,
                     retries and stop rule as the rounds; continueOn failed/error)
           -> record (hp-tune step lane-record: the aggregate {{steps.trial.outputs.parameters}},
                      "[]" when the pod died, so the trial is recorded Failed NoObservation)
           -> lane again, when suggest said the lane goes on

The trial runs in a one-item loop on purpose: Argo's processAggregateNodeOutputs always defines a
loop's ``steps.X.outputs.parameters`` (``[]`` when no child succeeded), while a plain step's
``outputs.parameters.observation`` does not exist once its pod died, which would fail the lane.
Nothing travels between iterations but the lane id and its depth: the store holds the history, so
no artifact repository is needed. The store's URL (without a password) is in the YAML; the
password reaches the steps as ``HP_STORAGE_PASSWORD`` from a Kubernetes Secret (``secretKeyRef``).

Depth: each lane iteration nests one template level (main, the lane's iterations, the trial and its
pod), so a lane runs at most :data:`MAX_LANE_TRIALS` trials (lane-suggest ends it there; 6 levels
spare for a templateRef caller) and ``ceil(maxTrialCount / parallelTrialCount)`` must not exceed it.
"""

from __future__ import annotations

import re
from typing import Any

from hera.workflows import Container, Parameter, Step, Steps, Workflow, WorkflowTemplate, models as m

from hp_components.drivers import LaneStore
from hp_components.experiment import Experiment
from hp_components.jobs import created_as_job
from hp_components.template import deadline
from hp_components.steps import DEFAULT_IMAGE, ITEM_NAME_KEY, STOP_RULE_KEY, uses_stop_rules

from hp_components.argo._compile import (ENTRY_OUTPUTS, GLOBALS, MAX_ROUNDS, Options, _check, _deadline, _finish,
                                         _job_trial_template, _seconds, _spec_fields, _trial_template, template_name)
from hp_components.argo._errors import CompileError

__all__ = ["Lanes", "MAX_LANE_TRIALS", "lanes_workflow", "lanes_workflow_template"]

#: trials one lane runs at most: Argo nests templates at most 100 deep (operator.go executeTemplate,
#: maxAllowedStackDepth); a lane's k-th trial pod runs at depth k + 3 (main, k lane levels, trial, pod)
MAX_LANE_TRIALS = MAX_ROUNDS
#: the environment variables the lane steps read (hp_components._lanes)
PASSWORD_ENV, SECRET_ENV = LaneStore.PASSWORD_ENV, LaneStore.SECRET_ENV


class Lanes(LaneStore):
    """Compile the lane shape against the experiment store at ``storage`` (a SQLAlchemy URL without a
    password; PostgreSQL or MySQL, reachable from the cluster's pods); ``secret``: the Kubernetes
    Secret ``name`` or ``name:key`` (default key ``password``) holding the database password
    (:class:`hp_components.drivers.LaneStore` checks both)::

        workflow_template(exp, lanes=Lanes("postgresql+psycopg://katib@katib-postgres:5432/hp", "hp-db"))
    """

    def __init__(self, storage: str, secret: str | None = None):
        super().__init__(storage, secret, CompileError)

    def env(self) -> list[m.EnvVar]:
        """The lane steps' environment: the password from the Secret, and the Secret's name for messages."""
        if self.secret_name is None:
            return []
        return [m.EnvVar(name=PASSWORD_ENV, value_from=m.EnvVarSource(
                    secret_key_ref=m.SecretKeySelector(name=self.secret_name, key=self.secret_key))),
                m.EnvVar(name=SECRET_ENV, value=self.secret)]




def lost_after(exp: Experiment, opts: Options) -> int:
    """Seconds after which a lane trial still Running in the store is lost (``lane-suggest --lost-after``,
    :meth:`LaneStore.lost_after`): the trial step with its retries (its pod's start bounded by the
    pendingTimeout, 1800 s by default), at most the workflow's own deadline (no trial outlives it)."""
    pending = _seconds(opts.pending_timeout) if opts.pending_timeout else 1800
    bound = LaneStore.lost_after(deadline(exp.spec.trial_template.trial_spec or {}), opts.retries, pending,
                                 ceiling=_deadline(exp, opts))
    assert bound is not None  # the workflow deadline is always set
    return bound


def build_lanes(exp: Experiment, image: str | None, holder: Any, opts: Options, extras: dict[str, dict[str, Any]],
                lanes: Lanes) -> Any:
    """The templates of the lane shape inside ``holder`` (a Hera Workflow or WorkflowTemplate)."""
    _check(exp)
    image = image or DEFAULT_IMAGE
    experiment = exp.to_json()
    env = lanes.env()
    base = ["--experiment", experiment, "--storage", lanes.storage]
    out = {p: f"/tmp/hp/{p}" for p in ("items.json", "name", "done", "depth", "best.json", "status.json",
                                       "best-parameters.json", "objective", "all-done")}
    with holder as w:
        suggest = Container(
            name="lane-suggest", image=image, command=["hp-tune", "step"], env=env or None,
            args=["lane-suggest", *base, "--lane", "{{inputs.parameters.lane}}", "--run", "{{workflow.name}}",
                  "--depth", "{{inputs.parameters.depth}}", "--max-per-lane", str(MAX_LANE_TRIALS),
                  "--lost-after", str(lost_after(exp, opts)),
                  "--items-out", out["items.json"], "--name-out", out["name"], "--done-out", out["done"],
                  "--depth-out", out["depth"]],
            inputs=[Parameter(name="lane"), Parameter(name="depth")],
            outputs=[Parameter(name=n, value_from=m.ValueFrom(path=out[f]))
                     for n, f in (("trials", "items.json"), ("name", "name"), ("done", "done"), ("depth", "depth"))])
        # each record also sets the workflow's global status and best trial so far (Argo keeps the last
        # one written), so hp-tune status and the Argo UI show the lanes' progress; the summary sets the final ones
        record = Container(
            name="lane-record", image=image, command=["hp-tune", "step"], env=env or None,
            args=["lane-record", *base, "--name", "{{inputs.parameters.name}}",
                  "--observations", "{{inputs.parameters.observations}}",
                  "--summary-out", out["status.json"], "--best-out", out["best.json"]],
            inputs=[Parameter(name="name"), Parameter(name="observations")],
            outputs=[Parameter(name="status", value_from=m.ValueFrom(path=out["status.json"]), global_name=GLOBALS["status"]),
                     Parameter(name="best-trial", value_from=m.ValueFrom(path=out["best.json"]), global_name=GLOBALS["best"])])
        summary = Container(
            name="lane-summary", image=image, command=["hp-tune", "step"], env=env or None,
            args=["lane-summary", *base, "--best-out", out["best.json"], "--summary-out", out["status.json"],
                  "--best-parameters-out", out["best-parameters.json"], "--objective-out", out["objective"],
                  "--done-out", out["all-done"]],
            outputs=[Parameter(name="done", value_from=m.ValueFrom(path=out["all-done"]), global_name=GLOBALS["done"]),
                     Parameter(name="best-trial", value_from=m.ValueFrom(path=out["best.json"]), global_name=GLOBALS["best"]),
                     Parameter(name="best", value_from=m.ValueFrom(path=out["best-parameters.json"])),
                     Parameter(name="objective", value_from=m.ValueFrom(path=out["objective"])),
                     Parameter(name="status", value_from=m.ValueFrom(path=out["status.json"]), global_name=GLOBALS["status"])])
        trial = (_job_trial_template(exp, image, experiment, opts, extras) if created_as_job(exp)
                 else _trial_template(exp, opts, extras))
        stops = [STOP_RULE_KEY] if uses_stop_rules(exp) and not created_as_job(exp) else []
        trial_args = [Parameter(name=n, value="{{item.%s}}" % n) for n in [ITEM_NAME_KEY, *stops]] + [
            Parameter(name=tp.name, value="{{item.%s}}" % tp.name) for tp in exp.spec.trial_template.trial_parameters or []]
        goes_on = "{{steps.suggest.outputs.parameters.done}} == false"
        with Steps(name="lane", inputs=[Parameter(name="lane"), Parameter(name="depth")]) as lane:
            Step(name="suggest", template=suggest, arguments=[
                Parameter(name="lane", value="{{inputs.parameters.lane}}"),
                Parameter(name="depth", value="{{inputs.parameters.depth}}")])
            Step(name="trial", template=trial, with_param="{{steps.suggest.outputs.parameters.trials}}",
                 arguments=trial_args, when=goes_on, continue_on=m.ContinueOn(failed=True, error=True))
            Step(name="record", template=record, when=goes_on, arguments=[
                Parameter(name="name", value="{{steps.suggest.outputs.parameters.name}}"),
                Parameter(name="observations", value="{{steps.trial.outputs.parameters}}")])
            Step(name="next", template="lane", when=goes_on, arguments=[
                Parameter(name="lane", value="{{inputs.parameters.lane}}"),
                Parameter(name="depth", value="{{steps.suggest.outputs.parameters.depth}}")])
        with Steps(name="main", parallelism=exp.spec.parallel_trial_count, outputs=[
                Parameter(name=n, value_from=m.ValueFrom(parameter="{{steps.summary.outputs.parameters.%s}}" % n))
                for n in ENTRY_OUTPUTS]):
            Step(name="lanes", template=lane, with_items=[str(i) for i in range(exp.spec.parallel_trial_count)],
                 arguments=[Parameter(name="lane", value="{{item}}"), Parameter(name="depth", value="0")])
            Step(name="summary", template=summary)
    return w


def lanes_workflow_template(exp: Experiment, lanes: Lanes, image: str | None = None,
                            options: Options | None = None) -> dict[str, Any]:
    """The WorkflowTemplate ``<experiment>-tune`` in the lane shape (same entry point and outputs as the rounds)."""
    opts = options or Options()
    holder = WorkflowTemplate(name=template_name(exp), namespace=exp.metadata.namespace, entrypoint="main",
                              labels={"hp-components/experiment": exp.name},
                              service_account_name=template_name(exp) if created_as_job(exp) else None)
    extras: dict[str, dict[str, Any]] = {}
    return _finish(build_lanes(exp, image, holder, opts, extras, lanes).to_dict(), extras, _spec_fields(exp, opts))


def lanes_workflow(exp: Experiment, lanes: Lanes, image: str | None = None, options: Options | None = None) -> dict[str, Any]:
    """A standalone Workflow in the lane shape, named ``<experiment>-<random>``."""
    opts = options or Options()
    holder = Workflow(generate_name=f"{exp.name}-", namespace=exp.metadata.namespace, entrypoint="main",
                      labels={"hp-components/experiment": exp.name},
                      service_account_name=template_name(exp) if created_as_job(exp) else None)
    extras: dict[str, dict[str, Any]] = {}
    return _finish(build_lanes(exp, image, holder, opts, extras, lanes).to_dict(), extras, _spec_fields(exp, opts))
