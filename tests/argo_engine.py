"""Argo's own rules for generated documents: a validator and an interpreter, rebuilt from Argo's source.

Every rule below names the file and function of argoproj/argo-workflows (f016ad89, v4.1 line) it
follows; the error texts are Argo's. Written from reading that source, not copied from it.

``semantic_problems(doc, library)`` runs the checks of workflow/validate/validate.go that apply
to what hp-components generates (plus the Kubernetes pod-creation rule on volume mounts), and
returns every problem in Argo's words. ``Interpreter`` executes a workflow as the controller
(workflow/controller) would: each container runs as a real subprocess with ``{{...}}`` substituted
the way util/template does it, fan-outs expand with processItem's item rules, the trials of a
round run concurrently up to the template's ``parallelism``, failed children drop out of the
aggregated outputs, ``when`` is evaluated with govaluate's rules, retries follow
processNodeRetries, the stack depth stops at 100, and ``templateRef`` resolves from a library of
WorkflowTemplates. ``faults`` injects what a cluster does to a pod (an eviction, a node lost, a pod
stuck Pending) without running it, so the infrastructure paths are exercised too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import yaml

# workflow/validate/validate.go isValidWorkflowFieldName / isValidStepName; isValidParamOrArtifactName
NAME_RE = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
PARAM_RE = re.compile(r"^[-a-zA-Z0-9_]+$")
TAG_RE = re.compile(r"\{\{([^{}]*)\}\}")
# validate.go workflowFieldNameErrMsg, as isValidWorkflowFieldName words it
_FIELD_NAME_ERR = ("name must consist of alpha-numeric characters or '-', and must start with an alpha-numeric "
                   "character (e.g. My-name1-2, 123-NAME)")
# workflow/common GlobalVarValidWorkflowVariablePrefix: only these tags are checked (resolveAllVariables)
CHECKED_PREFIXES = ("item.", "steps.", "tasks.", "inputs.", "outputs.", "pod.", "workflow.")
LEAF_TYPES = ("container", "script", "resource", "data", "http", "plugin", "containerSet", "suspend")
TEMPLATE_TYPES = ("container", "containerSet", "steps", "script", "resource", "dag", "suspend", "data", "http", "plugin")
RETRY_POLICIES = ("Always", "OnError", "OnFailure", "OnTransientError", "")
POD_GC_STRATEGIES = ("", "OnPodCompletion", "OnPodSuccess", "OnWorkflowCompletion", "OnWorkflowSuccess")
MAX_STACK_DEPTH = 100  # workflow/controller/controller.go maxAllowedStackDepth
WORKFLOW_GLOBALS = ("workflow.name", "workflow.namespace", "workflow.uid", "workflow.serviceAccountName",
                    "workflow.mainEntrypoint", "workflow.creationTimestamp", "workflow.duration", "workflow.status")


class ArgoError(RuntimeError):
    """What Argo's controller reports when it stops a node or the workflow (its own text)."""


class TemplateTimeout(ArgoError):
    """operator.go ErrTimeout ("timeout"): returned by executeTemplate for a node Pending past its
    pendingTimeout/timeout; the node is marked Failed and the caller's step group fails with it."""


# ================================================================================================
# Validation: workflow/validate/validate.go
# ================================================================================================

def semantic_problems(doc: dict[str, Any], library: list[dict[str, Any]] | None = None) -> list[str]:
    """Every rule of Argo's validation (and pod creation) the document breaks, in Argo's words."""
    problems: list[str] = []
    meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
    # validate.go ValidateWorkflow: maxCharsInObjectName
    if len(meta.get("name") or "") > 63:
        problems.append(f"workflow name {meta['name']!r} must not be more than 63 characters long (currently {len(meta['name'])})")
    # validate.go ValidateWorkflow: podGC strategy
    strategy = (spec.get("podGC") or {}).get("strategy", "")
    if strategy not in POD_GC_STRATEGIES:
        problems.append(f"podGC.strategy unknown strategy '{strategy}'")
    templates = {t["name"]: t for t in spec.get("templates") or []}
    if len(templates) != len(spec.get("templates") or []):
        problems.append("spec.templates: duplicate template names")  # validate.go validateWorkflowFieldNames
    refs = {(d["metadata"]["name"], t["name"]): t for d in library or [] for t in d["spec"]["templates"]}
    refs |= {(meta.get("name"), n): t for n, t in templates.items()}
    entry = spec.get("entrypoint")
    if entry is None and doc.get("kind") == "Workflow":
        problems.append("spec.entrypoint is required")
    elif entry is not None and entry not in templates:  # validateTemplateHolder
        problems.append(f"spec.entrypoint template name '{entry}' undefined")
    wf_args = {p["name"] for p in (spec.get("arguments") or {}).get("parameters") or []}
    globals_ = set(WORKFLOW_GLOBALS) | {f"workflow.parameters.{n}" for n in wf_args}
    for t in templates.values():  # validate.go: every template is checked, even an unused one
        for o in ((t.get("outputs") or {}).get("parameters") or []):
            if o.get("globalName"):
                globals_.add(f"workflow.outputs.parameters.{o['globalName']}")
    ctx = _Ctx(templates, refs, globals_, doc.get("kind") != "Workflow", problems)
    ctx.volumes = [*(spec.get("volumes") or []), *[{"name": (v.get("metadata") or {}).get("name")} for v in spec.get("volumeClaimTemplates") or []]]
    for t in templates.values():
        ctx.template(t)
    return problems


