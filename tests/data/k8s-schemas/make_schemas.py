"""Regenerate the JSON Schemas in this folder from a kubeflow/training-operator git mirror.

    python tests/data/k8s-schemas/make_schemas.py /path/to/training-operator[.git] [--ref v1.9.0]

Reads ``manifests/base/crds/kubeflow.org_<kind>s.yaml`` at ``--ref`` with ``git show`` (a bare
mirror is enough), turns each CRD's ``openAPIV3Schema`` into a Draft 7 JSON Schema and writes
``pytorchjob.json``, ``tfjob.json``, ``mpijob.json``, ``xgboostjob.json`` and ``job.json`` (batch/v1
Job, written here around the CRDs' PodTemplateSpec schema) next to this script. See README.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parent
CRDS = {  # output file -> (CRD file, kind, replica-specs field)
    "pytorchjob.json": ("kubeflow.org_pytorchjobs.yaml", "PyTorchJob", "pytorchReplicaSpecs"),
    "tfjob.json": ("kubeflow.org_tfjobs.yaml", "TFJob", "tfReplicaSpecs"),
    "mpijob.json": ("kubeflow.org_mpijobs.yaml", "MPIJob", "mpiReplicaSpecs"),
    "xgboostjob.json": ("kubeflow.org_xgboostjobs.yaml", "XGBoostJob", "xgbReplicaSpecs"),
}
DRAFT7 = "http://json-schema.org/draft-07/schema#"

# keys whose value is a map of name -> schema, a schema, or a list of schemas
_SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SCHEMA_ONE = ("items", "additionalProperties", "not")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf")

_STR = {"type": "string"}
_STR_MAP = {"type": "object", "additionalProperties": _STR}
#: metav1.ObjectMeta, every field (so unknown ones are flagged); server-set ones accepted too
OBJECT_META: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": _STR, "generateName": _STR, "namespace": _STR, "uid": _STR, "resourceVersion": _STR,
        "selfLink": _STR, "generation": {"type": "integer"},
        "labels": _STR_MAP, "annotations": _STR_MAP,
        "finalizers": {"type": "array", "items": _STR},
        "ownerReferences": {"type": "array", "items": {
            "type": "object", "required": ["apiVersion", "kind", "name", "uid"],
            "properties": {"apiVersion": _STR, "kind": _STR, "name": _STR, "uid": _STR,
                           "controller": {"type": "boolean"}, "blockOwnerDeletion": {"type": "boolean"}},
            "additionalProperties": False}},
        "creationTimestamp": {"type": ["string", "null"]},
        "deletionTimestamp": {"type": ["string", "null"]},
        "deletionGracePeriodSeconds": {"type": "integer"},
        "managedFields": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": False,
}


def git_show(mirror: str, ref: str, path: str) -> str:
    """The text of ``path`` at ``ref`` in the git repository ``mirror``."""
    return subprocess.run(["git", "-C", mirror, "show", f"{ref}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def convert(node: Any) -> Any:
    """An OpenAPI v3 (Kubernetes structural) schema as a Draft 7 JSON Schema.

    Drops ``description`` and ``x-kubernetes-*``; ``nullable`` becomes a ``null`` type;
    ``x-kubernetes-int-or-string`` becomes ``anyOf`` integer/string; an object with ``properties``
    and no ``additionalProperties`` gets ``additionalProperties: false`` (the API server prunes,
    and with strict field validation rejects, unknown fields).
    """
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "description" or key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key in _SCHEMA_MAPS:
            out[key] = {name: convert(sub) for name, sub in value.items()}
        elif key in _SCHEMA_ONE:
            out[key] = [convert(s) for s in value] if isinstance(value, list) else convert(value)
        elif key in _SCHEMA_LISTS:
            out[key] = [convert(s) for s in value]
        else:
            out[key] = copy.deepcopy(value)
    if node.get("nullable") is True and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    if node.get("x-kubernetes-int-or-string") is True and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in out and "additionalProperties" not in out and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def kubeflow_schema(crd_text: str, kind: str, comment: str) -> dict[str, Any]:
    """The schema of one training-operator kind from its CRD (version v1)."""
    crd = yaml.safe_load(crd_text)
    assert crd["spec"]["names"]["kind"] == kind, crd["spec"]["names"]["kind"]
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = convert(version["schema"]["openAPIV3Schema"])
    props = schema["properties"]
    props["apiVersion"] = {"type": "string", "const": f"{crd['spec']['group']}/v1"}
    props["kind"] = {"type": "string", "const": kind}
    props["metadata"] = OBJECT_META
    props["status"] = {"type": "object"}  # never part of a trialSpec; accepted, not checked
    schema["required"] = ["apiVersion", "kind", "spec"]
    schema["additionalProperties"] = False
    return {"$schema": DRAFT7, "$comment": comment, "title": f"{kind} ({props['apiVersion']['const']})", **schema}


def job_schema(pod_template: dict[str, Any], comment: str) -> dict[str, Any]:
    """batch/v1 Job (Kubernetes 1.31 JobSpec), its pod template being ``pod_template``."""
    i32 = {"type": "integer", "format": "int32"}
    nonneg32 = {**i32, "minimum": 0}
    template = copy.deepcopy(pod_template)
    template["properties"]["metadata"] = OBJECT_META
    pod = template["properties"]["spec"]
    # validateJobSpec: a Job's pods must not restart in place (the PodSpec default, Always, is refused)
    pod["properties"]["restartPolicy"] = {"type": "string", "enum": ["Never", "OnFailure"]}
    pod["required"] = sorted({*pod.get("required", []), "restartPolicy"})
    template["required"] = sorted({*template.get("required", []), "spec"})
    selector = {"type": "object", "additionalProperties": False, "properties": {
        "matchLabels": _STR_MAP,
        "matchExpressions": {"type": "array", "items": {
            "type": "object", "required": ["key", "operator"], "additionalProperties": False,
            "properties": {"key": _STR, "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                           "values": {"type": "array", "items": _STR}}}}}}
    spec = {
        "type": "object",
        "required": ["template"],
        "additionalProperties": False,
        "properties": {
            "template": template,
            "parallelism": nonneg32,
            "completions": nonneg32,
            "backoffLimit": nonneg32,
            "backoffLimitPerIndex": nonneg32,
            "maxFailedIndexes": nonneg32,
            "activeDeadlineSeconds": {"type": "integer", "format": "int64", "minimum": 0},
            "ttlSecondsAfterFinished": nonneg32,
            "completionMode": {"type": "string", "enum": ["NonIndexed", "Indexed"]},
            "suspend": {"type": "boolean"},
            "manualSelector": {"type": "boolean"},
            "selector": selector,
            "podFailurePolicy": {"type": "object", "required": ["rules"],
                                 "properties": {"rules": {"type": "array", "items": {"type": "object"}}}},
            "podReplacementPolicy": {"type": "string", "enum": ["TerminatingOrFailed", "Failed"]},
            "successPolicy": {"type": "object", "required": ["rules"],
                              "properties": {"rules": {"type": "array", "items": {"type": "object"}}}},
            "managedBy": _STR,
        },
    }
    return {
        "$schema": DRAFT7, "$comment": comment, "title": "Job (batch/v1)",
        "type": "object",
        "required": ["apiVersion", "kind", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"type": "string", "const": "batch/v1"},
            "kind": {"type": "string", "const": "Job"},
            "metadata": OBJECT_META,
            "spec": spec,
            "status": {"type": "object"},
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Write the five schemas; print each file's size."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mirror", help="a git clone or bare mirror of kubeflow/training-operator")
    ap.add_argument("--ref", default="v1.9.0")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "-C", args.mirror, "rev-parse", f"{args.ref}^{{commit}}"], check=True,
                            capture_output=True, text=True).stdout.strip()
    schemas: dict[str, dict[str, Any]] = {}
    templates = []
    for out, (crd_file, kind, replicas) in CRDS.items():
        path = f"manifests/base/crds/{crd_file}"
        comment = f"generated by make_schemas.py from kubeflow/training-operator {args.ref} ({commit}) {path}"
        schemas[out] = kubeflow_schema(git_show(args.mirror, args.ref, path), kind, comment)
        templates.append(schemas[out]["properties"]["spec"]["properties"][replicas]["additionalProperties"]["properties"]["template"])
    if any(t != templates[0] for t in templates[1:]):
        print("warning: the CRDs' pod template schemas differ; job.json uses PyTorchJob's", file=sys.stderr)
    schemas["job.json"] = job_schema(templates[0], "written by make_schemas.py; pod template from kubeflow/training-operator "
                                     f"{args.ref} ({commit}) manifests/base/crds/{CRDS['pytorchjob.json'][0]}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, schema in sorted(schemas.items()):
        text = json.dumps(schema, separators=(",", ":"), sort_keys=True, ensure_ascii=False) + "\n"
        (args.out / name).write_text(text, encoding="utf-8")
        print(f"{name}: {len(text.encode())} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
