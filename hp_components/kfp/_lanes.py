"""Lanes on KFP: ``parallelTrialCount`` lanes over a shared experiment store, no round barrier.

KFP v2 has no recursion, so each lane is unrolled at compile time into ``L`` nested step
sub-pipelines::

    wrapper                                   -> the metrics wrapper (artifact), once per run
    ParallelFor(lanes 0..P-1, parallelism=P):
        suggest   (hp-tune step lane-suggest: claim a slot, suggest one trial, or end the lane)
        step-1(done, trials, name):                      a sub-pipeline
            If(done == False):
                ParallelFor(trials) -> trial             (the rounds' trial: wrapper, GPU limits,
                                                          retries, stop rule)
                record(Collected(trial.observation))     (hp-tune step lane-record)
                suggest (after record) -> step-2(its done, trials, name) ... down to step L
                                          (after step L the suggest only logs why the lane ends)
    summary (after the lanes)                 -> best_parameters, best_objective, best_trial, status

Nested, not chained: once a lane ends nothing more of it runs (on the backend every task, even a
skipped one, costs a driver pod). Each step is a sub-pipeline with its guard on its own input:
its own scope keeps the IR linear in ``L`` (KFP passes every enclosing condition's inputs down a
nested ``If``) and kfp.local resolves a condition on a parent input. Each step nests two Argo
templates, so the k-th trial pod runs at depth 2k + 10 (root 2, lanes loop 3, 2 per step, trial
loop 3, pod 2): :data:`MAX_LANE_STEPS`. The trial runs in a one-item loop because only a loop
item's fields can reach a component's inputs.

How many steps: ``ceil(maxTrialCount / parallelTrialCount)`` is enough for exactly
``maxTrialCount`` trials (a lane ends before its cap only when the experiment is done, so if every
lane reached its cap, ``P * L >= maxTrialCount`` trials exist). ``maxTrialCount -
parallelTrialCount + 1`` is what one lane runs at most while every other lane holds one slow trial,
so with that many no slot idles while trials remain. ``L`` is that, capped at
:data:`MAX_LANE_STEPS` and at what fits Argo's Workflow size; below it a lane that ran ``L``
trials ends (``LaneDepthReached``, in its suggest step's log) and its slot idles while slower
lanes take the rest. :func:`lane_steps` says which, at compile time.
"""

import math
import warnings
from typing import Any, Callable, Dict, Optional, Tuple

from hp_components import drivers
from hp_components.experiment import Experiment
from hp_components.steps import DEFAULT_IMAGE

from hp_components.kfp._errors import UnsupportedExperiment

__all__ = ["LaneStore", "MAX_LANE_STEPS", "lane_steps", "lanes_graph", "lost_after"]

#: steps one lane is unrolled to at most: Argo nests templates at most 100 deep (controller.go
#: getMaxStackDepth); a lane's k-th trial pod runs at depth 2k + 10, so 34 (depth 78) keeps 20 levels
#: for a pipeline that calls the tuning (and stays under the depth warning of _backend.check_ir)
MAX_LANE_STEPS = 34
#: the environment variables the lane steps read (hp_components/_lanes.py)
PASSWORD_ENV, SECRET_ENV = drivers.LaneStore.PASSWORD_ENV, drivers.LaneStore.SECRET_ENV


class LaneStore(drivers.LaneStore):
    """The experiment store the lanes share: a SQLAlchemy URL without a password (PostgreSQL or
    MySQL the cluster's pods reach) and the Kubernetes Secret ``name[:key]`` (key ``password`` by
    default) whose value the steps get as ``HP_STORAGE_PASSWORD`` (:class:`hp_components.drivers.LaneStore`
    checks both)::

        LaneStore("postgresql+psycopg://hp@katib-postgres.kubeflow:5432/hp", "hp-db")
    """

    def __init__(self, storage: str, secret: Optional[str] = None):
        super().__init__(storage, secret, UnsupportedExperiment)

    def configure(self, task: Any) -> Any:
        """The password from the Secret as ``HP_STORAGE_PASSWORD`` (kfp-kubernetes ``use_secret_as_env``)."""
        if self.secret_name is not None:
            from kfp import kubernetes

            kubernetes.use_secret_as_env(task, self.secret_name, {self.secret_key: PASSWORD_ENV})
            task.set_env_variable(SECRET_ENV, self.secret)
        return task


