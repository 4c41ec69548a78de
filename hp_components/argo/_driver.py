"""The Argo Workflows driver (``--target argo``): the package's functions behind the Driver interface."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hp_components.drivers import Driver
from hp_components.experiment import Experiment

from hp_components.argo import compile_experiment, read_status, submit

__all__ = ["ArgoDriver"]


class ArgoDriver(Driver):
    """A recursive WorkflowTemplate (or a Workflow) built with Hera; runs submitted through the
    Kubernetes API (your kubeconfig) or an Argo Server."""

    name = "argo"
    extra = "argo"
    options = {
        "kind": "compile: workflowtemplate (default) or workflow",
        "lanes": "compile: parallelTrialCount asynchronous lanes over a shared store instead of rounds",
        "storage": "compile --lanes: the experiment store's URL, without its password",
        "storage_secret": "compile --lanes: the Kubernetes Secret NAME[:KEY] holding the store's password",
        "argo_server": "submit and read through this Argo Server instead of the Kubernetes API",
        "token": "bearer token for the Argo Server",
    }

    def compile(self, exp: Experiment, output: Path, *, image: str | None = None, **options: Any) -> list[Path]:
        return compile_experiment(exp, output, image=image, **self.check_options(options))

    def submit(self, exp: Experiment, *, image: str | None = None, namespace: str | None = None, **options: Any) -> str:
        return submit(exp, image=image, namespace=namespace, **self.check_options(options))

    def status(self, run: str, *, namespace: str | None = None, **options: Any) -> dict[str, Any]:
        return read_status(run, namespace=namespace, **self.check_options(options))

    def after_submit(self, exp: Experiment, spec_file: str) -> str:
        if exp.trial_kind == "Job":
            return ""
        return (f"note: its {exp.trial_kind} trials run as service account {exp.name}-tune; if it does not exist yet: "
                f"hp-tune compile {spec_file} --target argo -o wt.yaml && kubectl apply -f wt-rbac.yaml")
