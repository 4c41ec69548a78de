"""hp-components: hyperparameter tuning as pipeline components.

Katib ``kubeflow.org/v1beta1`` Experiments run locally (trials as subprocesses, state in
SQLite), on Kubeflow Pipelines and on Argo Workflows, with Optuna's samplers::

    import hp_components as hp

    exp = hp.load_experiment("examples/random-digits.yaml")
    result = hp.run_local(exp, storage="sqlite:///hp.db")
    print(result.status.reason, result.status.best.assignments)

    # or tune a Python function, each trial in its own process:
    result = hp.tune(train, parameters={"lr": hp.search.double(1e-4, 1e-1, log=True)},
                     objective_metric_name="accuracy", max_trial_count=12)
"""

from hp_components import search
from hp_components.experiment import Experiment, SpecError, load_experiment
from hp_components.status import ExperimentStatus, experiment_status
from hp_components.suggest import suggest
from hp_components.trials import Trial


def __getattr__(name: str):  # the runner-based API loads on first use: the core stays light
    if name in ("tune", "build_experiment", "TuneResult", "NoTrialSucceeded"):
        from hp_components import _tune

        return getattr(_tune, name)
    if name in ("run_local", "RunResult"):
        from hp_components import local

        return getattr(local, name)
    raise AttributeError(name)


__all__ = [
    "Experiment",
    "NoTrialSucceeded",
    "RunResult",
    "TuneResult",
    "build_experiment",
    "run_local",
    "search",
    "tune",
    "ExperimentStatus",
    "SpecError",
    "Trial",
    "experiment_status",
    "load_experiment",
    "suggest",
]