def lane_steps(exp: Experiment, cap: int = MAX_LANE_STEPS, limit: Optional[int] = None) -> Tuple[int, bool]:
    """(steps per lane, whether that covers the worst case: no slot idles while trials remain).

    ``cap``: the most steps that fit comfortably (:data:`MAX_LANE_STEPS`, lower when the Workflow
    size says so); ``limit`` (default ``cap``): the most that fit at all, used only to reach
    ``ceil(maxTrialCount / parallelTrialCount)``. Refuses (``spec.maxTrialCount``) past ``limit``.

    >>> from hp_components.experiment import new_experiment
    >>> exp = new_experiment("e", [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
    ...                      {"name": "t", "image": "i", "command": ["run", "${trialParameters.x}"]}, objective_metric_name="loss",
    ...                      objective_type="minimize", algorithm_name="random", max_trial_count=12,
    ...                      parallel_trial_count=3)
    >>> lane_steps(exp), lane_steps(exp, cap=6), lane_steps(exp, cap=3, limit=4)
    ((10, True), (6, False), (4, False))
    """
    m, p = exp.spec.max_trial_count, exp.spec.parallel_trial_count
    limit = cap if limit is None else max(cap, limit)
    least = max(1, math.ceil(m / p))  # type: ignore[operator]
    full = max(least, m - p + 1)  # type: ignore[operator]
    if least > limit:
        change = (f"raise spec.parallelTrialCount to at least {math.ceil(m / limit)} or lower spec.maxTrialCount"  # type: ignore[operator]
                  if limit >= 5 else "lower spec.maxTrialCount (the Workflow's status nodes grow with every trial "
                  "and its steps; run several experiments instead)")
        raise UnsupportedExperiment("spec.maxTrialCount", f"{m} trials in {p} lanes (spec.parallelTrialCount) need "
                                    f"{least} steps per lane; this experiment's KFP lanes can be unrolled to at most "
                                    f"{limit} (Argo nests templates at most 100 deep: maxAllowedStackDepth, "
                                    "workflow/controller/controller.go getMaxStackDepth; the Workflow must stay under "
                                    f"MAX_WORKFLOW_SIZE, workflow/packer/packer.go): {change}")
    return max(least, min(full, cap)), full <= cap


#: (loop item, the ``wrapper`` artifact or None, the ``experiment`` input) -> (the trial task, its observation output)
TrialFactory = Callable[[Any, Any, Any], Tuple[Any, Any]]


