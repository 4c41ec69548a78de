"""Unrolling the tuning loop into a KFP v2 graph (KFP has no recursion), at constant depth.

One round sub-pipeline, called ``ceil(maxTrialCount / parallelTrialCount)`` times one after the
other at the root; each call passes the state on to the next::

    suggest                                   -> state (artifact), wrapper (artifact), trials, done
    round-1(state, trials, done)              -> state, next_trials, done
    round-2(round-1.state, round-1.next_trials, round-1.done) ...
    report(round-N.state)                     -> best_parameters, best_objective, best_trial, status

Inside a round (guarded inside, so the rounds sit side by side instead of nesting)::

    If(done == False):  ParallelFor(trials, parallelism=P) -> trial;  gather(Collected(observation))
    Else:               no_trials()
    collect(state, trials, OneOf(gather, no_trials), done)    # records, decides, suggests the next batch

So the IR's DAG depth is the same for 1 round or 500 (root, round, condition-branches, condition,
ParallelFor, trial: see :mod:`hp_components.kfp._backend` for what the backend makes of it) and a
round costs one task entry at the root. A round after the experiment is done runs ``no_trials``
and a collect that passes the state on. ``collect`` says ``done`` also when the algorithm has
nothing left, so a loop never iterates over an empty list. The history lives in the ``state``
artifact (``{"history", "status"}``), never in a parameter, and every ``OneOf`` is over a
parameter. Steps and trials are never cached; every leaf task is retried on infrastructure
failures (:data:`RETRIES`): a training failure is not one, the wrapper records it and exits 0.

(No ``from __future__ import annotations`` here: KFP reads the graph functions' annotations.)
"""

import contextlib
import math
from typing import Any, Callable, Dict, Iterator, NamedTuple, Optional, Tuple

from hp_components.experiment import Experiment
from hp_components.steps import DEFAULT_IMAGE

from hp_components.kfp._components import step_components
from hp_components.kfp._dedupe import dedupe_graph

__all__ = ["Outputs", "RETRIES", "rounds", "tuning_graph", "outside_pipeline", "infrastructure_retries"]


class Outputs(NamedTuple):
    best_parameters: dict
    best_objective: float
    best_trial: str
    status: dict


OUTPUT_NAMES = Outputs._fields
#: retries of a task whose pod failed (eviction, node loss, OOM kill of the whole container): the
#: metrics wrapper exits 0 when the training command fails, so a non-zero exit is infrastructure
RETRIES = 2
#: the oldest KFP backend that runs our pipelines: it resolves a parameter ``dsl.Collected`` from
#: 2.14.0 (kubeflow/pipelines #11725; docs/kfp.md "Minimum KFP backend")
MIN_BACKEND = "2.14.0"
#: first retry after this many seconds (whole seconds: the backend's retryStrategy.backoff.duration)
RETRY_BACKOFF = "30s"

#: (loop item, the ``wrapper`` artifact or None, the ``experiment`` input) -> (the trial task, the
#: output that holds its observation)
TrialFactory = Callable[[Any, Any, Any], Tuple[Any, Any]]


def rounds(exp: Experiment) -> int:
    """How many rounds are unrolled: ``ceil(maxTrialCount / parallelTrialCount)``."""
    spec = exp.spec
    return max(1, math.ceil(spec.max_trial_count / spec.parallel_trial_count))  # type: ignore[operator]


@contextlib.contextmanager
def outside_pipeline() -> Iterator[None]:
    """Build graph components while a user's ``@dsl.pipeline`` is being defined (KFP forbids nesting)."""
    from kfp.dsl import pipeline_context

    saved = pipeline_context.Pipeline._default_pipeline
    pipeline_context.Pipeline._default_pipeline = None
    try:
        yield
    finally:
        pipeline_context.Pipeline._default_pipeline = saved


def infrastructure_retries(task: Any, backoff: str = RETRY_BACKOFF) -> Any:
    """No caching, and :data:`RETRIES` retries of a failed pod (backend 2.5.0+; kfp.local honours them too)."""
    task.set_caching_options(False)
    task.set_retry(num_retries=RETRIES, backoff_duration=backoff, backoff_factor=2.0)
    return task


