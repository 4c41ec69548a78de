"""Why an experiment cannot become an Argo workflow."""

from __future__ import annotations

__all__ = ["CompileError"]


class CompileError(ValueError):
    """The experiment cannot run on Argo Workflows; the message names the field and what to do."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")
