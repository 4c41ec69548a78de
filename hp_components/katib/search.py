"""``katib.search`` with Katib's signatures (kubeflow/katib/api/search.py): ``double``, ``int``, ``categorical``.

Each returns a :class:`ParameterSpec` (Katib's ``V1beta1ParameterSpec`` fields) for
:meth:`hp_components.katib.KatibClient.tune`::

    from hp_components import katib
    parameters = {"lr": katib.search.double(min=0.01, max=0.05), "batch": katib.search.int(16, 64, step=16),
                  "optimizer": katib.search.categorical(list=["sgd", "adam"])}
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any, List

from hp_components import search as _search_helpers  # the public search helpers, under a local name

__all__ = ["ParameterSpec", "double", "int", "categorical"]


@dataclass
class ParameterSpec:
    """Katib's ``V1beta1ParameterSpec`` as a dataclass (``name`` is filled in by ``tune``)."""

    parameter_type: str
    feasible_space: dict[str, Any] = field(default_factory=dict)
    name: str | None = None

    def to_katib(self) -> dict[str, Any]:
        """The parameter as a Katib YAML entry, without its name."""
        return {"parameterType": self.parameter_type, "feasibleSpace": dict(self.feasible_space)}


def _spec(raw: dict[str, Any]) -> ParameterSpec:
    return ParameterSpec(raw["parameterType"], raw["feasibleSpace"])


def double(min: float, max: float, step: float | None = None) -> ParameterSpec:
    """A float between ``min`` and ``max`` (Katib's ``search.double``)."""
    return _spec(_search_helpers.double(float(min), float(max), step=None if step is None else float(step)))


def int(min: builtins.int, max: builtins.int, step: builtins.int | None = None) -> ParameterSpec:
    """A whole number between ``min`` and ``max``, both included (Katib's ``search.int``)."""
    return _spec(_search_helpers.int(min, max, step=step))


def categorical(list: List[Any]) -> ParameterSpec:  # noqa: A002 - Katib's keyword is ``list``
    """One of the values of ``list``, passed to the objective as a string (Katib's ``search.categorical``)."""
    return _spec(_search_helpers.categorical(list))
