"""The GP's suggestion (``bayesianoptimization``, a batch of 8) next to plain Optuna GPSampler, both from scratch.

Each repeat, interleaved, after ``n`` trials of the latency part's 6-dimensional mixed space:

* ``ours``: ``hp_components.suggest.suggest(exp, history, 8)`` (replay, Yeo-Johnson when it
  compresses, the posterior-mean and box-edge points, duplicate check);
* ``plain``: a fresh ``optuna.create_study(sampler=GPSampler(seed))``, ``add_trials`` of the same
  history, 8 ``ask`` (what a pod running plain Optuna would do; the latency part's plain study is
  a persistent one instead, whose sampler keeps its kernel fit warm between batches).

Both in one process, torch imported and warmed first; medians and the ratios of wall time and of
the process's CPU time (on a shared machine the CPU time is the steadier one; with
``OMP_NUM_THREADS=1`` it is the work done)::

    OMP_NUM_THREADS=1 python -m benchmarks gp --sizes 50,99 --repeats 3
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import optuna

from benchmarks.common import experiment, median, write_result
from benchmarks.functions import LATENCY_SPACE
from benchmarks.latency import synthetic_history
from hp_components.space import SearchSpace
from hp_components.suggest import suggest

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _plain(space: SearchSpace, history, count: int, seed: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.GPSampler(seed=seed))
        study.add_trials([optuna.trial.create_trial(params=space.internal(t.assignments), value=t.objective_value,
                                                    distributions=space.distributions) for t in history])
        for _ in range(count):
            study.ask(space.distributions)
    return time.perf_counter() - t0, time.process_time() - c0


def _ours(exp, history, count: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = suggest(exp, history, count)
    elapsed = time.perf_counter() - t0, time.process_time() - c0
    assert len(out) == count
    return elapsed


def run(sizes=(50, 99), repeats: int = 3, count: int = 8, out_dir=None) -> dict[str, Any]:
    load = list(os.getloadavg())
    exp = experiment("gp", LATENCY_SPACE, algorithm="bayesianoptimization", max_trials=5000, seed=1)
    space = SearchSpace(exp.spec.parameters)
    _plain(space, synthetic_history(LATENCY_SPACE, 12, seed=0), 1, 0)  # import and warm torch: not timed
    rows = []
    for n in sizes:
        history = synthetic_history(LATENCY_SPACE, n, seed=n)
        ours, plain = [], []
        for _ in range(repeats):
            ours.append(_ours(exp, history, count))
            plain.append(_plain(space, history, count, 1))
        row: dict[str, Any] = {"history": n, "count": count, "repeats": repeats}
        for kind, i in (("wall", 0), ("cpu", 1)):
            o, p = [x[i] for x in ours], [x[i] for x in plain]
            row |= {f"ours_{kind}_median_s": median(o), f"ours_{kind}_all_s": o,
                    f"plain_gpsampler_{kind}_median_s": median(p), f"plain_gpsampler_{kind}_all_s": p,
                    f"ratio_{kind}": median(o) / median(p)}
        rows.append(row)
        print(f"gp n={n:3d}: ours {row['ours_wall_median_s']:.2f} s (cpu {row['ours_cpu_median_s']:.2f}), plain "
              f"GPSampler {row['plain_gpsampler_wall_median_s']:.2f} s (cpu {row['plain_gpsampler_cpu_median_s']:.2f}) "
              f"= {row['ratio_wall']:.2f}x wall, {row['ratio_cpu']:.2f}x cpu", flush=True)
    doc = {"what": f"seconds for a batch of {count} from bayesianoptimization vs a fresh plain GPSampler study "
                   f"(add_trials + {count} asks), 6-dim mixed space, {repeats} interleaved repeats, medians",
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "load_average_at_start": load,
           "load_average_at_end": list(os.getloadavg()), "results": rows}
    write_result("gp", doc, out_dir)
    return doc
