"""Test helpers for generated Argo documents: Argo's semantic checks, and a small interpreter.

``semantic_problems(doc)`` implements the checks of Argo's workflow/validate that apply to what
hp-components generates (see ARGO-VALIDATION.md in the shared folder). ``Interpreter`` executes
a generated workflow the way the controller wires it: each container's command runs as a real
subprocess with ``{{...}}`` substituted, fan-outs over ``withParam``, aggregated outputs,
artifacts passed as files, ``when`` conditions and recursion. It also records node statuses
shaped like Argo's, to estimate how the Workflow object grows per round.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

NAME_RE = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
PARAM_RE = re.compile(r"^[-a-zA-Z0-9_]+$")
TAG_RE = re.compile(r"\{\{([^{}]*)\}\}")
CHECKED_PREFIXES = ("item.", "steps.", "tasks.", "inputs.", "outputs.", "pod.", "workflow.")


def semantic_problems(doc: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    meta, spec = doc["metadata"], doc["spec"]
    name = meta.get("name") or ""
    if len(name) > 63:
        problems.append(f"metadata.name longer than 63: {name}")
    templates = {t["name"]: t for t in spec["templates"]}
    if len(templates) != len(spec["templates"]):
        problems.append("duplicate template names")
    if spec.get("entrypoint") not in templates:
        problems.append(f"entrypoint {spec.get('entrypoint')!r} undefined")
    for t in spec["templates"]:
        tname = t["name"]
        if not NAME_RE.match(tname) or len(tname) > 128:
            problems.append(f"template name {tname!r}")
        kinds = [k for k in ("container", "script", "steps", "dag", "resource", "suspend", "data", "http") if k in t]
        if len(kinds) != 1:
            problems.append(f"template {tname}: exactly one type, got {kinds}")
        inputs = {p["name"] for p in (t.get("inputs") or {}).get("parameters", [])}
        in_artifacts = {a["name"] for a in (t.get("inputs") or {}).get("artifacts", [])}
        for p in [*(t.get("inputs") or {}).get("parameters", []), *(t.get("outputs") or {}).get("parameters", [])]:
            if not PARAM_RE.match(p["name"]):
                problems.append(f"{tname}: parameter name {p['name']!r}")
        for p in (t.get("outputs") or {}).get("parameters", []):
            vf = p.get("valueFrom") or {}
            sources = [k for k in ("path", "jqFilter", "jsonPath", "parameter", "expression", "supplied") if k in vf]
            if ("value" in p) == bool(vf) or (vf and len(sources) != 1):
                problems.append(f"{tname}: output {p['name']} needs value xor one valueFrom source")
            if "container" in t and vf and "path" not in vf:
                problems.append(f"{tname}: container output {p['name']} needs a path")
        if "parallelism" in t and "steps" not in t and "dag" not in t:
            problems.append(f"{tname}: parallelism on a leaf")
        if "activeDeadlineSeconds" in t and ("steps" in t or "dag" in t):
            problems.append(f"{tname}: activeDeadlineSeconds on a non-leaf")
        if "container" in t and not t["container"].get("image"):
            problems.append(f"{tname}: empty image")
        leaf_text = json.dumps(t.get("container") or {})
        for tag in TAG_RE.findall(leaf_text):
            if tag.startswith("inputs.parameters.") and tag.split(".", 2)[2] not in inputs:
                problems.append(f"{tname}: {{{{{tag}}}}} is not an input")
        if "steps" not in t:
            continue
        seen_steps: set[str] = set()
        scope: dict[str, dict[str, Any]] = {}
        for group in t["steps"]:
            for step in group:
                sname = step["name"]
                if not NAME_RE.match(sname) or sname in seen_steps:
                    problems.append(f"{tname}: step name {sname!r}")
                seen_steps.add(sname)
                target = templates.get(step.get("template", ""))
                if target is None:
                    problems.append(f"{tname}.{sname}: template {step.get('template')!r} undefined")
                    continue
                args = {p["name"]: p for p in (step.get("arguments") or {}).get("parameters", [])}
                art_args = {a["name"]: a for a in (step.get("arguments") or {}).get("artifacts", [])}
                for p in (target.get("inputs") or {}).get("parameters", []):
                    if p["name"] not in args and "value" not in p and "default" not in p:
                        problems.append(f"{tname}.{sname}: inputs.parameters.{p['name']} was not supplied")
                for a in (target.get("inputs") or {}).get("artifacts", []):
                    if a["name"] not in art_args and not a.get("optional"):
                        problems.append(f"{tname}.{sname}: inputs.artifacts.{a['name']} was not supplied")
                for p in args.values():
                    if "value" not in p and "valueFrom" not in p:
                        problems.append(f"{tname}.{sname}: argument {p['name']} has no value")
                loops = [k for k in ("withItems", "withParam", "withSequence") if k in step]
                if len(loops) > 1:
                    problems.append(f"{tname}.{sname}: more than one loop kind")
                text = json.dumps({k: step.get(k) for k in ("arguments", "when", "withParam")})
                for tag in TAG_RE.findall(text):
                    tag = tag.strip()
                    if tag.startswith("=") or tag == "item" or not tag.startswith(CHECKED_PREFIXES):
                        continue
                    if tag.startswith("item.") and not loops:
                        problems.append(f"{tname}.{sname}: {{{{{tag}}}}} outside a loop")
                    elif tag.startswith("inputs.parameters.") and tag.split(".", 2)[2] not in inputs:
                        problems.append(f"{tname}.{sname}: {{{{{tag}}}}} is not an input of {tname}")
                    elif tag.startswith("inputs.artifacts.") and tag.split(".", 2)[2] not in in_artifacts:
                        problems.append(f"{tname}.{sname}: {{{{{tag}}}}} is not an input artifact of {tname}")
                    elif tag.startswith("steps."):
                        parts = tag.split(".")
                        earlier = scope.get(parts[1])
                        if earlier is None:
                            problems.append(f"{tname}.{sname}: {{{{{tag}}}}} names no earlier step")
                            continue
                        outs = earlier.get("outputs") or {}
                        if parts[2:4] == ["outputs", "parameters"] and parts[4] not in {p["name"] for p in outs.get("parameters", [])}:
                            problems.append(f"{tname}.{sname}: {{{{{tag}}}}}: {parts[1]} declares no such output")
                        if parts[2:4] == ["outputs", "artifacts"] and parts[4] not in {a["name"] for a in outs.get("artifacts", [])}:
                            problems.append(f"{tname}.{sname}: {{{{{tag}}}}}: {parts[1]} declares no such artifact")
            for step in group:  # a step is in scope only for later groups
                if step.get("template") in templates:
                    scope[step["name"]] = templates[step["template"]]
    return problems


class Interpreter:
    """Runs a generated workflow's containers for real, as the Argo controller would wire them."""

    def __init__(self, doc: dict[str, Any], workdir: Path, hp_tune: list[str] | None = None, max_depth: int = 100,
                 namespace: str = "default"):
        self.templates = {t["name"]: t for t in doc["spec"]["templates"]}
        self.entry = doc["spec"]["entrypoint"]
        self.workdir = workdir
        self.hp_tune = hp_tune or [sys.executable, "-m", "hp_components.cli"]
        self.max_depth = max_depth
        self.nodes: list[dict[str, Any]] = []  # Argo-like node statuses, in creation order
        self.globals: dict[str, str] = {}
        self.depth = 0
        self.max_seen_depth = 0
        self.counter = 0
        self.namespace = namespace
        self.resources: list[dict[str, Any]] = []  # what resource steps created, as sent

    # -- substitution -------------------------------------------------------------------------
    @staticmethod
    def sub(text: str, scope: dict[str, str]) -> str:
        def repl(m: re.Match[str]) -> str:
            key = m.group(1).strip()
            if key not in scope:
                raise KeyError(f"unresolved {{{{{key}}}}}")
            return scope[key]

        return TAG_RE.sub(repl, text)

    # -- execution ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        return self.execute(self.entry, {}, {}, "main")

    def _node(self, name: str, template: str, kind: str, inputs: dict, outputs: dict, phase: str) -> None:
        self.nodes.append({"id": f"wf-{len(self.nodes):010d}", "name": name, "displayName": name.rsplit(".", 1)[-1],
                           "type": kind, "templateName": template, "phase": phase, "boundaryID": "wf-0000000000",
                           "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:00Z",
                           "inputs": inputs, "outputs": outputs, "children": [], "progress": "1/1"})

    def execute(self, name: str, params: dict[str, str], artifacts: dict[str, Path], node: str) -> dict[str, Any]:
        t = self.templates[name]
        self.depth += 1
        self.max_seen_depth = max(self.max_seen_depth, self.depth)
        if self.depth > self.max_depth:
            raise RecursionError("Argo would stop here: maximum recursion depth exceeded")
        try:
            for p in (t.get("inputs") or {}).get("parameters", []):
                if p["name"] not in params:
                    if "value" in p or "default" in p:
                        params[p["name"]] = p.get("value", p.get("default"))
                    else:
                        raise KeyError(f"{name}: inputs.parameters.{p['name']} was not supplied")
            if "steps" in t:
                return self._steps(t, params, artifacts, node)
            if "resource" in t:
                return self._resource(t, params, node)
            return self._container(t, params, artifacts, node)
        finally:
            self.depth -= 1

    def _resource(self, t: dict[str, Any], params: dict[str, str], node: str) -> dict[str, Any]:
        """A resource template: create the manifest through the Kubernetes API (KUBECONFIG), wait like Argo's executor."""
        from hp_components.jobs import KubeJobs

        scope = {f"inputs.parameters.{k}": v for k, v in params.items()} | {"workflow.namespace": self.namespace}
        res = t["resource"]
        assert res["action"] == "create", res["action"]
        manifest = yaml.safe_load(self.sub(res["manifest"], scope))
        if res.get("setOwnerReference"):
            manifest["metadata"]["ownerReferences"] = [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                                                        "name": "wf", "uid": "wf-uid", "blockOwnerDeletion": True}]
        jobs = KubeJobs.from_environment()
        jobs.create(manifest, self.namespace)
        phase, end = "Failed", time.monotonic() + 300
        while time.monotonic() < end:
            obj = jobs.get(manifest, self.namespace) or {}
            if res.get("failureCondition") and selector_matches(res["failureCondition"], obj):
                break
            if selector_matches(res.get("successCondition", ""), obj):
                phase = "Succeeded"
                break
            time.sleep(0.05)
        self.resources.append(manifest)
        self._node(node, t["name"], "Pod", {"parameters": [{"name": k, "value": v} for k, v in params.items()]}, {}, phase)
        return {"phase": phase, "parameters": {}, "artifacts": {}, "stderr": f"resource step {phase}"}

    def _container(self, t: dict[str, Any], params: dict[str, str], artifacts: dict[str, Path], node: str) -> dict[str, Any]:
        self.counter += 1
        root = self.workdir / f"pod-{self.counter:05d}"
        root.mkdir(parents=True)
        scope = {f"inputs.parameters.{k}": v for k, v in params.items()} | {"workflow.namespace": self.namespace}

        def local(path: str) -> Path:  # an absolute path in the pod -> inside this pod's folder
            return root / path.lstrip("/")

        for a in (t.get("inputs") or {}).get("artifacts", []):
            if a["name"] in artifacts:
                local(a["path"]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(artifacts[a["name"]], local(a["path"]))
            elif not a.get("optional"):
                raise KeyError(f"{t['name']}: input artifact {a['name']} missing")
        c = t["container"]
        argv = [self.sub(x, scope) for x in c.get("command", []) + c.get("args", [])]
        argv = [str(local(x)) if x.startswith("/tmp/hp") else x for x in argv]  # the pod paths the templates use
        if argv[:2] == ["hp-tune", "step"]:
            argv = self.hp_tune + argv[1:]
        for p in (t.get("outputs") or {}).get("parameters", []) + (t.get("outputs") or {}).get("artifacts", []):
            path = p.get("path") or (p.get("valueFrom") or {}).get("path")
            local(path).parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=self.workdir)
        phase = "Succeeded" if proc.returncode == 0 else "Failed"
        outputs: dict[str, Any] = {"parameters": {}, "artifacts": {}}
        if phase == "Succeeded":
            for p in (t.get("outputs") or {}).get("parameters", []):
                vf = p["valueFrom"]
                f = local(vf["path"])
                if f.exists():
                    value = f.read_text()
                elif "default" in vf:
                    value = vf["default"]
                else:
                    phase = "Failed"
                    break
                outputs["parameters"][p["name"]] = value
                if p.get("globalName"):
                    self.globals[p["globalName"]] = value
            for a in (t.get("outputs") or {}).get("artifacts", []):
                outputs["artifacts"][a["name"]] = local(a["path"])
        self._node(node, t["name"], "Pod", {"parameters": [{"name": k, "value": v} for k, v in params.items()]},
                   {"parameters": [{"name": k, "value": v} for k, v in outputs["parameters"].items()],
                    "artifacts": [{"name": k, "s3": {"key": f"{node}/{k}.tgz"}} for k in outputs["artifacts"]]}, phase)
        outputs["phase"] = phase
        outputs["stderr"] = proc.stderr
        return outputs

    def _steps(self, t: dict[str, Any], params: dict[str, str], artifacts: dict[str, Path], node: str) -> dict[str, Any]:
        scope: dict[str, str] = {f"inputs.parameters.{k}": v for k, v in params.items()}
        art_scope: dict[str, Path] = {f"inputs.artifacts.{k}": v for k, v in artifacts.items()}
        results: dict[str, Any] = {}
        for group in t["steps"]:
            for step in group:
                sname = step["name"]
                when = step.get("when")
                if when is not None:
                    expr = self.sub(when, scope).strip()
                    left, op, right = expr.partition(" == ")
                    assert op, f"unsupported when: {expr}"
                    if left.strip() != right.strip():
                        results[sname] = {"phase": "Skipped"}
                        scope[f"steps.{sname}.status"] = "Skipped"
                        continue
                items = [None]
                if "withParam" in step:
                    items = json.loads(self.sub(step["withParam"], scope))
                children = []
                for i, item in enumerate(items):
                    local_scope = dict(scope)
                    if item is not None:
                        for key, value in _flatten("item", item):
                            local_scope[key] = value
                    args = {p["name"]: self.sub(p["value"], local_scope)
                            for p in (step.get("arguments") or {}).get("parameters", [])}
                    arts = {}
                    for a in (step.get("arguments") or {}).get("artifacts", []):
                        if "raw" in a:  # inline data
                            raw = self.workdir / f"raw-{self.counter}-{a['name']}"
                            raw.write_text(a["raw"]["data"])
                            arts[a["name"]] = raw
                            continue
                        key = a["from"].strip("{} ")
                        if key in art_scope:
                            arts[a["name"]] = art_scope[key]
                        elif not a.get("optional"):
                            raise KeyError(f"{t['name']}.{sname}: unresolved artifact {a['from']}")
                    suffix = f"({i}:{json.dumps(item)[:40]})" if item is not None else ""
                    child = self.execute(step["template"], args, arts, f"{node}.{sname}{suffix}")
                    if child.get("phase") == "Failed" and not step.get("continueOn"):
                        raise RuntimeError(f"step {sname} failed: {child.get('stderr', '')[-2000:]}")
                    children.append(child)
                results[sname] = children
                ok = [c for c in children if c.get("phase") == "Succeeded"]
                if "withParam" in step:
                    names = {n for c in ok for n in c["parameters"]}
                    for n in names:  # Argo: a JSON list of the succeeded children's values, in loop order
                        scope[f"steps.{sname}.outputs.parameters.{n}"] = json.dumps([c["parameters"][n] for c in ok])
                elif ok:
                    for n, v in ok[0]["parameters"].items():
                        scope[f"steps.{sname}.outputs.parameters.{n}"] = v
                    for n, v in ok[0]["artifacts"].items():
                        art_scope[f"steps.{sname}.outputs.artifacts.{n}"] = v
        self._node(node, t["name"], "Steps", {"parameters": [{"name": k, "value": v} for k, v in params.items()]}, {}, "Succeeded")
        outputs = {p["name"]: self.sub(p["valueFrom"]["parameter"], scope)
                   for p in (t.get("outputs") or {}).get("parameters", [])}
        return {"phase": "Succeeded", "parameters": outputs, "artifacts": {}, "results": results}