def lanes_graph(exp: Experiment, config: Dict[str, Any], trial: TrialFactory, store: LaneStore, *,
                image: Optional[str] = None, name: Optional[str] = None, uses_wrapper: bool = False,
                retry_backoff: Optional[str] = None) -> Any:
    """The lanes as one KFP graph component with the rounds' inputs and outputs (``experiment``,
    ``config``; ``best_parameters``, ``best_objective``, ``best_trial``, ``status``).

    Refuses what Argo would not run (depth, Workflow size: :func:`hp_components.kfp._backend.check_ir`)
    naming ``spec.maxTrialCount``; warns when the lanes cannot cover the worst case (see the module).
    """
    from kfp import dsl

    from hp_components.kfp._backend import check_ir
    from hp_components.kfp._dedupe import dedupe_graph
    from hp_components.kfp._lane_components import lane_components
    from hp_components.kfp._pipeline import OUTPUT_NAMES, RETRY_BACKOFF, Outputs, infrastructure_retries, outside_pipeline

    steps = lane_components(image or DEFAULT_IMAGE)
    p = exp.spec.parallel_trial_count
    backoff = retry_backoff or RETRY_BACKOFF
    lost = lost_after(exp, backoff) or 0  # the component's 0: never lost
    base = name or exp.name

    def retried(task: Any) -> Any:
        return infrastructure_retries(task, backoff)

    def build(count: int, covered: bool) -> Tuple[Any, Dict[str, Any]]:
        def suggest(experiment: Any, config: Any, lane: Any, depth: int) -> Any:
            s = retried(store.configure(steps.suggest(
                experiment=experiment, config=config, storage=store.storage, lane=lane,
                run=dsl.PIPELINE_JOB_ID_PLACEHOLDER, depth=depth, max_per_lane=count, lost_after=lost)))
            return s.set_display_name("suggest" if depth < count else "lane-end")

        def lane_step(k: int) -> Any:
            """Step ``k`` of a lane as a sub-pipeline (trial ``k``, record, the next claim) that calls step
            ``k + 1``; its guard is on its own input, and its own scope keeps its inputs constant (KFP
            passes every enclosing condition's inputs down a nested If)."""
            inner = lane_step(k + 1) if k < count else None

            def body(experiment: str, config: dict, lane: str, done: bool, trials: list, name: str,
                     wrapper: Any) -> None:
                with dsl.If(done == False, name="go-on"):  # noqa: E712 - a KFP condition
                    with dsl.ParallelFor(trials, parallelism=1, name="trial") as item:
                        task, observation = trial(item, wrapper, experiment)
                        retried(task)
                    r = retried(store.configure(steps.record(
                        experiment=experiment, storage=store.storage, name=name,
                        observations=dsl.Collected(observation))))
                    r.set_display_name("record")
                    # the next claim; after step L it only says why the lane ends (LaneDepthReached: its cap)
                    s = suggest(experiment, config, lane, k).after(r)
                    if inner is not None:
                        extra = {"wrapper": wrapper} if uses_wrapper else {}
                        nxt = inner(experiment=experiment, config=config, lane=lane, done=s.outputs["done"],
                                    trials=s.outputs["trials"], name=s.outputs["name"], **extra)
                        nxt.set_caching_options(False)
                        nxt.set_display_name(f"step-{k + 1}")

            if uses_wrapper:
                def step(experiment: str, config: dict, lane: str, done: bool, trials: list, name: str,
                         wrapper: dsl.Artifact) -> None:
                    body(experiment, config, lane, done, trials, name, wrapper)
            else:
                def step(experiment: str, config: dict, lane: str, done: bool, trials: list,  # type: ignore[misc]
                         name: str) -> None:
                    body(experiment, config, lane, done, trials, name, None)
            return dsl.pipeline(name=f"{base}-lane-step-{k}", description=f"Step {k} of {count} of a lane")(step)

        with outside_pipeline():
            first = lane_step(1)

        def tuning(experiment: str = exp.to_json(), config: dict = config) -> Outputs:
            extra = {}
            if uses_wrapper:
                w = retried(steps.wrapper()).set_display_name("wrapper")
                extra = {"wrapper": w.outputs["wrapper"]}
            with dsl.ParallelFor([str(i) for i in range(p)], parallelism=p, name="lanes") as lane:
                s0 = suggest(experiment, config, lane, 0)
                s1 = first(experiment=experiment, config=config, lane=lane, done=s0.outputs["done"],
                           trials=s0.outputs["trials"], name=s0.outputs["name"], **extra)
                s1.set_caching_options(False)
                s1.set_display_name("step-1")
            summary = retried(store.configure(steps.summary(experiment=experiment, storage=store.storage,
                                                            lanes=p, steps_per_lane=count, covered=covered)))
            summary.set_display_name("summary").after(s1)  # after the whole lanes loop
            return Outputs(*(summary.outputs[k] for k in OUTPUT_NAMES))

        with outside_pipeline():
            graph = dsl.pipeline(name=base, description=_description(exp, count))(tuning)
        return graph, dedupe_graph(graph)

    trials = exp.spec.max_trial_count
    count, covered = lane_steps(exp, *_fitting_steps(exp, lambda n: build(n, False)[1]))
    graph, spec = build(count, covered)
    check_ir(spec, trials=trials, rounds=trials + p)  # a lane step costs about what a round's steps cost
    if not covered:
        warnings.warn(f"spec.maxTrialCount: each of the {p} lanes is unrolled to {count} steps, fewer than the "
                      f"{trials - p + 1} one lane may need while the others hold slow trials: exactly "
                      f"{trials} trials still run, but a lane that ran {count} ends (LaneDepthReached) and its slot "
                      "idles while slower lanes finish (raise spec.parallelTrialCount or lower spec.maxTrialCount "
                      "to avoid it)", UserWarning, stacklevel=3)
    return graph


