"""Compiled size and compile time of the KFP pipeline for 100 trials at parallelism 10.

    python -m hp_components.kfp._benchmark            # writes benchmarks/results/kfp-size.json
"""

from __future__ import annotations

import gzip
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import kfp

from hp_components.experiment import parse_experiment

from hp_components.kfp import compile_experiment
from hp_components.kfp._pipeline import rounds

OUT = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "kfp-size.json"
COMMAND = "python -m hp_components.kfp._benchmark"


def _experiment(max_trials: int, parallel: int):
    return parse_experiment({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": f"bench-{max_trials}-{parallel}"},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "Validation-accuracy", "goal": 0.99},
            "algorithm": {"algorithmName": "tpe"}, "maxTrialCount": max_trials, "parallelTrialCount": parallel,
            "maxFailedTrialCount": 10,
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.0001", "max": "0.1", "distribution": "logUniform"}},
                {"name": "num-layers", "parameterType": "int", "feasibleSpace": {"min": "2", "max": "5"}},
                {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam", "ftrl"]}}],
            "trialTemplate": {
                "primaryContainerName": "training", "trialParameters": [
                    {"name": "lr", "reference": "lr"}, {"name": "layers", "reference": "num-layers"},
                    {"name": "optimizer", "reference": "optimizer"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "restartPolicy": "Never", "containers": [{
                        "name": "training", "image": "docker.io/kubeflowkatib/mxnet-mnist:latest",
                        "command": ["python3", "/opt/mxnet-mnist/mnist.py", "--lr=${trialParameters.lr}",
                                    "--num-layers=${trialParameters.layers}", "--optimizer=${trialParameters.optimizer}"],
                        "resources": {"limits": {"nvidia.com/gpu": 1, "memory": "4Gi"}}}]}}}}},
        }})


def measure(max_trials: int, parallel: int, repeat: int = 3) -> dict:
    exp = _experiment(max_trials, parallel)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "p.yaml"
        for _ in range(repeat):
            t0 = time.perf_counter()
            compile_experiment(exp, out)
            times.append(time.perf_counter() - t0)
        data = out.read_bytes()
    return {"maxTrialCount": max_trials, "parallelTrialCount": parallel, "rounds": rounds(exp),
            "bytes": len(data), "gzip_bytes": len(gzip.compress(data)),
            "compile_seconds_median": round(statistics.median(times), 3), "compile_seconds_all": [round(t, 3) for t in times]}


def main() -> int:
    results = [measure(100, 10), measure(12, 3), measure(200, 10)]
    report = {
        "command": COMMAND,
        "what": "size of the KFP IR YAML hp-tune compile --target kfp writes, and the time to compile it",
        "limits": "Kubernetes objects (an Argo Workflow the KFP backend creates) must stay under etcd's ~1.5 MiB "
                  "request limit; the trial wrapper's source is stored once as a pipeline input, not per round",
        "environment": {"python": platform.python_version(), "kfp": kfp.__version__, "machine": platform.machine(),
                        "cpus": __import__("os").cpu_count()},
        "results": results,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