class _Ctx:
    def __init__(self, templates, refs, globals_, wft: bool, problems: list[str]):
        self.templates, self.refs, self.globals, self.wft, self.problems = templates, refs, globals_, wft, problems

    def add(self, text: str) -> None:
        self.problems.append(text)

    def resolve(self, holder: dict[str, Any]) -> dict[str, Any] | None:
        """validate.go validateTemplateHolder: template xor templateRef, which must resolve."""
        ref, name = holder.get("templateRef"), holder.get("template")
        if ref:
            if name:
                return self.add("template name cannot be specified with templateRef")
            if not ref.get("name"):
                return self.add("resource name is required")
            if not ref.get("template"):
                return self.add("template name is required")
            t = self.refs.get((ref["name"], ref["template"]))
            if t is None:
                return self.add(f"template reference {ref['name']}.{ref['template']} not found")
            return t
        if name not in self.templates:
            return self.add(f"template name '{name}' undefined")
        return self.templates[name]

    def template(self, t: dict[str, Any]) -> None:
        name = t["name"]
        if not NAME_RE.match(name) or len(name) > 128:
            self.add(f"templates.{name}.name: '{name}' is invalid: {_FIELD_NAME_ERR}")
        # validate.go validateTemplateType
        kinds = [k for k in TEMPLATE_TYPES if t.get(k) is not None]
        if not kinds:
            self.add(f"templates.{name} template type unspecified. choose one of: container, containerSet, steps, script, resource, dag, suspend, template, template ref")
        elif len(kinds) > 1:
            self.add(f"templates.{name} multiple template types specified. choose one of: container, containerSet, steps, script, resource, dag, suspend, template, template ref")
        leaf = bool(kinds) and kinds[0] in LEAF_TYPES
        scope = self.inputs_scope(t, leaf)
        # validate.go validateTemplateHolder: retryStrategy.retryPolicy
        policy = (t.get("retryStrategy") or {}).get("retryPolicy", "")
        if t.get("retryStrategy") is not None and policy not in RETRY_POLICIES:
            self.add(f"{policy} is not a valid RetryPolicy")
        if leaf:
            self.leaf(t, scope)
        else:
            # validate.go validateNonLeaf
            if t.get("activeDeadlineSeconds") is not None:
                self.add(f"templates.{name}.activeDeadlineSeconds is only valid for leaf templates")
            for k in ("pendingTimeout", "timeout"):
                if t.get(k):
                    self.add(f"templates.{name}.{k} is only valid for leaf templates")
            if "steps" in t:
                scope = self.steps(t, scope)
        self.outputs(t, kinds[0] if kinds else "")
        # validate.go validateOutputs: the outputs' tags resolve in the scope the template built
        for err in self.variables(json.dumps(t.get("outputs") or {}), scope, False):
            self.add(f"templates.{name}.outputs {err}")

    def inputs_scope(self, t: dict[str, Any], leaf: bool) -> set[str]:
        """validate.go validateTemplate (inputs part): the template's inputs.* scope; artifact paths on leaves only."""
        name, scope = t["name"], set()
        inputs = t.get("inputs") or {}
        for p in inputs.get("parameters") or []:
            if not PARAM_RE.match(p["name"]):
                self.add(f"templates.{name}.inputs.parameters.name: '{p['name']}' is invalid")
            scope.add(f"inputs.parameters.{p['name']}")
        if inputs.get("parameters"):
            scope.add("inputs.parameters")
        for a in inputs.get("artifacts") or []:
            ref = f"inputs.artifacts.{a['name']}"
            scope.add(ref)
            if leaf:
                scope.add(f"{ref}.path")
            elif a.get("path"):
                self.add(f"templates.{name}.{ref}.path only valid in container/script templates")
            if a.get("from"):
                self.add(f"templates.{name}.{ref}.from not valid in inputs")
        return scope

    def variables(self, text: str, scope: set[str], any_item: bool) -> list[str]:
        """validate.go resolveAllVariables: each checked tag must be in scope (bare {{item}} and {{=...}} skipped)."""
        bad = []
        for tag in TAG_RE.findall(text):
            tag = tag.strip()
            if tag.startswith("=") or not tag.startswith(CHECKED_PREFIXES) or tag in scope or tag in self.globals:
                continue
            if (tag == "item" or tag.startswith("item.")) and any_item:
                continue  # withParam: "we are *probably* referencing a undetermined item"
            if tag.startswith("outputs.") or (self.wft and tag.startswith("workflow.parameters.")):
                continue
            bad.append(f"failed to resolve {{{{{tag}}}}}")
        return bad

    def leaf(self, t: dict[str, Any], scope: set[str]) -> None:
        """validate.go validateLeaf (+ Kubernetes pod creation for volume names)."""
        name = t["name"]
        for err in self.variables(json.dumps(t), scope, False):
            self.add(f"templates.{name}: {err}")
        if t.get("parallelism") is not None:
            self.add(f"templates.{name}.parallelism is only valid for steps and dag templates")
        ads = t.get("activeDeadlineSeconds")
        if ads is not None and not (str(ads).isdigit() or TAG_RE.fullmatch(str(ads))):
            self.add(f"templates.{name}.activeDeadlineSeconds must be a positive integer > 0 or an argo variable")
        c = t.get("container")
        if c is not None:
            mounts: dict[str, str] = {}
            for i, vm in enumerate(c.get("volumeMounts") or []):
                if vm["mountPath"] in mounts:
                    self.add(f"templates.{name}.container.volumeMounts[{i}].mountPath '{vm['mountPath']}' already mounted in {mounts[vm['mountPath']]}")
                mounts[vm["mountPath"]] = f"container.volumeMounts.{vm['name']}"
            for i, a in enumerate((t.get("inputs") or {}).get("artifacts") or []):
                if a.get("path") in mounts:
                    self.add(f"templates.{name}.inputs.artifacts[{i}].path '{a['path']}' already mounted in {mounts[a['path']]}")
            if not c.get("image"):
                self.add(f"templates.{name}.container.image may not be empty")
        # Kubernetes (pod creation, not Argo's validation): every volumeMount names a pod volume
        volumes = {v["name"] for v in [*(t.get("volumes") or []), *self.volumes]}
        for kind, conts in (("containers", [c] if c else []), ("sidecars", t.get("sidecars") or []),
                            ("initContainers", t.get("initContainers") or [])):
            for ci, cont in enumerate(conts):
                for vi, vm in enumerate(cont.get("volumeMounts") or []):
                    if vm["name"] not in volumes:
                        self.add(f"templates.{name}: pod spec.{kind}[{ci}].volumeMounts[{vi}].name: Not found: {vm['name']!r}")

    def steps(self, t: dict[str, Any], scope: set[str]) -> set[str]:
        """validate.go validateSteps: names, loops, arguments, the template, scope growing step by step."""
        name, seen = t["name"], set()
        scope = set(scope)
        for i, group in enumerate(t["steps"]):
            for step in group:
                sname = step.get("name", "")
                if not sname:
                    self.add(f"templates.{name}.steps[{i}].name is required")
                    continue
                if sname in seen:
                    self.add(f"templates.{name}.steps[{i}].name '{sname}' is not unique")
                elif not NAME_RE.match(sname) or len(sname) > 128:
                    self.add(f"templates.{name}.steps[{i}].name '{sname}' is invalid: {_FIELD_NAME_ERR}")
                seen.add(sname)
                scope.add(f"steps.{sname}.status")
                # validate.go addItemsToScope
                loops = [k for k in ("withItems", "withParam", "withSequence") if step.get(k)]
                step_scope = set(scope)
                any_item = False
                if len(loops) > 1:
                    self.add(f"templates.{name}.steps[{i}].{sname} only one of withItems, withParam, withSequence can be specified")
                if step.get("withItems"):
                    for item in step["withItems"]:
                        if isinstance(item, dict):
                            step_scope |= {f"item.{k}" for k in item}
                        elif isinstance(item, list):
                            step_scope |= {f"item.[{j}]" for j in range(len(item))}
                        else:
                            step_scope.add("item")
                elif step.get("withParam"):
                    step_scope.add("item")
                    any_item = True
                elif step.get("withSequence"):
                    step_scope.add("item")
                # validate.go validateArgumentsValues
                prefix = f"templates.{name}.steps[{i}].{sname}.arguments."
                for p in (step.get("arguments") or {}).get("parameters") or []:
                    if "value" not in p and "valueFrom" not in p:
                        self.add(f"{prefix}{p['name']}.value or {prefix}{p['name']}.valueFrom is required")
                target = self.resolve(step)
                for err in self.variables(json.dumps({k: v for k, v in step.items() if k != "hooks"}), step_scope, any_item):
                    self.add(f"templates.{name}.steps {err}")
                if target is None:
                    if self.problems and not self.problems[-1].startswith("templates."):
                        self.problems[-1] = f"templates.{name}.steps[{i}].{sname} {self.problems[-1]}"
                    continue
                # workflow/common/util.go ProcessArgs (with the step's real arguments)
                args = {p["name"] for p in (step.get("arguments") or {}).get("parameters") or []}
                for p in (target.get("inputs") or {}).get("parameters") or []:
                    if p["name"] not in args and "value" not in p and "default" not in p:
                        self.add(f"templates.{name}.steps[{i}].{sname} inputs.parameters.{p['name']} was not supplied")
                arts = {a["name"] for a in (step.get("arguments") or {}).get("artifacts") or []}
                for a in (target.get("inputs") or {}).get("artifacts") or []:
                    if a["name"] not in arts and not a.get("optional") and not any(
                            a.get(k) for k in ("raw", "s3", "http", "git", "artifactory", "gcs", "oss", "hdfs", "azure")):
                        self.add(f"templates.{name}.steps[{i}].{sname} inputs.artifacts.{a['name']} was not supplied")
                # validate.go addOutputsToScope: after the step; aggregate only for withItems/withParam
                scope |= _outputs_scope(target, sname, aggregate=bool(step.get("withItems") or step.get("withParam")))
        return scope

    def outputs(self, t: dict[str, Any], kind: str) -> None:
        """validate.go validateOutputs / validateOutputParameter."""
        name = t["name"]
        for a in (t.get("outputs") or {}).get("artifacts") or []:
            if kind in ("steps", "dag") and a.get("path"):
                self.add(f"templates.{name}.outputs.artifacts.{a['name']}.path only valid in container/script templates")
        for p in (t.get("outputs") or {}).get("parameters") or []:
            ref = f"templates.{name}.outputs.parameters.{p['name']}"
            if not PARAM_RE.match(p["name"]):
                self.add(f"templates.{name}.outputs.parameters.name: '{p['name']}' is invalid")
            vf = p.get("valueFrom")
            if vf is not None and "value" in p:
                self.add(f"{ref} has both valueFrom and value specified, choose one")
                continue
            if vf is None and "value" not in p:
                self.add(f"{ref} does not have valueFrom or value specified")
                continue
            if vf is None:
                continue
            sources = [k for k in ("path", "jqFilter", "jsonPath", "parameter", "raw", "expression", "supplied") if vf.get(k) is not None]
            if not sources:
                self.add("valueFrom type unspecified. choose one of: path, jqFilter, jsonPath, parameter, raw, expression")
            elif len(sources) > 1:
                self.add("multiple valueFrom types specified. choose one of: path, jqFilter, jsonPath, parameter, raw")
            if kind in ("container", "containerSet", "script") and not vf.get("path"):
                self.add(f"{ref}.path must be specified for {kind.capitalize() if kind != 'containerSet' else 'ContainerSet'} templates")
            if kind in ("steps", "dag") and not (vf.get("parameter") or vf.get("expression")):
                self.add(f"{ref}.parameter or expression must be specified for {'DAG' if kind == 'dag' else 'Steps'} templates")


