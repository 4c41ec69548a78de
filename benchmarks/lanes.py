"""Lanes vs rounds on a cluster: the issue's paper model, driven through the real lane steps.

``python -m benchmarks.lanes [--storage URL] [--trials 100] [--seeds 3]`` writes ``results/lanes.json``.

The cluster model (issue 19): trial durations lognormal around 10 minutes (median 600 s,
``sigma`` 0.3 / 0.6 / 1.0), 15 s for a pod to start, 20 s per suggest, collect or record step.
Time is simulated; every decision is real:

* **lanes**: a discrete-event run of ``parallel`` lanes. At its simulated time a lane calls the real
  :func:`hp_components._lanes.lane_suggest` (claim a slot, TPE suggests one trial seeing every
  finished and running trial) against the store, its trial then takes 20 s (suggest) + 15 s (pod
  start) + its duration, and the real :func:`~hp_components._lanes.lane_record` writes the
  observation (20 s), then the lane suggests again. Durations belong to the trial's store number,
  so both shapes run the same trials.
* **rounds**: the round shape's barrier on the same durations: each round costs the collect step
  (20 s) + the slowest of its trials (15 s + duration); the first suggest 20 s.
* **ideal refill**: Katib's controller, a slot refilled the moment its trial ends: a greedy schedule
  of the same trials on ``parallel`` slots at 20 s (suggest) + 15 s + duration each, no record step.

Slot use is the trials' durations over ``parallel`` x the wall time. The real steps' own cost is
measured as well, side by side and interleaved: at each lane's suggest, with the history the claim
is about to see, the local runner's suggestion (``suggest`` with that history already in memory,
then ``ExperimentStore.create`` of the trial on an open store of its own; its trial is then
recorded, untimed, so its slots stay free) and the lane's whole claim (``lane_suggest`` on an open
store: the lock, reading every trial, Katib's status and budget checks, suggesting, creating the
trial, releasing the lock), alternating which goes first. Opening the store (what a lane-suggest
pod does before, once) is reported apart, and its sum with the claim as well.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import experiment, median, write_result
from hp_components._lanes import lane_record, lane_suggest, open_store, with_password
from hp_components.store import ExperimentStore
from hp_components.suggest import suggest
from hp_components.trials import Trial

POD_START, STEP, MEDIAN = 15.0, 20.0, 600.0
CELLS = ((3, 0.3), (3, 0.6), (8, 0.6), (8, 1.0))
PARAMS = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-2", "max": "2"}},
          {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "-2", "max": "2"}}]


def durations(trials: int, sigma: float, seed: int) -> list[float]:
    rnd = random.Random(seed)
    return [MEDIAN * math.exp(rnd.gauss(0.0, sigma)) for _ in range(trials)]


def rounds_wall(d: list[float], parallel: int) -> float:
    """The round shape: suggest, then per round the slowest trial (pod start + duration) and the collect step."""
    return STEP + sum(POD_START + max(d[i:i + parallel]) + STEP for i in range(0, len(d), parallel))


def ideal_wall(d: list[float], parallel: int) -> float:
    """Katib's refill: each trial on the first free slot, costing suggest + pod start + duration."""
    slots = [0.0] * parallel
    for x in d:
        heapq.heapreplace(slots, slots[0] + STEP + POD_START + x)
    return max(slots)


def _observation(name: str, item: dict[str, Any]) -> str:
    x, y = (float(item["parameters"][k]) for k in ("x", "y"))
    loss = str((x - 0.3) ** 2 + (y + 0.5) ** 2)
    return json.dumps({"name": name, "condition": "Succeeded", "reason": "", "message": "",
                       "metrics": [{"name": "objective", "latest": loss, "min": loss, "max": loss}]})


def lanes_run(url: str, d: list[float], parallel: int, name: str) -> dict[str, Any]:
    """The lanes, event by event in simulated time, each decision by the real steps; the wall time and step costs."""
    exp = experiment(name, PARAMS, algorithm="tpe", max_trials=len(d), parallel=parallel, seed=0)
    events: list[tuple[float, int, int, str, dict[str, Any]]] = [(0.0, i, lane, "suggest", {}) for i, lane in
                                                                  enumerate(range(parallel))]
    heapq.heapify(events)
    seq, wall, suggest_cost, record_cost, open_cost, ended = parallel, 0.0, [], [], [], []
    local_cost: list[float] = []
    local = ExperimentStore(with_password(url), experiment(f"{name}-local", PARAMS, algorithm="tpe", seed=0,
                                                           max_trials=100 * len(d), parallel=parallel))
    while events:
        now, _, lane, what, item = heapq.heappop(events)
        if what == "suggest":
            t0 = time.perf_counter()
            store = open_store(url, exp, f"bench/{lane}")  # what each lane-suggest pod does first
            opened = time.perf_counter() - t0
            history = store.history()  # what the claim will see (untimed): the local runner's memory
            claim_first = len(suggest_cost) % 2 == 0
            cost = local_suggestion(exp, history, local) if not claim_first else 0.0
            t1 = time.perf_counter()
            claim = lane_suggest(exp, url, lane=lane, run="bench", wait=0.0, store=store)
            claimed = time.perf_counter() - t1
            if claim.done:  # a lane's ending claim suggests nothing: no pair
                ended.append(claim.reason)
                wall = max(wall, now + STEP)  # the suggest step that ends the lane
                continue
            cost = local_suggestion(exp, history, local) if claim_first else cost
            open_cost.append(opened)
            suggest_cost.append(claimed)
            local_cost.append(cost)
            number = int(claim.item["name"].rsplit("-", 1)[1])
            at = now + STEP + POD_START + d[number]
            seq += 1
            heapq.heappush(events, (at, seq, lane, "record", claim.item))
        else:
            t0 = time.perf_counter()
            lane_record(exp, url, item["name"], _observation(item["name"], item))
            record_cost.append(time.perf_counter() - t0)
            seq += 1
            heapq.heappush(events, (now + STEP, seq, lane, "suggest", {}))
    history = ExperimentStore(with_password(url), exp).history()
    assert len(history) == len(d) and len({t.name for t in history}) == len(d), "exactly maxTrialCount, unique names"
    assert all(t.condition == "Succeeded" for t in history), [t.reason for t in history]
    # the wall time: the last lane's ending suggest step, then the summary step
    return {"wall": wall + STEP, "suggest_s": suggest_cost, "local_s": local_cost, "open_s": open_cost, "record_s": record_cost, "ended": sorted(set(ended)),
            "trials": len(history)}


