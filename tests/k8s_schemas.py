"""Validate a rendered trial manifest against the structural schema of its kind.

The schemas live in ``tests/data/k8s-schemas/`` (see the README there): batch/v1 Job and the
training operator's kubeflow.org/v1 PyTorchJob, TFJob, MPIJob and XGBoostJob. ::

    from tests.k8s_schemas import validate_manifest
    assert validate_manifest(render_trial_spec(exp, trial)) == []
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

SCHEMA_DIR = Path(__file__).parent / "data" / "k8s-schemas"
#: kind -> (apiVersion, schema file)
KINDS: dict[str, tuple[str, str]] = {
    "Job": ("batch/v1", "job.json"),
    "PyTorchJob": ("kubeflow.org/v1", "pytorchjob.json"),
    "TFJob": ("kubeflow.org/v1", "tfjob.json"),
    "MPIJob": ("kubeflow.org/v1", "mpijob.json"),
    "XGBoostJob": ("kubeflow.org/v1", "xgboostjob.json"),
}


class UnknownKindError(KeyError):
    """A manifest whose kind has no schema here."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@lru_cache(maxsize=None)
def validator(kind: str) -> Draft7Validator:
    """The (cached) validator for ``kind``."""
    if kind not in KINDS:
        raise UnknownKindError(f"no schema for kind {kind!r}; known: {', '.join(f'{v[0]} {k}' for k, v in KINDS.items())}")
    schema = json.loads((SCHEMA_DIR / KINDS[kind][1]).read_text(encoding="utf-8"))
    return Draft7Validator(schema)


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


def validate_manifest(manifest: dict[str, Any]) -> list[str]:
    """Every schema violation of ``manifest`` as ``"path: message"``, sorted; ``[]`` if valid.

    The schema is picked by ``kind``; a known kind under the wrong ``apiVersion`` is reported
    as an ``apiVersion`` error. Raises :class:`UnknownKindError` (a ``KeyError``) for other kinds.
    """
    if not isinstance(manifest, dict):
        raise TypeError(f"a manifest is a mapping, not {type(manifest).__name__}")
    kind = manifest.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise UnknownKindError(
            f"no schema for apiVersion {manifest.get('apiVersion')!r} kind {kind!r}; "
            f"known: {', '.join(f'{v[0]} {k}' for k, v in KINDS.items())}")
    errors = []
    for err in validator(kind).iter_errors(manifest):
        message = err.message
        if err.validator == "pattern" and "[KMGTPE]i" in str(err.validator_value):
            message = f"{err.instance!r} is not a Kubernetes quantity (like 500m, 2Gi, 1e3)"
        # for anyOf (int-or-string) the branch errors say more than "not valid under any"
        detail = "; ".join(sorted({c.message for c in err.context})) if err.context else ""
        errors.append(f"{_path(err.absolute_path)}: {message}" + (f" ({detail})" if detail else ""))
    return sorted(errors)
