"""Part 4: the local runner's cost per trial, against the ideal schedule and a bare process start."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import experiment, median, write_result
from hp_components.local import run_local


def bare_start(repeats: int = 20, sleep: float = 0.0) -> list[float]:
    """Seconds for ``sys.executable -c 'import time; time.sleep(sleep)'`` to start and exit."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import time; time.sleep({sleep})"], check=True)
        out.append(time.perf_counter() - t0 - sleep)
    return out


def store_ops(n: int = 40) -> dict[str, float]:
    """Median ms of each store operation a trial costs the runner's event loop (fresh SQLite file)."""
    from hp_components.store import ExperimentStore
    from hp_components.suggest import suggest

    params = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}]
    exp = experiment("store-ops", params, algorithm="random", max_trials=10 * n, parallel=4, seed=0)
    times: dict[str, list[float]] = {k: [] for k in ("suggest_1", "create", "save_running", "report",
                                                     "save_result", "history")}
    with tempfile.TemporaryDirectory() as tmp:
        store = ExperimentStore(f"sqlite:///{tmp}/hp.db", exp)

        def timed(key, fn, *args):
            t0 = time.perf_counter()
            out = fn(*args)
            times[key].append(time.perf_counter() - t0)
            return out

        for _ in range(n):
            history = timed("history", store.history)
            [t] = timed("create", store.create, timed("suggest_1", suggest, exp, history, 1))
            t.condition = "Running"
            timed("save_running", store.save, t)
            timed("report", store.report, t, 0, 1.0)
            t.condition, t.objective_value = "Succeeded", 1.0
            t.observation = {"metrics": [{"name": "objective", "latest": "1", "min": "1", "max": "1"}]}
            timed("save_result", store.save, t)
    return {k: median(v) * 1000 for k, v in times.items()}


def run(trials: int = 100, parallel: int = 4, sleep: float = 0.2, repeats: int = 1, out_dir=None,
        algorithm: str = "random") -> dict[str, Any]:
    starts = bare_start()
    start = median(starts)
    params = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}]
    cmd = [sys.executable, "-c", f"import time; time.sleep({sleep}); print('objective=1')"]
    walls = []
    for r in range(repeats):
        exp = experiment(f"overhead-{r}", params, algorithm=algorithm, max_trials=trials, parallel=parallel,
                         seed=0, command=cmd)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = run_local(exp, storage=f"sqlite:///{tmp}/hp.db", run_dir=Path(tmp) / "runs", workdir=tmp)
            walls.append(time.perf_counter() - t0)
            assert sum(t.condition == "Succeeded" for t in result.history) == trials, result.status.reason
    wall = median(walls)
    ideal = sleep * trials / parallel
    ideal_with_start = (sleep + start) * trials / parallel
    per_trial = wall * parallel / trials - sleep  # slot time a trial costs beyond its sleep
    doc = {
        "what": f"{trials} trials of `python -c 'sleep {sleep}'` at parallelTrialCount {parallel} through run_local "
                f"(SQLite store, algorithm {algorithm}); ideal = sleep x trials / parallel",
        "trials": trials, "parallel": parallel, "sleep_s": sleep, "wall_s_all": walls, "wall_s_median": wall,
        "ideal_s": ideal, "utilisation": ideal / wall,
        "utilisation_counting_process_start": ideal_with_start / wall,
        "bare_process_start_ms_median": start * 1000, "bare_process_start_ms_all": [s * 1000 for s in starts],
        "per_trial_slot_ms": per_trial * 1000, "per_trial_overhead_beyond_start_ms": (per_trial - start) * 1000,
    }
    doc["store_ops_ms_median"] = ops = store_ops()
    doc["store_ops_ms_per_trial_total"] = sum(ops.values())
    write_result("overhead", doc, out_dir)
    print(f"overhead: wall {wall:.2f} s vs ideal {ideal:.2f} s -> utilisation {ideal / wall:.1%}; "
          f"bare start {start*1000:.1f} ms; per trial {per_trial*1000:.1f} ms slot time, "
          f"{(per_trial - start)*1000:.1f} ms beyond process start; store ops per trial (ms): "
          + ", ".join(f"{k} {v:.1f}" for k, v in ops.items()), flush=True)
    return doc