#: the longest a trial pod may wait to start (Pending) before its trial counts as lost: KFP has no
#: pendingTimeout, so this is Argo's default for the rounds (hp_components/argo Options.pending_timeout)
PENDING_SECONDS = 1800


def lost_after(exp: Experiment, retry_backoff: str = "30s") -> Optional[int]:
    """Seconds after which a lane trial still Running in the store is lost (``lane-suggest
    --lost-after``, :meth:`hp_components.drivers.LaneStore.lost_after`): its trial step with its
    :data:`~hp_components.kfp._pipeline.RETRIES` retries and their backoff (doubling from
    ``retry_backoff``), each attempt bounded by the trial's ``activeDeadlineSeconds`` (the metrics
    wrapper's ``--timeout``) and :data:`PENDING_SECONDS` to start. None without a trial deadline: KFP
    has no run deadline, so no bound says a trial is lost, and a lane's dead pod keeps its slot.

    >>> from hp_components.experiment import new_experiment
    >>> exp = new_experiment("e", [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
    ...                      {"name": "t", "image": "i", "command": ["run", "${trialParameters.x}"],
    ...                       "activeDeadlineSeconds": 600}, objective_metric_name="loss", objective_type="minimize",
    ...                      algorithm_name="random", max_trial_count=12, parallel_trial_count=3)
    >>> lost_after(exp, "30s")   # 3 * (600 + 60 + 1800 + 300) + (30 + 60) + 600
    8970
    """
    from hp_components.kfp._pipeline import RETRIES
    from hp_components.template import deadline

    first = drivers.seconds(retry_backoff) or 3600
    backoff = sum(min(first * 2 ** k, 3600) for k in range(RETRIES))  # the backend caps a backoff at 1 h
    return drivers.LaneStore.lost_after(deadline(exp.spec.trial_template.trial_spec or {}), RETRIES,
                                        PENDING_SECONDS, backoff)


def _fitting_steps(exp: Experiment, spec_of: Callable[[int], Dict[str, Any]]) -> Tuple[int, int]:
    """The most steps per lane (at most :data:`MAX_LANE_STEPS`) whose Workflow after
    ``maxTrialCount`` trials stays under :data:`hp_components.kfp._backend.WARN_FRACTION` of Argo's
    MAX_WORKFLOW_SIZE, and under all of it: the spec grows by one step's templates per step
    (measured on 1 and 2 steps), the status nodes with every trial and step (``workflow_status_bytes``)."""
    from hp_components.kfp._backend import MAX_WORKFLOW_BYTES, WARN_FRACTION, workflow_spec_bytes, workflow_status_bytes

    one_ir, two_ir = spec_of(1), spec_of(2)
    one, two = workflow_spec_bytes(one_ir), workflow_spec_bytes(two_ir)
    trials = exp.spec.max_trial_count
    raw, stored = workflow_status_bytes(two_ir, trials, trials + exp.spec.parallel_trial_count)
    status = raw if one + raw <= MAX_WORKFLOW_BYTES else stored

    def fit(budget: float) -> int:
        return max(0, min(MAX_LANE_STEPS, 1 + int((budget - one - status) // max(1, two - one))))
    return fit(MAX_WORKFLOW_BYTES * WARN_FRACTION), fit(MAX_WORKFLOW_BYTES - 1)


def _description(exp: Experiment, count: int) -> str:
    spec = exp.spec
    return (f"Katib Experiment {exp.name} (hp-components, lanes): {spec.algorithm.algorithm_name}, "
            f"{spec.objective.type} {spec.objective.objective_metric_name}, {spec.max_trial_count} trials in "
            f"{spec.parallel_trial_count} lanes of up to {count} over a shared store")