def local_suggestion(exp: Any, history: list[Trial], store: ExperimentStore) -> float:
    """The local runner's suggestion, timed: ``suggest`` with ``history`` in memory, then create the
    trial on ``store`` (open already); the trial is then recorded finished, untimed, so slots stay free."""
    t0 = time.perf_counter()
    [t] = store.create(suggest(exp, history, 1))
    cost = time.perf_counter() - t0
    store.save(Trial(name=t.name, assignments=t.assignments, condition="Succeeded", objective_value=1.0,
                     observation={"metrics": [{"name": "objective", "latest": "1.0", "min": "1.0", "max": "1.0"}]}))
    return cost


def run(storage: str | None, trials: int, seeds: int, out_dir: Path | None = None) -> Path:
    tmp = tempfile.mkdtemp(prefix="hp-lanes-bench-")
    url = storage or f"sqlite:///{tmp}/hp.db"
    rows = []
    all_suggest, all_local, all_open, all_pairs, all_both = [], [], [], [], []
    for parallel, sigma in CELLS:
        for seed in range(seeds):
            d = durations(trials, sigma, seed)
            tag = uuid.uuid4().hex[:6]
            lanes = lanes_run(url, d, parallel, f"bench-lanes-{tag}")
            r, i = rounds_wall(d, parallel), ideal_wall(d, parallel)
            busy = sum(d)
            rows.append({"trials": trials, "parallel": parallel, "sigma": sigma, "seed": seed,
                         "rounds_wall_s": r, "lanes_wall_s": lanes["wall"], "ideal_wall_s": i,
                         "rounds_over_lanes": r / lanes["wall"], "lanes_over_ideal": lanes["wall"] / i,
                         "slot_use_rounds": busy / (parallel * r), "slot_use_lanes": busy / (parallel * lanes["wall"]),
                         "lanes_ended": lanes["ended"],
                         "lane_open_store_median_s": median(lanes["open_s"]),
                         "lane_suggest_median_s": median(lanes["suggest_s"]),
                         "lane_record_median_s": median(lanes["record_s"]),
                         "local_suggest_median_s": median(lanes["local_s"]),
                         "claim_over_local": median(lanes["suggest_s"]) / median(lanes["local_s"])})
            all_suggest += lanes["suggest_s"]
            all_local += lanes["local_s"]
            all_pairs += [c / x for c, x in zip(lanes["suggest_s"], lanes["local_s"])]
            all_both += [o + c for o, c in zip(lanes["open_s"], lanes["suggest_s"])]
            all_open += lanes["open_s"]
            print(json.dumps(rows[-1]), flush=True)
    cells = []
    for parallel, sigma in CELLS:
        mine = [r for r in rows if (r["parallel"], r["sigma"]) == (parallel, sigma)]
        cells.append({"trials x parallel": f"{trials} x {parallel}", "sigma": sigma,
                      "rounds_over_lanes": median([r["rounds_over_lanes"] for r in mine]),
                      "lanes_over_ideal": median([r["lanes_over_ideal"] for r in mine]),
                      "slot_use_rounds": median([r["slot_use_rounds"] for r in mine]),
                      "slot_use_lanes": median([r["slot_use_lanes"] for r in mine])})
    data = {"model": {"median_duration_s": MEDIAN, "pod_start_s": POD_START, "step_s": STEP, "algorithm": "tpe"},
            "storage": storage.split("://", 1)[0] if storage else "sqlite", "seeds": seeds, "cells": cells,
            "step_cost": {"pairs": len(all_pairs),
                          "lane_claim_median_s": median(all_suggest), "local_suggest_median_s": median(all_local),
                          "claim_over_local": median(all_suggest) / median(all_local),
                          "claim_over_local_pairwise_median": median(all_pairs),
                          "lane_open_store_median_s": median(all_open),
                          "open_plus_claim_median_s": median(all_both),
                          "open_plus_claim_over_local": median(all_both) / median(all_local)},
            "runs": rows}
    return write_result("lanes", data, out_dir)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lanes", description=__doc__.splitlines()[0])
    p.add_argument("--storage", default=os.environ.get("HP_BENCH_STORAGE"),
                   help="the store (default: a SQLite file; PostgreSQL as on a cluster: postgresql+psycopg://...)")
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    common.COMMAND[:] = ["python", "-m", "benchmarks.lanes", *__import__("sys").argv[1:]]
    print(run(a.storage, a.trials, a.seeds, a.out))


if __name__ == "__main__":
    main()
