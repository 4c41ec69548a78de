"""Reading compiled KFP IR in tests, and running its executors for real as subprocesses.

``run_executor`` does what a KFP launcher does for one task: it substitutes the executor's
placeholders (``{{$}}`` = the executor input JSON for Python components,
``{{$.inputs.parameters['x']}}`` / ``{{$.outputs.parameters['y'].output_file}}`` for container
components), runs the command with ``subprocess`` and reads the outputs back.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

PY_DIR = str(Path(sys.executable).parent)
_PLACEHOLDER = re.compile(r"\{\{\$\.(inputs\.parameters\['([^']+)'\]|outputs\.parameters\['([^']+)'\]\.output_file)\}\}")


def load_ir(path: Path | str) -> dict[str, Any]:
    """The pipeline spec, with the platform spec (the second YAML document, if any) merged in."""
    docs = list(yaml.safe_load_all(Path(path).read_text()))
    ir = docs[0]
    for extra in docs[1:]:
        ir.update(extra or {})
    return ir


def component_executor(ir: dict[str, Any], component: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(component spec, its executor's container spec)."""
    comp = ir["components"][component]
    return comp, ir["deploymentSpec"]["executors"][comp["executorLabel"]]["container"]


def leaf_components(ir: dict[str, Any], prefix: str) -> list[str]:
    return sorted(k for k, v in ir["components"].items() if "executorLabel" in v and re.fullmatch(rf"comp-{prefix}(-\d+)*", k))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = PY_DIR + os.pathsep + env.get("PATH", "")  # `python3` is this interpreter (has kfp + hp_components)
    return env


def run_executor(ir: dict[str, Any], component: str, inputs: dict[str, Any], workdir: Path, *,
                 cwd: Path | None = None, timeout: float = 120) -> dict[str, Any]:
    """Run one component's executor as a subprocess with ``inputs``; returns its outputs."""
    comp, container = component_executor(ir, component)
    workdir.mkdir(parents=True, exist_ok=True)
    params_out = (comp.get("outputDefinitions") or {}).get("parameters") or {}
    artifacts_out = (comp.get("outputDefinitions") or {}).get("artifacts") or {}
    out_files = {name: workdir / f"out-{name}" for name in params_out}
    argv = list(container.get("command", [])) + list(container.get("args", []))
    if "{{$}}" in argv:  # a Python component: executor_main reads the executor input
        art = {name: {"artifacts": [{"name": name, "type": spec["artifactType"], "uri": str(workdir / f"art-{name}"),
                                     "metadata": {}}]} for name, spec in artifacts_out.items()}
        executor_input = {
            "inputs": {"parameterValues": inputs},
            "outputs": {"parameters": {n: {"outputFile": str(p)} for n, p in out_files.items()}, "artifacts": art,
                        "outputFile": str(workdir / "executor_output.json")},
        }
        argv = [json.dumps(executor_input) if a == "{{$}}" else a for a in argv]
    else:
        def sub(m: re.Match[str]) -> str:
            if m.group(2) is not None:
                value = inputs[m.group(2)]
                return value if isinstance(value, str) else json.dumps(value)
            return str(out_files[m.group(3)])
        argv = [_PLACEHOLDER.sub(sub, a) for a in argv]
    proc = subprocess.run(argv, cwd=cwd or workdir, env=_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{component} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    outputs: dict[str, Any] = {"_stdout": proc.stdout, "_stderr": proc.stderr}
    executor_output = {}
    if (workdir / "executor_output.json").exists():
        executor_output = json.loads((workdir / "executor_output.json").read_text())
    outputs["_executor_output"] = executor_output
    for name, path in out_files.items():
        if name in executor_output.get("parameterValues", {}):  # a Python component's return values
            outputs[name] = executor_output["parameterValues"][name]
            continue
        text = path.read_text()  # a container component writes its output file
        kind = params_out[name]["parameterType"]
        outputs[name] = text if kind == "STRING" else json.loads(text)
    for name in artifacts_out:
        outputs[name] = workdir / f"art-{name}"
    return outputs
