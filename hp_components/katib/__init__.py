"""``hp_components.katib``: Katib's Python SDK (``kubeflow.katib``) on this machine.

A script written against ``kubeflow.katib`` runs by changing its import line, from
``import kubeflow.katib as katib`` (or ``from kubeflow import katib``) to::

    from hp_components import katib

    def objective(parameters):
        from hp_components import katib   # in Katib: import kubeflow.katib as katib
        katib.report_metrics({"loss": (parameters["x"] - 1) ** 2})

    client = katib.KatibClient()
    client.tune(name="quadratic", objective=objective, parameters={"x": katib.search.double(-3, 3)},
                objective_metric_name="loss", objective_type="minimize", max_trial_count=6,
                metrics_collector_config={"kind": "Push"})
    print(client.get_optimal_hyperparameters("quadratic"))

The client keeps experiments in the local Optuna store (``KatibClient(storage=...)``); see
:mod:`hp_components.katib.client` for what each call does here.
"""

from hp_components.katib import search
from hp_components.katib.client import KatibClient
from hp_components.katib.report import report_metrics

__all__ = ["KatibClient", "report_metrics", "search"]
