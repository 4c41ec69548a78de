"""Argo Workflows: a Katib Experiment as a recursive WorkflowTemplate (built with Hera).

    hp-tune compile examples/random-digits.yaml --target argo -o random-digits.yaml
    argo template create random-digits.yaml && argo submit --from workflowtemplate/random-digits-tune
    hp-tune compile examples/random-digits.yaml --target argo --kind workflow -o wf.yaml && argo submit wf.yaml
    hp-tune submit examples/random-digits.yaml --target argo [--argo-server URL --token T] [--namespace NS]
    hp-tune status random-digits-x7k2p --target argo

In Python::

    from hp_components.argo import workflow_template
    doc = workflow_template(load_experiment("examples/random-digits.yaml"))

A Kubeflow training job trial (PyTorchJob, TFJob, MPIJob, XGBoostJob) becomes a resource step that
creates the job and an observe step that reads its outcome and metrics; the workflow then runs
as service account ``<experiment>-tune``, defined with its Role and RoleBinding in
``<output>-rbac.yaml`` (``kubectl apply -f`` it first). Needs the ``argo`` extra (hera, kubernetes). The history moves between rounds as an artifact,
so the cluster needs an artifact repository (Argo's default one); see docs/argo.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hp_components.argo._cluster import create_workflow, get_workflow, summarize
from hp_components.argo._compile import MAX_ROUNDS, Options, rbac, template_name, workflow, workflow_template
from hp_components.argo._errors import CompileError
from hp_components.argo._lanes import MAX_LANE_TRIALS, Lanes, lanes_workflow, lanes_workflow_template
from hp_components.experiment import Experiment

__all__ = ["CompileError", "Lanes", "MAX_LANE_TRIALS", "MAX_ROUNDS", "lanes_workflow", "lanes_workflow_template", "Options", "compile_experiment", "rbac", "rbac_path", "read_status", "submit",
           "template_name", "workflow", "workflow_template"]

_KINDS = ("workflowtemplate", "workflow")


def compile_experiment(exp: Experiment, output: Path, *, kind: str = "workflowtemplate",
                       image: str | None = None, lanes: bool = False, storage: str | None = None,
                       storage_secret: str | None = None) -> list[Path]:
    """Write the WorkflowTemplate (or, with ``kind="workflow"``, a standalone Workflow) as YAML; the files written.

    With ``lanes``: the lane shape over the experiment store at ``storage`` (its password in the
    Kubernetes Secret ``storage_secret``, ``name[:key]``), see docs/argo.md. Job trials also get
    ``<output>-rbac.yaml``: the ServiceAccount, Role and RoleBinding they run as.
    """
    if kind not in _KINDS:
        raise CompileError("--kind", f"must be one of {', '.join(_KINDS)}, not {kind!r}")
    if not lanes and (storage or storage_secret):
        raise CompileError("--storage" if storage else "--storage-secret",
                           "is used only with --lanes on Argo (the round shape keeps the history in an artifact)")
    if lanes:
        if not storage:
            raise CompileError("--lanes", "needs --storage: the database every lane reads and writes "
                               "(postgresql+psycopg://user@host:5432/db, its password in --storage-secret)")
        shape = Lanes(storage, storage_secret)
        doc = (lanes_workflow_template if kind == "workflowtemplate" else lanes_workflow)(exp, shape, image)
    else:
        doc = (workflow_template if kind == "workflowtemplate" else workflow)(exp, image)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(yaml.safe_dump(doc, sort_keys=False, width=1 << 20), encoding="utf-8")
    if not doc["spec"].get("serviceAccountName"):
        return [output]
    rbac_path(output).write_text(yaml.safe_dump_all(rbac(exp), sort_keys=False), encoding="utf-8")
    return [output, rbac_path(output)]


def rbac_path(output: Path) -> Path:
    """Where :func:`compile_experiment` writes the RBAC for job trials: ``<output>-rbac.yaml``."""
    return output.with_name(f"{output.stem}-rbac.yaml")


def submit(exp: Experiment, *, argo_server: str | None = None, token: str | None = None,
           namespace: str | None = None, image: str | None = None) -> str:
    """Create a Workflow for the experiment (Kubernetes API by default, or an Argo Server); its name."""
    return create_workflow(workflow(exp, image), namespace=namespace, argo_server=argo_server, token=token)


def read_status(name: str, *, argo_server: str | None = None, token: str | None = None,
                namespace: str | None = None) -> dict[str, Any]:
    """Phase, progress, Katib-style status, best trial and the trials of a submitted workflow."""
    return summarize(get_workflow(name, namespace=namespace, argo_server=argo_server, token=token))
