"""The suggest, collect, report and launch steps as KFP lightweight Python components.

Each is a thin shell over :mod:`hp_components.kfp._runtime`; the code runs in the
hp-components image (``--image``, default :data:`hp_components.steps.DEFAULT_IMAGE`), which
has this package and kfp installed, so nothing is pip-installed at run time::

    from hp_components.kfp._components import step_components
    steps = step_components("ghcr.io/me/hp-components:0.1.0")
    s = steps.suggest(experiment=exp_json, config=config, history=[])

(This module must not use ``from __future__ import annotations``: KFP reads the annotations.)
"""

import functools
from typing import Any, List, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Metrics, Output

__all__ = ["StepComponents", "step_components"]


def suggest(experiment: str, config: dict, history: list, state: Output[Artifact], wrapper: Output[Artifact]) -> NamedTuple(
        "SuggestOutputs", [("trials", list), ("done", bool)]):
    """The first batch of trials (flat loop items); writes the state artifact and the metrics wrapper.

    ``wrapper`` is this image's ``hp_components/metrics.py`` (standard library only), written once
    per run: container trials read it from their input artifact instead of carrying its 36 KB in
    every pod's command.
    """
    from collections import namedtuple

    from hp_components.kfp._runtime import suggest_state
    from hp_components.steps import WRAPPER_SOURCE

    items, done = suggest_state(experiment, history, config, state.path)
    with open(wrapper.path, "w", encoding="utf-8") as fh:
        fh.write(WRAPPER_SOURCE)
    return namedtuple("SuggestOutputs", ["trials", "done"])(items, done)


def gather(observations: list) -> list:
    """The round's trial observations (``dsl.Collected``, in loop order) as one list for collect."""
    return list(observations)


def gather_metrics(observations: Input[List[Metrics]]) -> list:
    """The round's ``Metrics`` artifacts' metadata (``{name: value}``, in loop order) for collect."""
    return [dict(m.metadata) if m is not None else None for m in observations]


def no_trials() -> list:
    """What a skipped round hands collect: no observations."""
    return []


def collect(experiment: str, config: dict, state: Input[Artifact], trials: list, observations: list, done: bool,
            new_state: Output[Artifact]) -> NamedTuple("CollectOutputs", [("next_trials", list), ("done", bool)]):
    """Record a round's observations (in loop order), decide, suggest the next batch; a skipped round
    (``done``) passes the state on."""
    from collections import namedtuple

    from hp_components.kfp._runtime import collect_state

    next_trials, finished, status = collect_state(experiment, state.path, trials, observations, config, done,
                                                  new_state.path)
    cond = status["conditions"][-1]
    print(f"{cond['type']}: {cond['reason']}; {status.get('trials', 0)} trials, "
          f"best {(status.get('currentOptimalTrial') or {}).get('bestTrialName') or '-'}")
    return namedtuple("CollectOutputs", ["next_trials", "done"])(next_trials, finished)


def report(experiment: str, state: Input[Artifact], metrics: Output[Metrics], report: Output[Markdown],
           report_html: Output[HTML]) -> NamedTuple(
        "ReportOutputs", [("best_parameters", dict), ("best_objective", float), ("best_trial", str),
                          ("status", dict)]):
    """The final results: best parameters/objective, Katib's status, a Metrics artifact and reports."""
    from collections import namedtuple

    from hp_components.kfp._report import build_report
    from hp_components.kfp._runtime import experiment_from, read_state, without_nulls
    from hp_components.status import experiment_status
    from hp_components.trials import load_history

    exp = experiment_from(experiment)
    saved = read_state(state.path)
    trials = load_history(saved["history"])
    status = saved.get("status") or without_nulls(experiment_status(exp, trials).to_dict())
    rep = build_report(exp, status, trials)
    for name, value in rep.metrics.items():
        metrics.log_metric(name, value)
    with open(report.path, "w", encoding="utf-8") as fh:
        fh.write(rep.markdown)
    with open(report_html.path, "w", encoding="utf-8") as fh:
        fh.write(rep.html)
    print(rep.markdown)
    optimal = status.get("currentOptimalTrial") or {}
    best = next((t for t in trials if t.name == optimal.get("bestTrialName")), None)
    params = dict(best.assignments) if best is not None else {}
    value = float(best.objective_value) if best is not None and best.objective_value is not None else 0.0
    return namedtuple("ReportOutputs", ["best_parameters", "best_objective", "best_trial", "status"])(
        params, value, best.name if best is not None else "", status)


def launch(experiment: str, trial: str) -> NamedTuple("LaunchOutputs", [("observation", str)]):
    """Run one trial as a Kubernetes job (PyTorchJob, TFJob, MPIJob, XGBoostJob): the launcher step.

    Creates the rendered trialSpec (named after the trial, in the experiment's namespace, else the
    pipeline's), waits for Katib's success/failure conditions, reads the metrics from the primary
    pod's log and deletes the job unless ``trialTemplate.retain`` (also when the step is stopped
    with SIGTERM). ``trial`` is the loop item as JSON (``hp_trial`` and one key per trialParameter:
    the backend hands a whole loop item over as a string); the ``observation`` output is the
    result as JSON, what collect reads.

    The pipeline's service account needs, in that namespace: create/get/delete on the job kind
    (group ``kubeflow.org``, e.g. ``pytorchjobs``), list on ``pods`` and get on ``pods/log``.
    Kubeflow's ``pipeline-runner`` role usually grants these.
    """
    import json
    from collections import namedtuple

    from hp_components.kfp._runtime import launch_trial

    result = launch_trial(experiment, trial)
    print(f"{result['name']}: {result['condition']} ({result['reason']}), objective {result['objectiveValue']}")
    return namedtuple("LaunchOutputs", ["observation"])(json.dumps(result))


class StepComponents(NamedTuple):
    suggest: Any
    gather: Any
    gather_metrics: Any
    no_trials: Any
    collect: Any
    report: Any
    launch: Any


@functools.lru_cache(maxsize=16)
def step_components(image: str) -> StepComponents:
    """The step components, running in ``image``."""
    make = functools.partial(dsl.component, base_image=image, install_kfp_package=False)
    return StepComponents(make(suggest), make(gather), make(gather_metrics), make(no_trials), make(collect), make(report),
                          make(launch))
