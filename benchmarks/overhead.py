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
    write_result("overhead", doc, out_dir)
    print(f"overhead: wall {wall:.2f} s vs ideal {ideal:.2f} s -> utilisation {ideal / wall:.1%}; "
          f"bare start {start*1000:.1f} ms; per trial {per_trial*1000:.1f} ms slot time, "
          f"{(per_trial - start)*1000:.1f} ms beyond process start", flush=True)
    return doc
