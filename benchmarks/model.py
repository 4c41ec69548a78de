"""Part 3: examples/random-digits.yaml's model through the real local runner (subprocess trials)."""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import write_result
from hp_components.experiment import parse_experiment
from hp_components.local import run_local

ROOT = Path(__file__).resolve().parent.parent


def run(algorithms=("random", "tpe", "multivariate-tpe", "bayesianoptimization", "auto"), trials: int = 24,
        parallel: int = 4, seed: int = 7, out_dir=None) -> dict[str, Any]:
    base = yaml.safe_load((ROOT / "examples" / "random-digits.yaml").read_text())
    rows = []
    for algo in algorithms:
        doc = copy.deepcopy(base)
        doc["metadata"]["name"] = f"bench-digits-{algo}"[:40]
        spec = doc["spec"]
        spec["algorithm"] = {"algorithmName": algo, "algorithmSettings": [{"name": "random_state", "value": str(seed)}]}
        spec["maxTrialCount"], spec["parallelTrialCount"] = trials, parallel
        spec["maxFailedTrialCount"] = trials
        container = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
        container["command"][0] = sys.executable  # this interpreter (with scikit-learn), not PATH's python3
        exp = parse_experiment(doc)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = run_local(exp, storage=f"sqlite:///{tmp}/hp.db", workdir=ROOT, run_dir=Path(tmp) / "runs")
            wall = time.perf_counter() - t0
        ok = [t for t in result.history if t.condition == "Succeeded" and t.objective_value is not None]
        best = max(ok, key=lambda t: t.objective_value) if ok else None
        row = {"algorithm": algo, "trials": trials, "parallel": parallel, "wall_seconds": wall,
               "succeeded": len(ok), "best_accuracy": best.objective_value if best else None,
               "best_assignments": best.assignments if best else None, "reason": result.status.reason}
        rows.append(row)
        print(f"model {algo:22s} best accuracy {row['best_accuracy']}  wall {wall:.1f} s  ({len(ok)}/{trials} ok)",
              flush=True)
    doc = {"what": f"examples/random-digits.yaml (SGDClassifier on scikit-learn digits) via run_local, "
                   f"{trials} trials, parallelism {parallel}, random_state {seed}", "results": rows}
    write_result("model", doc, out_dir)
    return doc
