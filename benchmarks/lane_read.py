"""The lane claim with the store's direct history read against the same claim through Optuna's get_all_trials.

``python -m benchmarks.lane_read [--storage URL] [--trials 100]`` writes ``results/lane_read.json``.

One lane claims ``trials`` trials one after another (TPE), each on a store just opened (as a
lane-suggest pod does), its trial then recorded. Claims alternate between the two readers of
:func:`hp_components.store.read_trials`: the direct read (odd claims) and its fallback,
``get_all_trials`` (even claims, as on a schema it does not know); after each claim, the local
runner's suggestion at the same history (as in ``benchmarks.lanes``). Opening the store (a step pod's
first work: the engine, Optuna's schema, the experiment's spec) is timed on its own, and with the claim
that follows it: what a lane-suggest pod pays before its trial starts, its process start aside.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import hp_components.store as store_module
from benchmarks import common
from benchmarks.common import experiment, median, write_result
from benchmarks.lanes import PARAMS, _observation, local_suggestion
from hp_components._lanes import lane_record, lane_suggest, open_store, with_password
from hp_components.store import KNOWN_SCHEMA, ExperimentStore


def run(storage: str | None, trials: int, out_dir: Path | None = None) -> Path:
    url = storage or f"sqlite:///{tempfile.mkdtemp(prefix='hp-lane-read-')}/hp.db"
    tag = uuid.uuid4().hex[:6]
    exp = experiment(f"bench-read-{tag}", PARAMS, algorithm="tpe", max_trials=trials, parallel=3, seed=0)
    local = ExperimentStore(with_password(url), experiment(f"bench-read-{tag}-local", PARAMS, algorithm="tpe",
                                                           max_trials=100 * trials, parallel=3, seed=0))
    direct: list[float] = []
    fallback: list[float] = []
    local_cost: list[float] = []
    opened: list[float] = []
    open_and_claim: list[float] = []
    for i in range(trials):
        t0 = time.perf_counter()
        store = open_store(url, exp, "bench/0")
        opened.append(time.perf_counter() - t0)
        history = store.history()
        store_module.KNOWN_SCHEMA = KNOWN_SCHEMA if i % 2 else "another"
        try:
            t0 = time.perf_counter()
            claim = lane_suggest(exp, url, lane=0, run="bench", wait=0.0, store=store)
            (direct if i % 2 else fallback).append(time.perf_counter() - t0)
            if i % 2:
                open_and_claim.append(opened[-1] + direct[-1])
        finally:
            store_module.KNOWN_SCHEMA = KNOWN_SCHEMA
        local_cost.append(local_suggestion(exp, history, local))
        lane_record(exp, url, claim.item["name"], _observation(claim.item["name"], claim.item))
    data = {"storage": storage.split("://", 1)[0] if storage else "sqlite", "trials": trials,
            "claim_direct_read_median_s": median(direct), "claim_get_all_trials_median_s": median(fallback),
            "local_suggest_median_s": median(local_cost),
            "open_store_median_s": median(opened), "open_and_claim_direct_median_s": median(open_and_claim),
            "open_and_claim_over_local": median(open_and_claim) / median(local_cost),
            "direct_over_local": median(direct) / median(local_cost),
            "get_all_trials_over_local": median(fallback) / median(local_cost)}
    return write_result("lane_read", data, out_dir)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lane_read", description=__doc__.splitlines()[0])
    p.add_argument("--storage", default=os.environ.get("HP_BENCH_STORAGE"))
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    common.COMMAND[:] = ["python", "-m", "benchmarks.lane_read", *sys.argv[1:]]
    print(run(a.storage, a.trials, a.out))


if __name__ == "__main__":
    main()
