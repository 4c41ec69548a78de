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
                try:
                    data, times = _compile_timed(compile_experiment, exp, repeats)
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


def _compile_timed(compile_experiment: Any, exp: Any, repeats: int) -> tuple[bytes, list[float]]:
    """The compiled file's bytes and the seconds each of ``repeats`` compilations took."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "p.yaml"
        for _ in range(repeats):
            t0 = time.perf_counter()
            compile_experiment(exp, out)
            times.append(time.perf_counter() - t0)
        return out.read_bytes(), times


def run_kfp(cases=((10, 3), (100, 3), (200, 2), (300, 3)), repeats: int = 3, out_dir=None) -> dict[str, Any]:
    """The issue-13 targets for KFP: IR size, DAG depth, compile time, the largest trial executor
    input and the estimated Workflow object, from the backend model in hp_components/kfp/_backend.py.

        python -m benchmarks.size kfp
    """
    import yaml

    from hp_components.kfp import compile_experiment
    from hp_components.kfp import _backend
    from hp_components.kfp._pipeline import rounds
    from hp_components.kfp._runtime import suggest_items
    from hp_components.kfp._fields import trial_fields

    params = [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.001", "max": "0.1"}},
              {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}}]
    rows = []
    for n, par in cases:
        exp = experiment("size-bench", params, algorithm="tpe", max_trials=n, parallel=par, seed=0)
        data, times = _compile_timed(compile_experiment, exp, repeats)
        docs = list(yaml.safe_load_all(data))
        ir, platform = docs[0], (docs[1] if len(docs) > 1 else None)
        items, _ = suggest_items(exp, [], {"fields": trial_fields(exp)})
        values = {k: str(v) for k, v in items[0].items() if k != "hp_item"}
        raw, stored = _backend.workflow_status_bytes(ir, n, rounds(exp), values)
        spec_bytes = _backend.workflow_spec_bytes(ir, platform)
        row = {"maxTrialCount": n, "parallelTrialCount": par, "rounds": rounds(exp), "ir_bytes": len(data),
               "ir_gzip_bytes": len(gzip.compress(data)), "ir_dag_depth": _backend.ir_dag_depth(ir),
               "argo_template_depth": _backend.argo_depth(ir), "compile_s_median": median(times),
               "compile_s_all": times, "trial_executor_input_bytes": _backend.trial_executor_input_bytes(ir, values),
               "workflow_spec_bytes_est": spec_bytes, "workflow_status_nodes_raw_bytes_est": raw,
               "workflow_status_nodes_stored_bytes_est": stored, "workflow_object_bytes_est": spec_bytes + stored}
        rows.append(row)
        print(f"kfp {n} trials at {par}: IR {len(data) / 1024:.0f} KiB, depth {row['ir_dag_depth']} "
              f"(Argo {row['argo_template_depth']}), {row['compile_s_median']:.2f} s, trial input "
              f"{row['trial_executor_input_bytes']} B, Workflow ~{row['workflow_object_bytes_est'] / 1024:.0f} KiB "
              f"(spec {spec_bytes / 1024:.0f} + nodes {stored / 1024:.0f} compressed, {raw / 1024:.0f} raw)", flush=True)
    doc = {"what": "KFP: compiled IR size, depth, compile time; trial executor input and the Workflow object "
                   "estimated with hp_components/kfp/_backend.py (a model of the backend's rules, not measured "
                   "on a cluster); 'stored' = gzip+base64 of the modelled status.nodes (Argo's packer)",
           "targets": {"ir_bytes": 400 * 1024, "ir_dag_depth": 20, "compile_s": 5,
                       "trial_executor_input_bytes": 16 * 1024, "workflow_object_bytes_200_at_2": 1024 * 1024},
           "results": rows}
    write_result("kfp-size", doc, out_dir)
    return doc


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["kfp"]:
        run_kfp()
    else:
        run()
