"""Shared helpers: result files with provenance, robust statistics, experiment builders."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from hp_components.experiment import Experiment, parse_experiment

RESULTS = Path(__file__).parent / "results"

#: the command line that produced the current run (set by __main__)
COMMAND: list[str] = ["python", "-m", "benchmarks", *sys.argv[1:]]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("hp-components", "optuna", "numpy", "scipy", "torch", "scikit-learn", "scikit-optimize",
                "hyperopt", "kfp", "hera"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "cpus": os.cpu_count(), "nice": os.nice(0)}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["loadavg_at_start"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def write_result(name: str, data: dict[str, Any], out_dir: Path | None = None) -> Path:
    """``results/<name>.json`` with the command, date (UTC), machine and versions in front."""
    out_dir = Path(out_dir or RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {"command": " ".join(COMMAND), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine(), "versions": versions(), **data}
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    return path


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def iqr(xs: Sequence[float]) -> list[float]:
    """[25th, 75th] percentiles."""
    if not xs:
        return [float("nan"), float("nan")]
    if len(xs) == 1:
        return [float(xs[0]), float(xs[0])]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return [float(q[0]), float(q[2])]


def experiment(name: str, parameters: list[dict[str, Any]], *, algorithm: str, max_trials: int,
               parallel: int = 1, direction: str = "minimize", seed: int | None = None,
               command: list[str] | None = None) -> Experiment:
    """A Katib Experiment over ``parameters`` (the trial command only matters for the local runner)."""
    settings = [{"name": "random_state", "value": str(seed)}] if seed is not None else []
    refs = [{"name": p["name"], "reference": p["name"]} for p in parameters]
    cmd = (command or ["python3", "-c", "print('objective=0')"]) + [
        f"--{p['name']}=${{trialParameters.{p['name']}}}" for p in parameters]
    doc = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {
            "objective": {"type": direction, "objectiveMetricName": "objective"},
            "algorithm": {"algorithmName": algorithm, "algorithmSettings": settings},
            "parallelTrialCount": parallel, "maxTrialCount": max_trials, "maxFailedTrialCount": max_trials,
            "parameters": parameters,
            "trialTemplate": {
                "primaryContainerName": "main", "trialParameters": refs,
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "containers": [{"name": "main", "image": "python:3.11", "command": cmd}],
                    "restartPolicy": "Never"}}}},
            },
        },
    }
    return parse_experiment(yaml.safe_load(yaml.safe_dump(doc)))