def tuning_graph(exp: Experiment, config: Dict[str, Any], trial: TrialFactory, *, image: Optional[str] = None,
                 metrics_artifacts: bool = False, name: Optional[str] = None, uses_wrapper: bool = False,
                 retry_backoff: str = RETRY_BACKOFF) -> Any:
    """The whole tuning loop as one KFP graph component (a pipeline you can compile or call).

    Its inputs are ``experiment`` (Katib JSON, defaulting to ``exp``), ``config`` (the loop item
    fields, see :mod:`hp_components.kfp._runtime`) and ``history`` (trials to start from, default
    none). With ``uses_wrapper`` the trial factory gets the suggest step's ``wrapper`` artifact.
    """
    from kfp import dsl

    from hp_components.kfp._backend import check_ir, check_size, workflow_spec_bytes

    steps = step_components(image or DEFAULT_IMAGE)
    gather = steps.gather_metrics if metrics_artifacts else steps.gather
    parallelism = exp.spec.parallel_trial_count
    base = name or exp.name
    total = rounds(exp)

    def retried(task: Any) -> Any:
        return infrastructure_retries(task, retry_backoff)

    def body(experiment: Any, config: Any, state: Any, wrapper: Any, trials: Any, done: Any) -> Any:
        with dsl.If(done == False, name="run-trials"):  # noqa: E712 - a KFP condition
            with dsl.ParallelFor(trials, parallelism=parallelism, name="trials") as item:
                task, observation = trial(item, wrapper, experiment)
                retried(task)
            g = retried(gather(observations=dsl.Collected(observation))).set_display_name("gather")
        with dsl.Else(name="skip"):
            e = retried(steps.no_trials()).set_display_name("no-trials")
        c = retried(steps.collect(experiment=experiment, config=config, state=state, trials=trials,
                                  observations=dsl.OneOf(g.output, e.output), done=done))
        c.set_display_name("collect")
        return RoundOutputs(c.outputs["new_state"], c.outputs["next_trials"], c.outputs["done"])

    RoundOutputs = NamedTuple("RoundOutputs", [("state", dsl.Artifact), ("next_trials", list), ("done", bool)])

    with outside_pipeline():
        if uses_wrapper:
            def round_(experiment: str, config: dict, state: dsl.Artifact, wrapper: dsl.Artifact, trials: list,
                       done: bool) -> RoundOutputs:
                return body(experiment, config, state, wrapper, trials, done)
        else:
            def round_(experiment: str, config: dict, state: dsl.Artifact, trials: list,  # type: ignore[misc]
                       done: bool) -> RoundOutputs:
                return body(experiment, config, state, None, trials, done)
        one_round = dsl.pipeline(name=f"{base}-round", description=f"One round of {total}")(round_)

        def build(count: int) -> Any:
            def tuning(experiment: str = exp.to_json(), config: dict = config, history: list = []) -> Outputs:  # noqa: B006
                s = retried(steps.suggest(experiment=experiment, config=config, history=history))
                s.set_display_name("suggest")
                state, trials, done = s.outputs["state"], s.outputs["trials"], s.outputs["done"]
                extra = {"wrapper": s.outputs["wrapper"]} if uses_wrapper else {}
                for r in range(1, count + 1):
                    t = one_round(experiment=experiment, config=config, state=state, trials=trials, done=done, **extra)
                    t.set_caching_options(False)
                    t.set_display_name(f"round-{r}")
                    state, trials, done = t.outputs["state"], t.outputs["next_trials"], t.outputs["done"]
                rep = retried(steps.report(experiment=experiment, state=state)).set_display_name("report")
                return Outputs(*(rep.outputs[k] for k in OUTPUT_NAMES))

            graph = dsl.pipeline(name=base, description=_description(exp))(tuning)
            return graph, dedupe_graph(graph)

        if total > 2:  # a round is one root task: refuse from 1 and 2 rounds before building them all
            one, two = (workflow_spec_bytes(build(n)[1]) for n in (1, 2))
            check_size(one + (total - 1) * (two - one), "spec.maxTrialCount")
        graph, spec = build(total)
        # real limits that still apply (depth, spec, spec + status nodes at maxTrialCount): refused here,
        # naming spec.maxTrialCount; a warning close to them
        check_ir(spec, trials=exp.spec.max_trial_count, rounds=total)
        return graph


def _description(exp: Experiment) -> str:
    spec = exp.spec
    return (f"Katib Experiment {exp.name} (hp-components): {spec.algorithm.algorithm_name}, "
            f"{spec.objective.type} {spec.objective.objective_metric_name}, {spec.max_trial_count} trials, "
            f"{spec.parallel_trial_count} at a time; needs KFP backend {MIN_BACKEND}+ (parameter dsl.Collected)")
