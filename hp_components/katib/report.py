"""``katib.report_metrics``: the Push collector, from inside the objective.

In Katib (kubeflow/katib/api/report_metrics.py) the trial pushes its metrics to Katib's DB. A
trial here runs as a subprocess of the local runner, so the push goes over its standard output
with a marker line that the experiment's collector filter (:data:`PUSH_FILTER`, set by
``KatibClient.tune(metrics_collector_config={"kind": "Push"})``) alone reads; other output is
not taken for metrics, as with Katib's Push collector::

    def objective(parameters):
        from hp_components import katib
        katib.report_metrics({"loss": 0.25, "accuracy": 0.9})
"""

from __future__ import annotations

import math
import sys
from typing import Any, Dict

__all__ = ["report_metrics", "PUSH_FILTER", "PUSH_MARKER"]

PUSH_MARKER = "hp-components-push"
#: the StdOut collector filter that reads pushed metrics (metric name, then value)
PUSH_FILTER = PUSH_MARKER + r" ([\w|.-]+)=([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"


def report_metrics(metrics: Dict[str, Any], db_manager_address: str = "", timeout: int = 10) -> None:
    """Report ``metrics`` (name -> number) for this trial; ValueError for a value that is not a finite number.

    ``db_manager_address`` and ``timeout`` are Katib's (its DB manager); they have no use here.
    """
    for name, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"report_metrics: the value of {name!r} must be a number, not {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"report_metrics: the value of {name!r} must be finite, not {value!r}")
        print(f"{PUSH_MARKER} {name}={number!r}", file=sys.stdout, flush=True)
