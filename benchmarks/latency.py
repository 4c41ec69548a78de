"""Part 1: the time of one ``suggest(exp, history, 8)`` (history replay + a batch of 8).

For each algorithm and history size, next to plain Optuna asking the same batch of 8 from a
persistent in-memory study that already holds the history (no replay: the lower bound).
"""

from __future__ import annotations

import random
import time
import warnings
from typing import Any

import optuna

from benchmarks.common import experiment, median, write_result
from benchmarks.functions import LATENCY_SPACE, LATENCY_SPACE_NUMERIC, latency_objective
from hp_components.algorithms import auto_choice
from hp_components.space import SearchSpace
from hp_components.suggest import suggest
from hp_components.trials import Trial, trial_name

ALGORITHMS = ["random", "tpe", "multivariate-tpe", "cmaes", "sobol", "bayesianoptimization", "auto"]

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _plain_sampler(algorithm: str, seed: int) -> optuna.samplers.BaseSampler | None:
    """The Optuna sampler a user would write by hand for the same algorithm (its own defaults)."""
    s = optuna.samplers
    return {
        "random": lambda: s.RandomSampler(seed=seed),
        "tpe": lambda: s.TPESampler(seed=seed),
        "multivariate-tpe": lambda: s.TPESampler(seed=seed, multivariate=True, group=True),
        "cmaes": lambda: s.CmaEsSampler(seed=seed, warn_independent_sampling=False),
        "sobol": lambda: s.QMCSampler(seed=seed, warn_independent_sampling=False),
        "bayesianoptimization": lambda: s.GPSampler(seed=seed),
    }.get(algorithm, lambda: None)()


def synthetic_history(params: list[dict[str, Any]], n: int, seed: int) -> list[Trial]:
    """``n`` Succeeded trials at uniformly random points with a smooth objective."""
    from benchmarks.common import experiment as _exp

    space = SearchSpace(_exp("h", params, algorithm="random", max_trials=10).spec.parameters)
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a = space.assignments(space.from_unit([rng.random() for _ in range(len(space))]))
        out.append(Trial(name=trial_name("lat", i), assignments=a, condition="Succeeded",
                         objective_value=latency_objective(a)))
    return out


def _time_ours(exp, history, batch: int, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = suggest(exp, history, batch)
        times.append(time.perf_counter() - t0)
        assert len(out) == batch, (exp.spec.algorithm.algorithm_name, len(out))
    return times


def _time_plain(algorithm: str, exp, history, batch: int, repeats: int) -> list[float] | None:
    space = SearchSpace(exp.spec.parameters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = _plain_sampler(algorithm, 0)
        if sampler is None:
            return None
        study = optuna.create_study(direction="minimize", sampler=sampler)
        for t in history:
            study.add_trial(optuna.trial.create_trial(params=space.internal(t.assignments),
                                                      distributions=space.distributions, value=t.objective_value))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            asked = [study.ask(space.distributions) for _ in range(batch)]
            times.append(time.perf_counter() - t0)
            for tr in asked:  # finish them (untimed) so the next repeat sees a history of the same kind
                study.tell(tr, latency_objective(space.assignments(tr.params)))
    return times


def run(sizes=(0, 100, 1000), algorithms=ALGORITHMS, batch: int = 8, repeats: int = 3,
        plain: bool = True, out_dir=None, max_trials: int = 5000) -> dict[str, Any]:
    rows = []
    for algorithm in algorithms:
        params = LATENCY_SPACE_NUMERIC if algorithm == "cmaes" else LATENCY_SPACE
        exp = experiment(f"lat-{algorithm}", params, algorithm=algorithm, max_trials=max_trials, seed=1)
        for n in sizes:
            history = synthetic_history(params, n, seed=n)
            reps = 1 if algorithm == "bayesianoptimization" and n >= 1000 else repeats  # a minute per batch
            ours = _time_ours(exp, history, batch, reps)
            row = {"algorithm": algorithm, "history": n, "batch": batch, "repeats": reps,
                   "space": "numeric" if algorithm == "cmaes" else "mixed",
                   "ours_median_s": median(ours), "ours_all_s": ours}
            if algorithm == "auto":
                row["auto_choice"] = auto_choice(exp.spec, n)
            p = _time_plain(algorithm, exp, history, batch, reps) if plain else None
            if p is not None:
                row["plain_optuna_median_s"] = median(p)
                row["plain_optuna_all_s"] = p
                row["ratio_ours_to_plain"] = median(ours) / median(p) if median(p) > 0 else None
            rows.append(row)
            print(f"latency {algorithm:22s} n={n:5d}: ours {median(ours)*1000:9.1f} ms"
                  + (f"  plain optuna {median(p)*1000:9.1f} ms" if p else ""), flush=True)
    doc = {"what": f"seconds for one suggest(exp, history, {batch}) (replay + batch) on a 6-dim mixed space; "
                   "plain Optuna asks the same batch from a persistent in-memory study holding the history",
           "maxTrialCount": max_trials, "repeats": repeats, "results": rows}
    write_result("latency", doc, out_dir)
    return doc
