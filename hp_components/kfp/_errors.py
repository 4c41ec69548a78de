"""Errors for experiments KFP cannot run; each message names the spec field."""

from __future__ import annotations

__all__ = ["KfpError", "UnsupportedExperiment"]


class KfpError(ValueError):
    """A problem compiling or submitting for Kubeflow Pipelines."""


class UnsupportedExperiment(KfpError):
    """A valid Katib Experiment this KFP driver cannot run; ``field`` is its spec path."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")
