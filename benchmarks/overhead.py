"""Part 4: the local runner's cost per trial, against the ideal schedule and a bare process start.

A trial is ``python -c 'sleep s; print objective'``, and again ``sh -c 'sleep s; echo objective'``
(a shell starts in ~1 ms, so what is left is the runner's own cost). What it takes run alone without a runner, T
(process start + s, measured right before each run), is what no runner can avoid: ideal wall time
is ``trials / parallel x T`` and utilisation is ideal / wall, the wall from the ``run_local`` call
to its return (the runner's start-up included). Per trial, the slot time beyond the sleep splits
into the process start (T - s) and the runner's overhead (the rest), end to end and in steady
state (first trial started to last result written: start-up and shutdown left out). The rest
includes what the machine adds when ``parallel`` trials start at once on its cores (on 2 cores
their process starts slow each other down) and the runner's own CPU time competing with them.
Trials of 0.2 s and 1 s, repeats interleaved so both see the same load.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import experiment, median, write_result
from hp_components.local import run_local
from hp_components.store import ExperimentStore
from hp_components.suggest import suggest

PARAMS = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}]


#: the trial programs: a Python interpreter (its start costs ~25 ms of CPU, and on 2 cores the
#: starts of parallel trials slow each other down) and a shell (starts in ~1 ms: what remains is the runner's)
KINDS = ("python", "shell")


def trial_command(sleep: float, kind: str = "python") -> list[str]:
    if kind == "shell":
        return ["/bin/sh", "-c", f"sleep {sleep}; echo objective=1", "sh"]
    return [sys.executable, "-c", f"import time; time.sleep({sleep}); print('objective=1')"]


def standalone(sleep: float, repeats: int, kind: str = "python") -> list[float]:
    """Seconds the trial command takes run alone without a runner, start to exit."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(trial_command(sleep, kind) + ["--x=0.5"], check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - t0)
    return out


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def one_run(name: str, trials: int, parallel: int, sleep: float, algorithm: str, kind: str = "python") -> dict[str, float]:
    """One run_local: wall, start-up (call to first trial started), steady span, runner CPU."""
    exp = experiment(name, PARAMS, algorithm=algorithm, max_trials=trials, parallel=parallel, seed=0,
                     command=trial_command(sleep, kind))
    events: dict[str, list[float]] = {"started": [], "finished": []}

    def on_event(kind: str, _payload: Any) -> None:
        if kind in events:
            events[kind].append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        cpu0, t0 = _cpu(), time.perf_counter()
        result = run_local(exp, storage=f"sqlite:///{tmp}/hp.db", run_dir=Path(tmp) / "runs", workdir=tmp,
                           on_event=on_event)
        wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    assert sum(t.condition == "Succeeded" for t in result.history) == trials, result.status.reason
    first, last = min(events["started"]), max(events["finished"])
    return {"wall_s": wall, "startup_s": first - t0, "steady_s": last - first, "shutdown_s": t0 + wall - last,
            "runner_cpu_s": cpu}


def summarise(runs: list[dict[str, float]], alone: list[float], trials: int, parallel: int,
              sleep: float, kind: str = "python") -> dict[str, Any]:
    trial_time = median(alone)
    start = trial_time - sleep
    ideal = trial_time * trials / parallel
    wall, steady = median([r["wall_s"] for r in runs]), median([r["steady_s"] for r in runs])
    slot, steady_slot = wall * parallel / trials - sleep, steady * parallel / trials - sleep
    return {
        "trial": kind, "sleep_s": sleep, "runs": runs, "trial_alone_s_all": alone, "process_start_ms": start * 1000,
        "wall_s_median": wall, "ideal_s": ideal, "utilisation": ideal / wall,
        "utilisation_vs_sleep_only": sleep * trials / parallel / wall,
        "steady_s_median": steady, "steady_utilisation": ideal / steady,
        "startup_s_median": median([r["startup_s"] for r in runs]),
        "shutdown_s_median": median([r["shutdown_s"] for r in runs]),
        "per_trial_slot_ms": slot * 1000, "per_trial_runner_ms": (slot - start) * 1000,
        "steady_per_trial_slot_ms": steady_slot * 1000, "steady_per_trial_runner_ms": (steady_slot - start) * 1000,
        "runner_cpu_ms_per_trial": median([r["runner_cpu_s"] for r in runs]) * 1000 / trials,
    }


