"""The Kubeflow Pipelines driver (``--target kfp``): the package's functions behind the Driver interface."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hp_components.drivers import Driver
from hp_components.experiment import Experiment

from hp_components.kfp import compile_experiment, read_status, submit

__all__ = ["KfpDriver"]


class KfpDriver(Driver):
    """A KFP v2 pipeline (IR YAML) for the KFP UI or ``kfp.Client``; runs submitted to a KFP API."""

    name = "kfp"
    extra = "kfp"
    options = {
        "host": "the KFP API endpoint (default: kfp.Client's, in-cluster or ~/.config/kfp)",
        "token": "bearer token for the KFP API",
        "lanes": "compile: parallelTrialCount asynchronous lanes over a shared store instead of rounds",
        "storage": "compile --lanes: the experiment store's URL, without its password",
        "storage_secret": "compile --lanes: the Kubernetes Secret NAME[:KEY] holding the store's password",
    }

    def compile(self, exp: Experiment, output: Path, *, image: str | None = None, **options: Any) -> list[Path]:
        chosen = self.check_options(options)
        compile_experiment(exp, output, image=image, lanes=bool(chosen.get("lanes")), storage=chosen.get("storage"),
                           storage_secret=chosen.get("storage_secret"))
        return [Path(output)]

    def submit(self, exp: Experiment, *, image: str | None = None, namespace: str | None = None, **options: Any) -> str:
        return submit(exp, image=image, namespace=namespace, **self.check_options(options))

    def status(self, run: str, *, namespace: str | None = None, **options: Any) -> dict[str, Any]:
        return read_status(run, namespace=namespace, **self.check_options(options))
