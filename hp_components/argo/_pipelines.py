"""The ready-made Argo definitions in ``pipelines/``: one WorkflowTemplate per example experiment.

Regenerate after changing an example or the driver (a test fails while they are stale)::

    python -m hp_components.argo._pipelines
"""

from __future__ import annotations

from pathlib import Path

import yaml

from hp_components.argo._compile import rbac, workflow_template
from hp_components.experiment import load_experiment

ROOT = Path(__file__).resolve().parents[2]


def expected() -> dict[str, str]:
    """``pipelines/`` file name -> the YAML it must hold."""
    out = {}
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        doc = workflow_template(load_experiment(path))
        header = (f"# Generated from examples/{path.name} by: python -m hp_components.argo._pipelines\n"
                  f"# argo template create pipelines/argo-{path.name} && argo submit --from workflowtemplate/{doc['metadata']['name']}\n")
        out[f"argo-{path.name}"] = header + yaml.safe_dump(doc, sort_keys=False, width=1 << 20)
        if doc["spec"].get("serviceAccountName"):  # job trials: the account, Role and RoleBinding they run as
            out[f"argo-{path.stem}-rbac.yaml"] = (f"# Generated with pipelines/argo-{path.name}: kubectl apply -f it first\n"
                                                  + yaml.safe_dump_all(rbac(load_experiment(path)), sort_keys=False))
    # the WorkflowTemplates the example workflows in examples/argo/ call through templateRef
    for path in sorted((ROOT / "examples" / "argo").glob("*-experiment.yaml")):
        doc = workflow_template(load_experiment(path))
        name = doc["metadata"]["name"]
        header = (f"# Generated from examples/argo/{path.name} by: python -m hp_components.argo._pipelines\n"
                  f"# argo template create pipelines/argo-{name}.yaml; examples/argo/ calls it by templateRef\n")
        out[f"argo-{name}.yaml"] = header + yaml.safe_dump(doc, sort_keys=False, width=1 << 20)
    return out


def main() -> None:
    for name, text in expected().items():
        (ROOT / "pipelines" / name).write_text(text, encoding="utf-8")
        print(f"wrote pipelines/{name}")


if __name__ == "__main__":
    main()
