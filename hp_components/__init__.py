"""hp-components: hyperparameter tuning as pipeline components.

Katib ``kubeflow.org/v1beta1`` Experiments run locally (trials as subprocesses, state in
SQLite), on Kubeflow Pipelines and on Argo Workflows, with Optuna's samplers::

    import hp_components as hp

    exp = hp.load_experiment("examples/random-digits.yaml")
    result = hp.run_local(exp, storage="sqlite:///hp.db")
    print(result.status.reason, result.status.best.assignments)
"""

from hp_components.experiment import Experiment, SpecError, load_experiment
from hp_components.status import ExperimentStatus, experiment_status
from hp_components.suggest import suggest
from hp_components.trials import Trial

__all__ = [
    "Experiment",
    "ExperimentStatus",
    "SpecError",
    "Trial",
    "experiment_status",
    "load_experiment",
    "suggest",
]