def store_ops(n: int = 40) -> dict[str, float]:
    """Median ms of each store operation a trial costs the runner's writer thread (fresh SQLite file)."""
    exp = experiment("store-ops", PARAMS, algorithm="random", max_trials=10 * n, parallel=4, seed=0)
    times: dict[str, list[float]] = {k: [] for k in ("create", "heartbeat", "save_result", "sync_unchanged")}
    with tempfile.TemporaryDirectory() as tmp:
        store = ExperimentStore(f"sqlite:///{tmp}/hp.db", exp)
        store.sync(force=True)

        def timed(key: str, fn: Any, *args: Any) -> Any:
            t0 = time.perf_counter()
            out = fn(*args)
            times[key].append(time.perf_counter() - t0)
            return out

        for _ in range(n):
            [t] = timed("create", store.create, suggest(exp, [], 1))
            t.intermediate_values.append((0, 1.0))
            timed("heartbeat", store.heartbeat, [t])
            t.condition, t.objective_value = "Succeeded", 1.0
            t.observation = {"metrics": [{"name": "objective", "latest": "1", "min": "1", "max": "1"}]}
            timed("save_result", store.save, t)
            timed("sync_unchanged", store.sync)
    return {k: median(v) * 1000 for k, v in times.items()}


def run(trials: int = 100, parallel: int = 4, sleeps: tuple[float, ...] = (0.2, 1.0), repeats: int = 3,
        out_dir: Path | None = None, algorithm: str = "random", kinds: tuple[str, ...] = KINDS) -> dict[str, Any]:
    cases = [(kind, sleep) for kind in kinds for sleep in sleeps]
    runs: dict[tuple[str, float], list[dict[str, float]]] = {c: [] for c in cases}
    alone: dict[tuple[str, float], list[float]] = {c: [] for c in cases}
    for r in range(repeats):
        for kind, sleep in cases:
            alone[kind, sleep] += standalone(sleep, 5, kind)
            runs[kind, sleep].append(one_run(f"overhead-{r}", trials, parallel, sleep, algorithm, kind))
    results = [summarise(runs[c], alone[c], trials, parallel, c[1], c[0]) for c in cases]
    head = results[0]
    what = (f"{trials} trials of `python -c 'sleep s'` (and of `sh -c 'sleep s'`) at parallelTrialCount {parallel} through run_local (fresh SQLite "
            f"store, algorithm {algorithm}), median of {repeats} runs; ideal = trials / {parallel} x the command's time "
            "run alone without a runner (process start + s), wall = the run_local call to its return; runner overhead "
            f"= slot time - s - process start, including the slowdown of {parallel} process starts sharing the cores. "
            + "; ".join(f"{o['trial']}, s = {o['sleep_s']:g} s: utilisation {o['utilisation']:.1%} end to end, "
                        f"{o['steady_utilisation']:.1%} in steady state (first start to last result), start-up "
                        f"{o['startup_s_median']:.2f} s, runner overhead per trial {o['per_trial_runner_ms']:.1f} ms "
                        f"end to end, {o['steady_per_trial_runner_ms']:.1f} ms in steady state, runner CPU "
                        f"{o['runner_cpu_ms_per_trial']:.1f} ms per trial" for o in results))
    doc: dict[str, Any] = {
        "what": what, "trials": trials, "parallel": parallel, "repeats": repeats, "results": results,
        # the summary table's columns: the first trial length
        "wall_s_median": head["wall_s_median"], "ideal_s": head["ideal_s"], "utilisation": head["utilisation"],
        "bare_process_start_ms_median": head["process_start_ms"], "per_trial_slot_ms": head["per_trial_slot_ms"],
        "per_trial_overhead_beyond_start_ms": head["per_trial_runner_ms"],
    }
    doc["store_ops_ms_median"] = ops = store_ops()
    doc["store_ops_ms_per_trial_total"] = sum(ops.values())
    write_result("overhead", doc, out_dir)
    for o in results:
        print(f"overhead, {o['trial']} {o['sleep_s']:g} s trials: wall {o['wall_s_median']:.2f} s vs ideal {o['ideal_s']:.2f} s -> "
              f"utilisation {o['utilisation']:.1%} (steady state {o['steady_utilisation']:.1%}); start-up "
              f"{o['startup_s_median']:.2f} s; per trial: process start {o['process_start_ms']:.1f} ms, runner "
              f"{o['per_trial_runner_ms']:.1f} ms (steady state {o['steady_per_trial_runner_ms']:.1f} ms), "
              f"runner CPU {o['runner_cpu_ms_per_trial']:.1f} ms", flush=True)
    print("store ops (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in ops.items()), flush=True)
    return doc
