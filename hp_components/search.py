"""Search space helpers for :func:`hp_components.tune`, named like Katib's SDK (``katib.search``)::

    from hp_components import search, tune
    tune(train, parameters={
        "lr": search.double(min=1e-4, max=1e-1, log=True),
        "layers": search.int(min=1, max=4),
        "optimizer": search.categorical(["sgd", "adam"]),
    }, objective_metric_name="accuracy", max_trial_count=12)

Each returns the ``parameterType`` and ``feasibleSpace`` of a Katib parameter.
"""

from __future__ import annotations

import builtins
from typing import Any, Sequence

__all__ = ["double", "int", "categorical", "discrete"]


def _num(value: float | builtins.int) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def double(min: float, max: float, *, step: float | None = None, log: bool = False,
           distribution: str | None = None) -> dict[str, Any]:
    """A float between ``min`` and ``max`` (``log=True``: log-uniform; or any Katib ``distribution``)."""
    space: dict[str, Any] = {"min": _num(min), "max": _num(max)}
    if step is not None:
        space["step"] = _num(step)
    if distribution or log:
        space["distribution"] = distribution or "logUniform"
    return {"parameterType": "double", "feasibleSpace": space}


def int(min: builtins.int, max: builtins.int, *, step: builtins.int | None = None, log: bool = False) -> dict[str, Any]:
    """A whole number between ``min`` and ``max``, both included."""
    space: dict[str, Any] = {"min": str(min), "max": str(max)}
    if step is not None:
        space["step"] = str(step)
    if log:
        space["distribution"] = "logUniform"
    return {"parameterType": "int", "feasibleSpace": space}


def categorical(values: Sequence[Any]) -> dict[str, Any]:
    """One of ``values`` (passed to the objective as strings)."""
    return {"parameterType": "categorical", "feasibleSpace": {"list": [str(v) for v in values]}}


def discrete(values: Sequence[float]) -> dict[str, Any]:
    """One of the numbers ``values``."""
    return {"parameterType": "discrete", "feasibleSpace": {"list": [_num(v) for v in values]}}
