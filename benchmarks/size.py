"""Part 5: compiled KFP and Argo YAML size and compile time vs maxTrialCount and parallelism."""

from __future__ import annotations

import gzip
import importlib
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import experiment, median, write_result


def driver(target: str):
    """``compile_experiment`` of hp_components.<target>, or the reason it is not there."""
    try:
        mod = importlib.import_module(f"hp_components.{target}")
        return getattr(mod, "compile_experiment"), None
    except Exception as e:  # noqa: BLE001 - a missing extra or a driver still being written
        return None, f"driver not available: {type(e).__name__}: {e}"


def run(targets=("kfp", "argo"), trial_counts=(10, 100, 1000), parallels=(4, 10), repeats: int = 2,
        out_dir=None) -> dict[str, Any]:
    params = [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.001", "max": "0.1"}},
              {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}}]
    rows, unavailable = [], {}
    for target in targets:
        compile_experiment, why = driver(target)
        if compile_experiment is None:
            unavailable[target] = why
            print(f"size {target}: {why}", flush=True)
            continue
        for n in trial_counts:
            for par in parallels:
                exp = experiment("size-bench", params, algorithm="tpe", max_trials=n, parallel=par, seed=0)
                row: dict[str, Any] = {"target": target, "maxTrialCount": n, "parallelTrialCount": par}
                times = []
                try:
                    with tempfile.TemporaryDirectory() as tmp:
                        out = Path(tmp) / "p.yaml"
                        for _ in range(repeats):
                            t0 = time.perf_counter()
                            compile_experiment(exp, out)
                            times.append(time.perf_counter() - t0)
                        data = out.read_bytes()
                    row.update(bytes=len(data), gzip_bytes=len(gzip.compress(data)),
                               compile_s_median=median(times), compile_s_all=times)
                except Exception as e:  # noqa: BLE001 - e.g. a round limit; recorded, not fatal
                    row["error"] = f"{type(e).__name__}: {e}"
                rows.append(row)
                print(f"size {target} max={n} par={par}: " + (row.get("error") or
                      f"{row['bytes']/1024:.0f} KB, {row['compile_s_median']:.2f} s"), flush=True)
    doc = {"what": "compiled pipeline YAML size (bytes, gzip) and compile time", "unavailable": unavailable,
           "results": rows}
    write_result("size", doc, out_dir)
    return doc