def selector_matches(selector: str, obj: dict[str, Any]) -> bool:
    """Argo's resource conditions: Kubernetes label-selector requirements whose keys are GJSON paths.

    Supported here: ``key`` (exists), ``!key``, ``key = v`` / ``==`` / ``!=`` and ``key > n`` / ``<``
    (integers), all of them ANDed, as k8s.io/apimachinery/pkg/labels parses them.
    """
    from hp_components.conditions import MISSING, get

    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    for req in (r.strip() for r in selector.split(",") if r.strip()):
        m = re.fullmatch(r"(!?)([\w./-]+)\s*(?:(==|=|!=|>|<)\s*(\S+))?", req)
        assert m, f"unsupported selector requirement {req!r}"
        neg, key, op, want = m.groups()
        value = get(obj, key)
        if not op:
            if (value is MISSING) != bool(neg):
                return False
            continue
        if value is MISSING:
            return False
        if op in ("=", "==") and text(value) != want or op == "!=" and text(value) == want:
            return False
        if op in (">", "<"):
            try:
                number = int(text(value))
            except ValueError:
                return False
            if not (number > int(want) if op == ">" else number < int(want)):
                return False
    return True


def _flatten(prefix: str, value: Any):
    yield prefix, value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(f"{prefix}.{k}", v)