def _outputs_scope(t: dict[str, Any], step: str, aggregate: bool) -> set[str]:
    """validate.go addOutputsToScope: what later steps may reference of step ``step``."""
    out = {f"steps.{step}.{k}" for k in ("id", "startedAt", "finishedAt", "hostNodeName")}
    if any(k in t for k in ("container", "script", "data", "http", "plugin")):
        out |= {f"steps.{step}.outputs.result", f"steps.{step}.exitCode"}
    out |= {f"steps.{step}.outputs.parameters.{p['name']}" for p in (t.get("outputs") or {}).get("parameters") or []}
    out |= {f"steps.{step}.outputs.artifacts.{a['name']}" for a in (t.get("outputs") or {}).get("artifacts") or []}
    if aggregate:
        out.add(f"steps.{step}.outputs.parameters")
        if "script" in t or "containerSet" in t:
            out |= {f"steps.{step}.outputs.result", f"steps.{step}.exitCode"}
    return out


# ================================================================================================
# Values as Go writes them
# ================================================================================================

class _Num(str):
    """A JSON number kept as its source text (Argo holds items as json.RawMessage)."""


def parse_json_raw(text: str) -> Any:
    """JSON with numbers kept as written: Item.String prints the raw text (``1e-05`` stays ``1e-05``)."""
    return json.loads(text, parse_int=_Num, parse_float=_Num, parse_constant=_Num)


def go_json(value: Any, sort_keys: bool = True) -> str:
    """Go's json.Marshal: compact, HTML-escaped (<, >, & as \\u003c...), U+2028/2029 escaped."""
    def enc(v: Any) -> str:
        if isinstance(v, _Num):
            return str(v)
        if isinstance(v, dict):
            items = sorted(v.items()) if sort_keys else v.items()
            return "{" + ",".join(f"{enc(str(k))}:{enc(x)}" for k, x in items) + "}"
        if isinstance(v, list):
            return "[" + ",".join(enc(x) for x in v) + "]"
        if isinstance(v, str):
            s = json.dumps(v, ensure_ascii=False)
            return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                    .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
        return json.dumps(v)
    return enc(value)


def item_string(value: Any) -> str:
    """pkg/apis/workflow/v1alpha1/item.go Item.String (what %v prints for an item value): its JSON
    text (a raw message keeps its key order), the outer quotes of a string cut off, then
    util/json Fix turns \\u003c, \\u003e, \\u0026 back into <, >, &."""
    x = go_json(value, sort_keys=False)
    if x.startswith('"'):
        x = x[1:-1]
    return x.replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u0026", "&")


