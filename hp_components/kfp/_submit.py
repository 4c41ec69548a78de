"""Submitting a compiled experiment with ``kfp.Client`` (the contract is in docs/kfp-contract.md).

    run_id = submit_experiment(exp, host="http://localhost:8080", namespace="kubeflow")
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hp_components.experiment import Experiment

from hp_components.kfp._errors import KfpError

__all__ = ["submit_experiment"]


def submit_experiment(exp: Experiment, *, host: str | None, namespace: str | None = None, image: str | None = None,
                      token: str | None = None, experiment_name: str | None = None,
                      client: Any = None) -> str:
    """Compile ``exp`` and start it as a KFP run (caching off); returns the run id."""
    import kfp

    from hp_components.kfp import compile_experiment

    if client is None:
        if not host:
            raise KfpError("--host: give the KFP API endpoint (e.g. http://localhost:8080 after "
                           "kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80)")
        client = kfp.Client(host=host, existing_token=token, namespace=namespace or "kubeflow")
    with tempfile.TemporaryDirectory(prefix="hp-kfp-") as tmp:
        package = Path(tmp) / f"{exp.name}.yaml"
        compile_experiment(exp, package, image=image)
        result = client.create_run_from_pipeline_package(
            str(package), arguments={}, run_name=exp.name, experiment_name=experiment_name or exp.name,
            namespace=namespace or exp.metadata.namespace, enable_caching=False,
        )
    return str(result.run_id)
