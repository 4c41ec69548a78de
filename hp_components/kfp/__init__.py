"""Kubeflow Pipelines v2 driver: Katib Experiments as KFP pipelines, and tuning inside your pipeline.

The loop (suggest -> ``ParallelFor`` trials -> collect, until the goal, ``maxTrialCount`` or
``maxFailedTrialCount``) is unrolled into ``ceil(maxTrialCount / parallelTrialCount)`` guarded
rounds (see :mod:`hp_components.kfp._pipeline`)::

    from hp_components import load_experiment
    from hp_components.kfp import compile_experiment, submit, tune

    compile_experiment(load_experiment("examples/seed-bayesopt.yaml"), "seed.yaml")   # hp-tune compile --target kfp
    run_id = submit(load_experiment("examples/seed-bayesopt.yaml"), host="http://localhost:8080")

    @dsl.pipeline
    def my_pipeline():
        t = tune(train, parameters={"lr": (1e-4, 1e-1, "log")}, objective="acc", max_trial_count=12)
        deploy(params=t.outputs["best_parameters"])
"""

from __future__ import annotations

import kfp  # noqa: F401  - fail here, not mid-compile, when the kfp extra is missing (hp-tune says what to install)

from hp_components.experiment import Experiment
from hp_components.steps import DEFAULT_IMAGE

from hp_components.kfp._api import compile_experiment, experiment_pipeline, search_experiment, tune
from hp_components.kfp._errors import KfpError, UnsupportedExperiment

__all__ = ["DEFAULT_IMAGE", "KfpError", "UnsupportedExperiment", "compile_experiment", "experiment_pipeline",
           "read_status", "search_experiment", "submit", "tune"]


def submit(exp: Experiment, *, host: str | None = None, token: str | None = None, namespace: str | None = None,
           image: str | None = None) -> str:
    """Compile and start ``exp`` on the KFP at ``host``; returns the run id."""
    from hp_components.kfp._submit import submit_experiment

    return submit_experiment(exp, host=host, namespace=namespace, image=image, token=token)


def read_status(run_id: str, *, host: str | None = None, token: str | None = None,
                namespace: str | None = None) -> dict:
    """State, trials so far and rounds of KFP run ``run_id`` on ``host`` (see :mod:`hp_components.kfp._status`;
    a run id names one run whatever the namespace)."""
    from hp_components.kfp._status import read_status as read

    return read(run_id, host=host, token=token)