def process_item(item: Any, index: int, name: str) -> tuple[dict[str, str], str]:
    """workflow/controller/operator.go processItem: the item's variables and the expanded node's name.

    A number, bool or string defines ``{{item}}``; a map defines ``{{item}}`` (the map as Go JSON,
    keys sorted) and ``{{item.K}}`` for each TOP-LEVEL key only (its value as Item.String); a list
    defines only ``{{item}}``. The name is generateNodeName: ``name(index:desc)`` with ``(``/``)``
    removed from desc; a map's desc is its sorted ``key:value`` pairs joined by ``,``.
    """
    if isinstance(item, dict):
        values = {f"item.{k}": item_string(v) for k, v in item.items()}
        values["item"] = go_json(item)
        desc = ",".join(sorted(f"{k}:{item_string(v)}" for k, v in item.items()))
    elif isinstance(item, list):
        values, desc = {"item": go_json(item)}, "[" + " ".join(item_string(v) for v in item) + "]"
    elif isinstance(item, (bool, _Num, int, float)) or item is None:
        text = item_string(item) if not isinstance(item, bool) else ("true" if item else "false")
        values, desc = {"item": text}, text
    else:
        values, desc = {"item": str(item)}, str(item)
    desc = desc.replace("(", "").replace(")", "")
    return values, f"{name}({index}:{desc})"


def substitute(obj: Any, scope: dict[str, Any], strict: tuple[str, ...] | None = ()) -> Any:
    """util/template simpleReplaceStrict over the object's JSON text, as the controller does it.

    Each value is escaped with strconv.Quote (minus the quotes) before it goes into the JSON, so
    any text survives. A tag missing from the scope: with ``strict=None`` (processItem's Replace
    with allowUnresolved=false) any unresolved tag errors; otherwise tags starting with a strict
    prefix error ("failed to resolve {{tag}}") and the rest are left as they are; artifact references
    are exempt (simple_template.go: allowUnresolvedArtifacts), they resolve as artifacts.
    """
    def repl(m: re.Match[str]) -> str:
        tag = m.group(1)
        key = tag.strip()
        if key in scope:
            value = scope[key]
            if value is None:
                raise ArgoError(f"unable to substitute {{{{{tag}}}}}: output is an absent optional (skipped/omitted node with no default)")
            return json.dumps(str(value), ensure_ascii=False)[1:-1]
        if strict is not None and (".outputs.artifacts." in key or key.startswith("inputs.artifacts.")):
            return m.group(0)  # artifacts resolve separately (steps.go resolveReferences, step 2)
        if strict is None or any(key.startswith(p) for p in strict):
            raise ArgoError(f"failed to resolve {{{{{tag}}}}}")
        return m.group(0)

    return json.loads(TAG_RE.sub(repl, json.dumps(obj, ensure_ascii=False)))


# ================================================================================================
# govaluate (when) and expr-lang (valueFrom.expression), the parts the generated documents use
# ================================================================================================

_GV_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|\"([^\"]*)\"|'([^']*)'|(==|!=|>=|<=|&&|\|\||=~|!~|[<>!()])|([A-Za-z_][A-Za-z0-9_.]*)|(\S))")


def should_execute(when: str) -> bool:
    """workflow/controller/steps.go shouldExecute: govaluate on the substituted text, every
    VARIABLE token turned into a STRING (so ``foo != bar`` needs no quotes); ``true``/``false``
    are booleans, numbers float64; ``==`` compares type and value; a non-boolean result or an
    unparsable text is an error, not false."""
    if when == "":
        return True
    tokens = []
    for m in _GV_TOKEN.finditer(when):
        num, dq, sq, op, word, other = m.groups()
        if other:
            raise ArgoError(f"Invalid 'when' expression '{when}': Invalid token: '{other}' (hint: try wrapping the affected expression in quotes (\"))")
        if num is not None:
            tokens.append(("v", float(num)))
        elif dq is not None or sq is not None:
            tokens.append(("v", dq if dq is not None else sq))
        elif word is not None:
            tokens.append(("v", {"true": True, "false": False}.get(word, word)))
        else:
            tokens.append(("op", op))
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else (None, None)

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def primary():
        kind, v = take() if pos < len(tokens) else (None, None)
        if kind == "v":
            return v
        if (kind, v) == ("op", "("):
            r = disj()
            if take() != ("op", ")"):
                raise ArgoError(f"Invalid 'when' expression '{when}': Unbalanced parenthesis")
            return r
        if (kind, v) == ("op", "!"):
            r = primary()
            if not isinstance(r, bool):
                raise ArgoError(f"Failed to evaluate 'when' expresion '{when}': Value '{r}' cannot be used with the modifier '!', it is not a bool")
            return not r
        raise ArgoError(f"Invalid 'when' expression '{when}': Unexpected end of expression")

    def comparison():
        left = primary()
        while peek()[0] == "op" and peek()[1] in ("==", "!=", ">", "<", ">=", "<="):
            op = take()[1]
            right = primary()
            if op in ("==", "!="):
                same = type(left) is type(right) and left == right
                left = same if op == "==" else not same
            else:
                if not (isinstance(left, float) and isinstance(right, float) or isinstance(left, str) and isinstance(right, str)):
                    raise ArgoError(f"Failed to evaluate 'when' expresion '{when}': Value '{left}' cannot be used with the comparator '{op}', it is not a number")
                left = {">": left > right, "<": left < right, ">=": left >= right, "<=": left <= right}[op]
        return left

    def conj():
        left = comparison()
        while peek() == ("op", "&&"):
            take()
            right = comparison()
            left = bool(left) and bool(right)
        return left

    def disj():
        left = conj()
        while peek() == ("op", "||"):
            take()
            right = conj()
            left = bool(left) or bool(right)
        return left

    result = disj()
    if pos != len(tokens):
        raise ArgoError(f"Invalid 'when' expression '{when}': Unexpected token after the expression")
    if not isinstance(result, bool):
        raise ArgoError(f"Expected boolean evaluation for '{when}'. Got {result}")
    return result


def expand(scope: dict[str, Any]) -> dict[str, Any]:
    """util/expand Expand: dotted keys as nested maps (the expression environment)."""
    out: dict[str, Any] = {}
    for key in sorted(scope, key=lambda k: k.count(".")):
        node = out
        *parents, last = key.split(".")
        for p in parents:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = node[p] = {} if nxt is None else {"": nxt}
            node = nxt
        if isinstance(node.get(last), dict):
            continue
        node[last] = scope[key]
    return out


_EX_TOKEN = re.compile(r"\s*(?:'([^']*)'|\"([^\"]*)\"|(==|!=|\?\?|&&|\|\||[?:.\[\]()])|([A-Za-z_][A-Za-z0-9_]*)|(\S))")


