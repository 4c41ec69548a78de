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
from kfp.dsl import HTML, Input, Markdown, Metrics, Output

__all__ = ["StepComponents", "step_components"]


def suggest(experiment: str, config: dict, history: list) -> NamedTuple(
        "SuggestOutputs", [("trials", list), ("done", bool), ("history", list)]):
    """Suggest the first batch of trials (flat loop items) for the experiment (Katib JSON)."""
    from collections import namedtuple

    from hp_components.kfp._runtime import suggest_items

    items, done = suggest_items(experiment, history, config)
    return namedtuple("SuggestOutputs", ["trials", "done", "history"])(items, done, list(history))


def collect(experiment: str, config: dict, history: list, trials: list, observations: list) -> NamedTuple(
        "CollectOutputs", [("history", list), ("next_trials", list), ("done", bool), ("status", dict),
                           ("best_parameters", dict)]):
    """Record a batch's observations (in loop order), decide, and suggest the next batch."""
    from collections import namedtuple

    from hp_components.kfp._runtime import collect_round

    out = collect_round(experiment, history, trials, observations, config)
    status = out["status"]
    cond = status["conditions"][-1]
    print(f"{cond['type']}: {cond['reason']}; {status.get('trials', 0)} trials, best {out['best']}")
    return namedtuple("CollectOutputs", ["history", "next_trials", "done", "status", "best_parameters"])(
        out["history"], out["next_trials"], out["done"], status, out["best"]["parameters"])


def collect_metrics(experiment: str, config: dict, history: list, trials: list,
                    observations: Input[List[Metrics]]) -> NamedTuple(
        "CollectOutputs", [("history", list), ("next_trials", list), ("done", bool), ("status", dict),
                           ("best_parameters", dict)]):
    """Like collect, for trials that report their objective in a ``Metrics`` artifact."""
    from collections import namedtuple

    from hp_components.kfp._runtime import collect_round

    values = [dict(m.metadata) if m is not None else None for m in observations]
    out = collect_round(experiment, history, trials, values, config)
    return namedtuple("CollectOutputs", ["history", "next_trials", "done", "status", "best_parameters"])(
        out["history"], out["next_trials"], out["done"], out["status"], out["best"]["parameters"])


def report(experiment: str, history: list, status: dict, metrics: Output[Metrics], report: Output[Markdown],
           report_html: Output[HTML]) -> NamedTuple(
        "ReportOutputs", [("best_parameters", dict), ("best_objective", float), ("best_trial", str),
                          ("status", dict)]):
    """The final results: best parameters/objective, Katib's status, a Metrics artifact and reports."""
    from collections import namedtuple

    from hp_components.kfp._report import build_report
    from hp_components.kfp._runtime import experiment_from
    from hp_components.trials import load_history

    exp = experiment_from(experiment)
    trials = load_history(history)
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
    collect: Any
    collect_metrics: Any
    report: Any
    launch: Any


@functools.lru_cache(maxsize=16)
def step_components(image: str) -> StepComponents:
    """The step components, running in ``image``."""
    make = functools.partial(dsl.component, base_image=image, install_kfp_package=False)
    return StepComponents(make(suggest), make(collect), make(collect_metrics), make(report), make(launch))
