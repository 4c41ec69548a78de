"""Unrolling the tuning loop into a KFP v2 graph (KFP has no recursion).

One graph component per round, built from the last round back to the first; round ``r``::

    ParallelFor(trials, parallelism=parallelTrialCount) -> trial
    collect(history, trials, Collected(observations))          # records, decides, suggests the next batch
    If(collect.done == False):  round r+1(collect.history, collect.next_trials)
    Else:                       report(collect.history, collect.status)
    outputs = OneOf(round r+1's outputs, report's outputs)

The last round ends with ``report``. So nothing runs once the experiment is done, whichever
round finished it surfaces its results (``best_parameters``, ``best_objective``, ``best_trial``,
``status``), the loop never iterates over an empty list (``collect`` says ``done`` when the
algorithm has nothing left), and every ``If`` has an ``Else``. Rounds:
``ceil(maxTrialCount / parallelTrialCount)``. Steps and trials are never cached.

(No ``from __future__ import annotations`` here: KFP reads the graph functions' annotations.)
"""

import contextlib
import math
import warnings
from typing import Any, Callable, Dict, Iterator, NamedTuple, Optional, Tuple

from hp_components.experiment import Experiment
from hp_components.steps import DEFAULT_IMAGE

from hp_components.kfp._components import step_components

__all__ = ["Outputs", "rounds", "tuning_graph", "outside_pipeline"]


class Outputs(NamedTuple):
    best_parameters: dict
    best_objective: float
    best_trial: str
    status: dict


OUTPUT_NAMES = Outputs._fields
#: more rounds than this draw a warning (the Argo Workflow KFP creates must fit in a Kubernetes object)
MAX_ROUNDS = 200

#: (loop item, the ``trial_wrapper`` input, the ``experiment`` input) -> (the trial task, the output that
#: holds its observation)
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


def _no_cache(task: Any) -> Any:
    task.set_caching_options(False)
    return task


def tuning_graph(exp: Experiment, config: Dict[str, Any], trial: TrialFactory, *, image: Optional[str] = None,
                 metrics_artifacts: bool = False, name: Optional[str] = None, wrapper: str = "") -> Any:
    """The whole tuning loop as one KFP graph component (a pipeline you can compile or call).

    Its inputs are ``experiment`` (Katib JSON, defaulting to ``exp``), ``config`` (the loop item
    fields, see :mod:`hp_components.kfp._runtime`), ``history`` (trials to start from, default none)
    and ``trial_wrapper`` (``wrapper``: the metrics wrapper's source, handed to every trial; kept
    once as a pipeline input instead of once per round, which keeps the compiled YAML small).
    """
    from kfp import dsl

    steps = step_components(image or DEFAULT_IMAGE)
    collect = steps.collect_metrics if metrics_artifacts else steps.collect
    parallelism = exp.spec.parallel_trial_count
    base = name or exp.name
    total = rounds(exp)
    if total > MAX_ROUNDS:
        warnings.warn(f"{base}: {total} rounds unrolled (maxTrialCount / parallelTrialCount); the compiled pipeline "
                      f"grows ~21 KB per round and may exceed KFP's workflow size limit: raise parallelTrialCount",
                      stacklevel=2)

    def make_round(r: int, next_round: Any) -> Any:
        def round_(experiment: str, config: dict, history: list, trials: list, trial_wrapper: str = "") -> Outputs:
            with dsl.ParallelFor(trials, parallelism=parallelism, name=f"trials-{r}") as item:
                task, observation = trial(item, trial_wrapper, experiment)
                _no_cache(task)
            c = _no_cache(collect(experiment=experiment, config=config, history=history, trials=trials,
                                  observations=dsl.Collected(observation)))
            c.set_display_name(f"collect-{r}")
            if next_round is None:
                rep = _no_cache(report(experiment, c))
                return Outputs(*(rep.outputs[k] for k in OUTPUT_NAMES))
            with dsl.If(c.outputs["done"] == False, name=f"continue-{r}"):  # noqa: E712 - a KFP condition
                nxt = _no_cache(next_round(experiment=experiment, config=config, history=c.outputs["history"],
                                           trials=c.outputs["next_trials"], trial_wrapper=trial_wrapper))
                nxt.set_display_name(f"round-{r + 1}")
            with dsl.Else(name=f"finished-{r}"):
                rep = _no_cache(report(experiment, c))
            return Outputs(*(dsl.OneOf(nxt.outputs[k], rep.outputs[k]) for k in OUTPUT_NAMES))

        return dsl.pipeline(name=f"{base}-round-{r}", description=f"Round {r} of {total}")(round_)

    def report(experiment: Any, c: Any) -> Any:
        task = steps.report(experiment=experiment, history=c.outputs["history"], status=c.outputs["status"])
        return task.set_display_name("report")

    with outside_pipeline():
        nxt = None
        for r in range(total, 0, -1):
            nxt = make_round(r, nxt)
        first_round = nxt

        def tuning(experiment: str = exp.to_json(), config: dict = config, history: list = [],  # noqa: B006
                   trial_wrapper: str = wrapper) -> Outputs:
            s = _no_cache(steps.suggest(experiment=experiment, config=config, history=history))
            r1 = _no_cache(first_round(experiment=experiment, config=config, history=s.outputs["history"],
                                       trials=s.outputs["trials"], trial_wrapper=trial_wrapper))
            r1.set_display_name("round-1")
            return Outputs(*(r1.outputs[k] for k in OUTPUT_NAMES))

        return dsl.pipeline(name=base, description=_description(exp))(tuning)


def _description(exp: Experiment) -> str:
    spec = exp.spec
    return (f"Katib Experiment {exp.name} (hp-components): {spec.algorithm.algorithm_name}, "
            f"{spec.objective.type} {spec.objective.objective_metric_name}, {spec.max_trial_count} trials, "
            f"{spec.parallel_trial_count} at a time")