def eval_expr(text: str, env: dict[str, Any]) -> Any:
    """expr-lang, the subset the generated outputs use: ``c ? a : b`` (only the chosen branch is
    evaluated), ``==``, ``!=``, ``&&``, ``||``, ``??``, string literals, names, ``.x`` and ``['x']``
    (a missing map key is nil). Anything else is refused, so a test cannot pass on an unmodelled form."""
    tokens = []
    for m in _EX_TOKEN.finditer(text):
        sq, dq, op, name, other = m.groups()
        if other:
            raise ArgoError(f"unsupported expression {text!r} (the test engine models only a subset of expr)")
        tokens.append(("s", sq if sq is not None else dq) if (sq is not None or dq is not None) else
                      ("op", op) if op else ("n", name))
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else (None, None)

    def take(expected=None):
        nonlocal pos
        tok = tokens[pos] if pos < len(tokens) else (None, None)
        if expected and tok != expected:
            raise ArgoError(f"unexpected token {tok} in {text!r}")
        pos += 1
        return tok

    def postfix(skip):
        kind, v = take()
        if kind == "s":
            val = v
        elif kind == "n":
            val = {"nil": None, "true": True, "false": False}.get(v, env.get(v) if v not in ("nil", "true", "false") else None)
        elif (kind, v) == ("op", "("):
            val = ternary(skip)
            take(("op", ")"))
        else:
            raise ArgoError(f"unexpected token {(kind, v)} in {text!r}")
        while peek() in (("op", "."), ("op", "[")):
            if take()[1] == ".":
                key = take()[1]
            else:
                key = take()[1]
                take(("op", "]"))
            val = val.get(key) if isinstance(val, dict) else (None if skip or val is None else _fail(text, key))
        if peek() == ("op", "("):
            raise ArgoError(f"unsupported expression {text!r} (the test engine models no function calls)")
        return val

    def comparison(skip):
        left = postfix(skip)
        while peek() in (("op", "=="), ("op", "!=")):
            op = take()[1]
            right = postfix(skip)
            left = (left == right) if op == "==" else (left != right)
        return left

    def logic(skip):
        left = comparison(skip)
        while peek() in (("op", "&&"), ("op", "||"), ("op", "??")):
            op = take()[1]
            right = comparison(skip)
            left = (left and right) if op == "&&" else (left or right) if op == "||" else (right if left is None else left)
        return left

    def ternary(skip=False):
        cond = logic(skip)
        if peek() != ("op", "?"):
            return cond
        take()
        if not skip and not isinstance(cond, bool):
            raise ArgoError(f"non-bool expression (type {type(cond).__name__}) used as condition in {text!r}")
        a = ternary(skip or not cond)
        take(("op", ":"))
        b = ternary(skip or bool(cond))
        return a if cond else b

    result = ternary()
    if pos != len(tokens):
        raise ArgoError(f"unexpected token after the expression in {text!r}")
    return result


def _fail(text: str, key: str):
    raise ArgoError(f"cannot fetch {key} from a non-map value in {text!r}")


def aggregated_json_value_list(values: list[str]) -> str:
    """operator.go aggregatedJSONValueList / tryJSONUnmarshal: a JSON list of decoded values only when
    every value decodes to a JSON object or list; otherwise a JSON list of the strings."""
    decoded = []
    for v in values:
        try:
            d = parse_json_raw(v)
        except ValueError:
            break
        if not isinstance(d, (dict, list)):
            break
        decoded.append(d)
    else:
        return go_json(decoded)
    return go_json(values)


# ================================================================================================
# The interpreter: workflow/controller
# ================================================================================================

Fault = Callable[[str, dict[str, str], int], "str | None"]


