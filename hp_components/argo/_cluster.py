"""Submitting workflows and reading them back: the Kubernetes API (kubeconfig) or an Argo Server.

The requests, written down in docs/argo-contract.md and exercised against a local fake server
in tests:

* Kubernetes: ``POST /apis/argoproj.io/v1alpha1/namespaces/{ns}/workflows`` with the Workflow
  as the body; ``GET /apis/argoproj.io/v1alpha1/namespaces/{ns}/workflows/{name}``.
* Argo Server: ``POST /api/v1/workflows/{ns}`` with ``{"workflow": <Workflow>}``;
  ``GET /api/v1/workflows/{ns}/{name}``; ``Authorization: Bearer <token>`` when given.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from typing import Any

from hp_components.argo._errors import CompileError

__all__ = ["create_workflow", "get_workflow", "summarize"]

_GROUP, _VERSION, _PLURAL = "argoproj.io", "v1alpha1", "workflows"


def _kubeconfig() -> str | None:
    """``KUBECONFIG`` as it is now (the client reads it once, when it is first imported)."""
    return os.environ.get("KUBECONFIG") or None


def _k8s_namespace(namespace: str | None) -> str:
    if namespace:
        return namespace
    from kubernetes import config

    try:
        _, context = config.list_kube_config_contexts(config_file=_kubeconfig())
        return (context or {}).get("context", {}).get("namespace") or "default"
    except (config.ConfigException, OSError, TypeError):
        return "default"


def _k8s_api() -> Any:
    from kubernetes import client, config

    try:
        config.load_kube_config(config_file=_kubeconfig())
    except (config.ConfigException, OSError, TypeError) as e:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            raise CompileError("--namespace", f"no Kubernetes configuration found ({e}); set KUBECONFIG or use --argo-server") from None
    return client.CustomObjectsApi()


def _argo_service(server: str, token: str | None) -> Any:
    from hera.workflows import WorkflowsService

    return WorkflowsService(host=server, token=token, verify_ssl=server.startswith("https://") and None)


def create_workflow(body: dict[str, Any], *, namespace: str | None, argo_server: str | None, token: str | None) -> str:
    """Create the Workflow; returns its name (the server fills in generateName)."""
    if argo_server:
        from hera.workflows.models import Workflow as WorkflowModel, WorkflowCreateRequest

        ns = namespace or body.get("metadata", {}).get("namespace") or "default"
        created = _argo_service(argo_server, token).create_workflow(
            WorkflowCreateRequest(workflow=WorkflowModel.model_validate(body)), namespace=ns)
        return str(created.metadata.name)
    from kubernetes.client.exceptions import ApiException

    ns = _k8s_namespace(namespace or body.get("metadata", {}).get("namespace"))
    body = {**body, "metadata": {**body.get("metadata", {}), "namespace": ns}}
    try:
        created = _k8s_api().create_namespaced_custom_object(_GROUP, _VERSION, ns, _PLURAL, body)
    except ApiException as e:
        raise CompileError("submit", f"the Kubernetes API refused the Workflow ({e.status}): {e.reason}") from None
    return str(created["metadata"]["name"])


def get_workflow(name: str, *, namespace: str | None, argo_server: str | None, token: str | None) -> dict[str, Any]:
    """The Workflow object as a dict."""
    if argo_server:
        wf = _argo_service(argo_server, token).get_workflow(name=name, namespace=namespace or "default")
        return json.loads(wf.model_dump_json(by_alias=True, exclude_none=True))
    from kubernetes.client.exceptions import ApiException

    ns = _k8s_namespace(namespace)
    try:
        return dict(_k8s_api().get_namespaced_custom_object(_GROUP, _VERSION, ns, _PLURAL, name))
    except ApiException as e:
        raise CompileError("NAME", f"cannot read workflow {name!r} in namespace {ns!r} ({e.status}): {e.reason}") from None


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return text


def _nodes(status: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The node statuses, and where they came from.

    ``status.nodes``; else ``status.compressedNodes``, which Argo's controller writes once the
    Workflow passes its size limit (workflow/packer/packer.go compressWorkflow: the nodes' JSON,
    gzip, base64; util/file CompressEncodeString); else, when the nodes were offloaded to the
    controller's database (``offloadNodeStatusVersion``), nothing: only the Argo Server reads them
    back (its GetWorkflow hydrates the workflow), so use ``--argo-server``.
    """
    if status.get("nodes"):
        return list(status["nodes"].values()), "nodes"
    if status.get("compressedNodes"):
        raw = base64.b64decode(status["compressedNodes"])
        try:
            text = gzip.decompress(raw)
        except OSError:
            try:  # the controller writes zstd when ARGO_COMPRESSION_ALGORITHM=zstd (Python 3.14 has it)
                from compression import zstd  # type: ignore[import-not-found]
            except ImportError:
                return [], "compressedNodes (not gzip, and this Python cannot read zstd or brotli)"
            text = zstd.decompress(raw)
        return list(json.loads(text).values()), "compressedNodes"
    if status.get("offloadNodeStatusVersion"):
        return [], "offloaded (the node status is in the controller's database: read it with --argo-server)"
    return [], "nodes"


def _trial_nodes(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One node per trial: those of template ``trial`` (a Retry node, a steps node, or a pod in
    workflows compiled before the trial had its own steps template) that are not an attempt
    (``<name>(n)``) of another such node."""
    mine = [n for n in nodes if n.get("templateName") == "trial" and n.get("type") in ("Pod", "Retry", "Steps")]
    names = {n["name"] for n in mine}
    return [n for n in mine if not (n["name"].endswith(")") and n["name"].rsplit("(", 1)[0] in names)]


def summarize(wf: dict[str, Any]) -> dict[str, Any]:
    """Progress, trials and the best result from a Workflow object made by hp-components.

    The trials come from the node statuses (plain, or compressed by the controller); the status,
    the best trial and the trial counts come from the workflow's global outputs, which neither
    compression nor offloading touches.
    """
    status = wf.get("status") or {}
    outputs = {p["name"]: p.get("value") for p in (status.get("outputs") or {}).get("parameters", [])}
    nodes, source = _nodes(status)
    trials = []
    for node in _trial_nodes(nodes):
        inputs = {p["name"]: p.get("value") for p in (node.get("inputs") or {}).get("parameters", [])}
        obs = _json({p["name"]: p.get("value") for p in (node.get("outputs") or {}).get("parameters", [])}.get("observation")) or {}
        trials.append({"name": inputs.get("hp-trial-name"), "phase": node.get("phase"),
                       "condition": obs.get("condition") if isinstance(obs, dict) else None,
                       "objectiveValue": obs.get("objectiveValue") if isinstance(obs, dict) else None,
                       "parameters": {k: v for k, v in inputs.items() if k != "hp-trial-name"}})
    trials.sort(key=lambda t: str(t["name"]))
    return {
        "name": wf.get("metadata", {}).get("name"),
        "phase": status.get("phase"),
        "progress": status.get("progress"),
        "done": _json(outputs.get("done")),
        "status": _json(outputs.get("status")),
        "best": _json(outputs.get("best")),
        "trials": trials,
        "trialsFrom": source,
    }