class Interpreter:
    """Runs a workflow's containers for real, wired as Argo's controller wires them.

    ``faults(template, params, attempt)`` (``attempt``: the number of the nearest retry) may return ``"Error: <message>"`` or ``"Failed: <message>"``
    (the pod is not run: it was evicted, its node was lost, ...) or ``"Pending"`` (the pod is never
    scheduled: its template's ``pendingTimeout`` fails it, else the workflow would wait for ever).
    """

    def __init__(self, doc: dict[str, Any], workdir: Path, hp_tune: list[str] | None = None,
                 max_depth: int = MAX_STACK_DEPTH, namespace: str = "default",
                 library: list[dict[str, Any]] | None = None, faults: Fault | None = None,
                 name: str = "wf", rewrite: Callable[[list[str]], list[str]] | None = None):
        self.doc = doc
        self.templates = {t["name"]: t for t in doc["spec"]["templates"]}
        self.library = {d["metadata"]["name"]: {t["name"]: t for t in d["spec"]["templates"]} for d in library or []}
        self.entry = doc["spec"]["entrypoint"]
        self.workdir = workdir
        self.hp_tune = hp_tune or [sys.executable, "-m", "hp_components.cli"]
        self.rewrite = rewrite
        self.max_depth = max_depth
        self.faults = faults
        self.name = name
        self.nodes: list[dict[str, Any]] = []  # Argo-like node statuses, in creation order
        self.globals: dict[str, str] = {}      # status.outputs.parameters (globalName)
        self.max_seen_depth = 0
        self.counter = 0
        self.namespace = namespace
        self.resources: list[dict[str, Any]] = []
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self.outputs: dict[str, Any] = {}

    # -- bookkeeping ----------------------------------------------------------------------------
    def _node(self, name: str, template: str, kind: str, phase: str, inputs: dict | None = None,
              outputs: dict | None = None, message: str = "", flag: dict | None = None) -> None:
        with self._lock:
            self.nodes.append({"id": f"{self.name}-{len(self.nodes):010d}", "name": name,
                               "displayName": name.rsplit(".", 1)[-1], "type": kind, "templateName": template,
                               "phase": phase, "message": message, "boundaryID": f"{self.name}-0000000000",
                               "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:00Z",
                               "inputs": inputs or {}, "outputs": outputs or {}, "children": [], "progress": "1/1",
                               **({"nodeFlag": flag} if flag else {})})

    @property
    def depth(self) -> int:
        return getattr(self._local, "depth", 0)

    @depth.setter
    def depth(self, value: int) -> None:
        self._local.depth = value

    # -- execution ------------------------------------------------------------------------------
    def run(self, arguments: dict[str, str] | None = None) -> dict[str, Any]:
        """The entrypoint with ``spec.arguments`` (or ``arguments``); raises ArgoError when the workflow errors."""
        params = {p["name"]: p.get("value") for p in (self.doc["spec"].get("arguments") or {}).get("parameters") or []}
        params |= arguments or {}
        self.wf_params = {f"workflow.parameters.{k}": v for k, v in params.items()}
        holder = {"template": self.entry}
        result = self.execute(holder, {}, {}, self.name, None)
        self.outputs = result
        if result["phase"] != "Succeeded":
            raise ArgoError(f"workflow {result['phase']}: {result.get('message', '')}\n{result.get('stderr', '')[-2000:]}")
        return result

    def resolve(self, holder: dict[str, Any], base: str | None) -> tuple[dict[str, Any], str | None]:
        """templateresolution: a template by name in the current document (or WorkflowTemplate), or a templateRef."""
        ref = holder.get("templateRef")
        if ref:
            try:
                return self.library[ref["name"]][ref["template"]], ref["name"]
            except KeyError:
                raise ArgoError(f"template reference {ref['name']}.{ref['template']} not found") from None
        table = self.library[base] if base else self.templates
        if holder["template"] not in table:
            raise ArgoError(f"template name '{holder['template']}' undefined")
        return table[holder["template"]], base

    def execute(self, holder: dict[str, Any], params: dict[str, str], artifacts: dict[str, Path], node: str,
                base: str | None) -> dict[str, Any]:
        """operator.go executeTemplate: stack depth, common.ProcessArgs, retries, then the template type."""
        self.depth += 1
        with self._lock:
            self.max_seen_depth = max(self.max_seen_depth, self.depth)
        try:
            # operator.go executeTemplate: currentStackDepth >= maxStackDepth -> ErrMaxDepthExceeded
            if self.depth >= self.max_depth:
                raise ArgoError("Maximum recursion depth exceeded. See https://argo-workflows.readthedocs.io/en/latest/scaling/#maximum-recursion-depth")
            t, base = self.resolve(holder, base)
            params = dict(params)
            for p in (t.get("inputs") or {}).get("parameters", []):  # workflow/common/util.go ProcessArgs
                if p["name"] not in params:
                    if "value" in p or "default" in p:
                        params[p["name"]] = p.get("value", p.get("default"))
                    else:
                        raise ArgoError(f"inputs.parameters.{p['name']} was not supplied")
            if t.get("retryStrategy"):
                return self._retry(t, params, artifacts, node, base)
            return self._once(t, params, artifacts, node, base, 0, False)
        finally:
            self.depth -= 1

    def _once(self, t, params, artifacts, node, base, attempt, retried):
        if "steps" in t:
            return self._steps(t, params, artifacts, node, base)
        if "resource" in t:
            return self._resource(t, params, node)
        return self._container(t, params, artifacts, node, attempt, retried)

    def _retry(self, t, params, artifacts, node, base) -> dict[str, Any]:
        """operator.go processNodeRetries: a Retry node whose children ``node(0)``, ``node(1)``... are the
        attempts; Always retries Failed and Error, OnError only Error, OnFailure only Failed; at most
        ``limit`` retries; the Retry node takes the last attempt's phase and outputs."""
        rs = t["retryStrategy"]
        policy = rs.get("retryPolicy") or "Always"
        if policy not in RETRY_POLICIES:
            raise ArgoError(f"{policy} is not a valid RetryPolicy")
        limit = int(rs["limit"]) if rs.get("limit") is not None else None
        attempt = 0
        while True:
            self._local.attempt = attempt  # what the faults see for the pods under this attempt
            result = self._once(t, params, artifacts, f"{node}({attempt})", base, attempt, True)
            phase = result["phase"]
            if phase == "Succeeded":
                break
            if (phase == "Failed" and policy not in ("Always", "OnFailure")) or (
                    phase == "Error" and policy not in ("Always", "OnError")):
                break
            if limit is not None and attempt + 1 > limit:
                result = {**result, "message": "No more retries left"}
                break
            attempt += 1
        self._node(node, t["name"], "Retry", result["phase"], {"parameters": [{"name": k, "value": v} for k, v in params.items()]},
                   outputs=result.get("node_outputs") or {"parameters": [{"name": k, "value": v} for k, v in result.get("parameters", {}).items()]},
                   message=result.get("message", ""))
        return {**result, "attempts": attempt + 1}

    def _resource(self, t: dict[str, Any], params: dict[str, str], node: str) -> dict[str, Any]:
        """A resource template: create the manifest through the Kubernetes API (KUBECONFIG), wait like Argo's executor."""
        from hp_components.jobs import KubeJobs

        scope = {f"inputs.parameters.{k}": v for k, v in params.items()} | {"workflow.namespace": self.namespace}
        res = t["resource"]
        assert res["action"] == "create", res["action"]
        manifest = yaml.safe_load(substitute(res["manifest"], scope, None))
        if res.get("setOwnerReference"):
            manifest["metadata"]["ownerReferences"] = [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                                                        "name": self.name, "uid": "wf-uid", "blockOwnerDeletion": True}]
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
        with self._lock:
            self.resources.append(manifest)
        self._node(node, t["name"], "Pod", phase, {"parameters": [{"name": k, "value": v} for k, v in params.items()]})
        return {"phase": phase, "parameters": {}, "artifacts": {}, "message": f"resource step {phase}", "stderr": ""}

    def _container(self, t: dict[str, Any], params: dict[str, str], artifacts: dict[str, Path], node: str,
                   attempt: int, retried: bool = False) -> dict[str, Any]:
        with self._lock:
            self.counter += 1
            root = self.workdir / f"pod-{self.counter:05d}"
        root.mkdir(parents=True)
        inputs = {"parameters": [{"name": k, "value": v} for k, v in params.items()]}
        attempt = attempt if retried else getattr(self._local, "attempt", attempt)
        fault = self.faults(t["name"], params, attempt) if self.faults else None
        if fault == "Pending":
            # operator.go executeTemplate -> checkTemplateTimeouts: checked on the node the template
            # runs as, while it is Pending; a retried leaf runs as a Retry node (Running, never Pending)
            if not (t.get("pendingTimeout") or t.get("timeout")) or retried:
                why = ("its pendingTimeout is checked on the Retry node, which stays Running" if retried
                       else "its template has no pendingTimeout")
                raise ArgoError(f"{node}: the pod stays Pending and {why}: the workflow waits for ever")
            self._node(node, t["name"], "Pod", "Failed", inputs, message="timeout")
            raise TemplateTimeout("timeout")
        if fault:
            phase, _, message = fault.partition(":")
            self._node(node, t["name"], "Pod", phase.strip(), inputs, message=message.strip())
            return {"phase": phase.strip(), "parameters": {}, "artifacts": {}, "message": message.strip(), "stderr": ""}
        # the pod: inputs substituted into the template (operator.go executeContainer -> substituteParams)
        scope = {f"inputs.parameters.{k}": v for k, v in params.items()} | {
            "workflow.namespace": self.namespace, "workflow.name": self.name, "pod.name": node, **getattr(self, "wf_params", {})}
        for a in (t.get("inputs") or {}).get("artifacts", []):
            scope[f"inputs.artifacts.{a['name']}.path"] = a.get("path", "")
        body = substitute({k: v for k, v in t.items() if k not in ("outputs",)}, scope, CHECKED_PREFIXES)

        def local(path: str) -> Path:  # an absolute path in the pod -> inside this pod's folder
            return root / path.lstrip("/")

        for a in (t.get("inputs") or {}).get("artifacts", []):
            if a["name"] in artifacts:
                local(a["path"]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(artifacts[a["name"]], local(a["path"]))
            elif "raw" in a:
                local(a["path"]).parent.mkdir(parents=True, exist_ok=True)
                local(a["path"]).write_text(a["raw"]["data"])
            elif not a.get("optional"):
                raise ArgoError(f"inputs.artifacts.{a['name']} was not supplied")
        # Kubernetes: the pod is created only when every volumeMount names a volume of the pod
        volumes = {v["name"] for v in [*(body.get("volumes") or []), *(self.doc["spec"].get("volumes") or [])]}
        for c in [body["container"], *(body.get("sidecars") or []), *(body.get("initContainers") or [])]:
            for vm in c.get("volumeMounts") or []:
                if vm["name"] not in volumes:
                    self._node(node, t["name"], "Pod", "Error", inputs, message=f"volumeMounts name {vm['name']!r} not found")
                    return {"phase": "Error", "parameters": {}, "artifacts": {}, "message": "pod not created", "stderr": ""}
        c = body["container"]
        argv = [str(x) for x in c.get("command", []) + c.get("args", [])]
        pod_paths = {a.get("path") for a in (t.get("inputs") or {}).get("artifacts", [])} | {
            p.get("path") or (p.get("valueFrom") or {}).get("path")
            for p in (t.get("outputs") or {}).get("parameters", []) + (t.get("outputs") or {}).get("artifacts", [])}
        # the pod's own paths (its artifacts and outputs, /tmp/hp/...) -> inside this pod's folder
        argv = [str(local(x)) if x.startswith("/tmp/hp") or x in pod_paths else x for x in argv]
        if argv[:2] == ["hp-tune", "step"]:
            argv = self.hp_tune + argv[1:]
        if self.rewrite:
            argv = self.rewrite(argv)
        env = None
        if c.get("env"):
            import os
            env = dict(os.environ) | {e["name"]: str(e.get("value", "")) for e in c["env"] if "value" in e}
        for p in (t.get("outputs") or {}).get("parameters", []) + (t.get("outputs") or {}).get("artifacts", []):
            path = p.get("path") or (p.get("valueFrom") or {}).get("path")
            local(path).parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=self.workdir, env=env)
        finally:
            with self._lock:
                self.running -= 1
        phase = "Succeeded" if proc.returncode == 0 else "Failed"
        message = "" if phase == "Succeeded" else f"Error (exit code {proc.returncode})"
        outputs: dict[str, Any] = {"parameters": {}, "artifacts": {}}
        if phase == "Succeeded":
            for p in (t.get("outputs") or {}).get("parameters", []):
                vf = p["valueFrom"]
                f = local(vf["path"])
                if f.exists():
                    value = f.read_text()
                elif "default" in vf:
                    value = vf["default"]
                else:  # the executor cannot save the output
                    phase, message = "Error", f"open {vf['path']}: no such file or directory"
                    break
                outputs["parameters"][p["name"]] = value
            for a in (t.get("outputs") or {}).get("artifacts", []):
                outputs["artifacts"][a["name"]] = local(a["path"])
        if phase == "Succeeded":
            for p in (t.get("outputs") or {}).get("parameters", []):  # operator.go addParamToGlobalScope
                if p.get("globalName"):
                    with self._lock:
                        self.globals[p["globalName"]] = outputs["parameters"][p["name"]]
        node_outputs = {"parameters": [{"name": k, "value": v} for k, v in outputs["parameters"].items()],
                        "artifacts": [{"name": k, "s3": {"key": f"{node}/{k}.tgz"}} for k in outputs["artifacts"]]}
        self._node(node, t["name"], "Pod", phase, inputs, node_outputs, message,
                   {"retried": True} if t.get("retryStrategy") else None)
        return {**outputs, "phase": phase, "message": message, "stderr": proc.stderr, "node_outputs": node_outputs}

    def _steps(self, t: dict[str, Any], params: dict[str, str], artifacts: dict[str, Path], node: str,
               base: str | None) -> dict[str, Any]:
        """workflow/controller/steps.go executeSteps / executeStepGroup / resolveReferences / expandStep."""
        scope: dict[str, Any] = {f"inputs.parameters.{k}": v for k, v in params.items()}
        if params:
            scope["inputs.parameters"] = go_json([{"name": k, "value": v} for k, v in params.items()])
        scope |= {"workflow.namespace": self.namespace, "workflow.name": self.name, **getattr(self, "wf_params", {})}
        scope |= {f"workflow.outputs.parameters.{k}": v for k, v in self.globals.items()}
        arts: dict[str, Path] = {f"inputs.artifacts.{k}": v for k, v in artifacts.items()}
        parallelism = t.get("parallelism")
        for gi, group in enumerate(t["steps"]):
            group_node = f"{node}[{gi}]"
            failed = None
            for step in group:
                sname = step["name"]
                child = f"{group_node}.{sname}"
                # steps.go resolveReferences: `when` first (strict on steps./tasks.), then the whole step
                step_ = {k: v for k, v in step.items() if k not in ("withParam",)}
                when = substitute(step["when"], scope, ("steps.", "tasks.")) if step.get("when") else ""
                if when and "{{item" not in when and not should_execute(when):
                    self._node(child, step.get("template", ""), "Skipped", "Skipped", message=f"when '{when}' evaluated false")
                    scope[f"steps.{sname}.status"] = "Skipped"
                    self._skipped_outputs(step, sname, scope, arts, base)
                    continue
                step_ = substitute(step_, scope, ("steps.", "tasks."))
                step_args = step_.get("arguments") or {}
                art_args = {}
                for a in step_args.get("artifacts") or []:
                    if "raw" in a:
                        with self._lock:
                            self.counter += 1
                            raw = self.workdir / f"raw-{self.counter:05d}-{a['name']}"
                        raw.write_text(a["raw"]["data"])
                        art_args[a["name"]] = raw
                    elif a.get("from"):
                        key = a["from"].strip()[2:-2].strip()
                        if key in arts:
                            art_args[a["name"]] = arts[key]
                        elif not a.get("optional"):
                            raise ArgoError(f"failed to resolve references: unable to resolve references: Unable to resolve: {a['from']}")
                if "withParam" in step or "withItems" in step:
                    results = self._fan_out(step, step_, scope, art_args, child, parallelism, base)
                    self._aggregate(sname, results, scope)
                    children = results
                else:
                    args = {p["name"]: str(p["value"]) for p in step_args.get("parameters") or []}
                    try:
                        res = self.execute(step_, args, art_args, child, base)
                    except TemplateTimeout as e:
                        res = {"phase": "Failed", "parameters": {}, "artifacts": {}, "message": str(e), "timeout": True}
                    children = [res]
                    scope[f"steps.{sname}.status"] = res["phase"]
                    for n, v in res.get("parameters", {}).items():
                        scope[f"steps.{sname}.outputs.parameters.{n}"] = v
                    for n, v in res.get("artifacts", {}).items():
                        arts[f"steps.{sname}.outputs.artifacts.{n}"] = v
                # steps.go executeStepGroup: a failed child fails the group unless continueOn covers its phase
                cont = step.get("continueOn") or {}
                for c in children:
                    if c.get("timeout"):  # steps.go executeStepGroup: ErrTimeout fails the group, continueOn or not
                        failed = failed or c
                    if c["phase"] in ("Failed", "Error") and not cont.get({"Failed": "failed", "Error": "error"}[c["phase"]]):
                        failed = failed or c
            if failed is not None:
                message = f"child '{node}' failed"
                self._node(node, t["name"], "Steps", "Failed", message=message)
                return {"phase": "Failed", "parameters": {}, "artifacts": {}, "message": failed.get("message", message),
                        "stderr": failed.get("stderr", "")}
        outputs = self._template_outputs(t, scope)  # operator.go getTemplateOutputsFromScope
        for p in (t.get("outputs") or {}).get("parameters", []):
            if p.get("globalName"):
                with self._lock:
                    self.globals[p["globalName"]] = outputs[p["name"]]
        self._node(node, t["name"], "Steps", "Succeeded", {"parameters": [{"name": k, "value": v} for k, v in params.items()]},
                   {"parameters": [{"name": k, "value": v} for k, v in outputs.items()]})
        return {"phase": "Succeeded", "parameters": outputs, "artifacts": {}, "message": ""}

    def _skipped_outputs(self, step, sname, scope, arts, base) -> None:
        """workflow/controller/scope.go addSkippedNodeOutputsToScope: a skipped step's declared outputs
        take the producer's valueFrom.default, else they are absent optionals (nil)."""
        try:
            t, _ = self.resolve(step, base)
        except ArgoError:
            return
        for p in (t.get("outputs") or {}).get("parameters") or []:
            default = (p.get("valueFrom") or {}).get("default")
            scope[f"steps.{sname}.outputs.parameters.{p['name']}"] = default

    def _fan_out(self, step, step_, scope, art_args, child, parallelism, base) -> list[dict[str, Any]]:
        """steps.go expandStep + operator.go processItem; children run concurrently, at most
        ``parallelism`` at a time (the template's parallelism, operator.go checkParallelism), in loop order."""
        if "withParam" in step:
            text = substitute(step["withParam"], scope, ("steps.", "tasks."))
            try:
                items = parse_json_raw(text)
                if not isinstance(items, list):
                    raise ValueError("not a list")
            except ValueError as e:
                raise ArgoError(f"withParam value could not be parsed as a JSON list: {text.strip()}: {e}") from None
        else:
            items = parse_json_raw(json.dumps(step["withItems"]))
        if not items:
            self._node(child, step.get("template", ""), "Skipped", "Skipped", message="Skipped, empty params")
            return []
        jobs = []
        for i, item in enumerate(items):
            values, name = process_item(item, i, child)
            expanded = substitute(step_, values, None)  # every tag must resolve now
            if expanded.get("when") and not should_execute(expanded["when"]):
                self._node(name, step.get("template", ""), "Skipped", "Skipped")
                continue
            args = {p["name"]: str(p["value"]) for p in (expanded.get("arguments") or {}).get("parameters") or []}
            jobs.append((i, expanded, args, name))
        depth = self.depth

        def run(job):
            i, expanded, args, name = job
            self.depth = depth
            try:
                return i, self.execute(expanded, args, art_args, name, base)
            except TemplateTimeout as e:
                return i, {"phase": "Failed", "parameters": {}, "artifacts": {}, "message": str(e), "timeout": True}

        with ThreadPoolExecutor(max_workers=max(1, int(parallelism or len(jobs)))) as pool:
            done = list(pool.map(run, jobs))
        return [r for _, r in sorted(done, key=lambda x: x[0])]

    def _aggregate(self, sname: str, children: list[dict[str, Any]], scope: dict[str, Any]) -> None:
        """operator.go processAggregateNodeOutputs: only Succeeded children with outputs, in loop order.

        ``steps.X.outputs.parameters`` (a JSON list of {name: value} maps) is set whenever there were
        children, even if none succeeded (``[]``); ``steps.X.outputs.parameters.Y`` only for names some
        succeeded child produced (aggregatedJSONValueList). No children: nothing is set."""
        if not children:
            return
        params_list, by_name = [], {}
        for c in children:
            if c["phase"] != "Succeeded" or not c.get("parameters"):
                continue
            params_list.append(dict(c["parameters"]))
            for n, v in c["parameters"].items():
                by_name.setdefault(n, []).append(v)
        scope[f"steps.{sname}.outputs.parameters"] = go_json(params_list)
        scope[f"steps.{sname}.outputs.result"] = "[]"
        for n, values in by_name.items():
            scope[f"steps.{sname}.outputs.parameters.{n}"] = aggregated_json_value_list(values)

    def _template_outputs(self, t: dict[str, Any], scope: dict[str, Any]) -> dict[str, str]:
        """operator.go getTemplateOutputsFromScope / scope.go resolveParameter: ``parameter`` (a tag) or
        ``expression`` (expr over the expanded scope); on an error, ``default`` if declared."""
        out = {}
        for p in (t.get("outputs") or {}).get("parameters", []):
            vf = p["valueFrom"]
            try:
                if vf.get("expression"):
                    value = eval_expr(vf["expression"], expand(scope))
                    if value is None:
                        raise ArgoError(f"failed to evaluate expression {vf['expression']!r}")
                else:
                    tag = vf["parameter"].strip()
                    key = tag[2:-2].strip() if tag.startswith("{{") else tag
                    if key not in scope:
                        raise ArgoError(f"Unable to resolve: {{{{{key}}}}}")
                    value = scope[key]
                    if value is None:
                        raise ArgoError(f"output parameter {p['name']!r}: {vf['parameter']!r} is an absent optional (skipped/omitted node output with no default)")
            except ArgoError:
                if "default" not in vf:
                    raise
                value = vf["default"]
            out[p["name"]] = str(value)
        return out


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
