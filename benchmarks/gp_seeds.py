"""Plain Optuna only: does a GPSampler made fresh for every ask (as a pipeline step makes it, from the
history) search as well as one persistent sampler? Sequential, 48 trials, regret per seed.

Variants (``--variants``):

* ``persistent``: one ``GPSampler(seed=s)`` and one study for all 48 asks (the quality benchmark's optuna-gp);
* ``fresh``: a new ``GPSampler(seed=s * 100003 + n)`` and a study rebuilt from the history for ask n;
* ``sha``: the same with ``hp_components.algorithms.derive_seed(s, n)``, the seed the suggest step uses;
* ``rng``: fresh samplers sharing the persistent one's random streams (Optuna's private ``_rng`` and
  ``_independent_sampler``): the same initial random design as ``persistent``;
* ``gprng``: fresh samplers sharing only the GP's stream (``_rng``), each with its own random design.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.gp_seeds hartmann6 persistent,sha --seeds 10-29
"""

from __future__ import annotations

import argparse
import statistics
import warnings

import optuna

from benchmarks.common import experiment
from benchmarks.functions import PROBLEMS
from hp_components.algorithms import derive_seed
from hp_components.space import SearchSpace

optuna.logging.set_verbosity(optuna.logging.ERROR)


def run(problem, seed: int, variant: str, trials: int = 48) -> float:
    """The simple regret after ``trials`` sequential asks."""
    space = SearchSpace(experiment("p", problem.parameters, algorithm="random", max_trials=1).spec.parameters)
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if variant == "persistent":
            study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=seed))
            for _ in range(trials):
                t = study.ask(space.distributions)
                v = problem.fn(space.assignments(t.params))
                study.tell(t, v)
                best = v if best is None else min(best, v)
            return best - problem.optimum
        keep, frozen = optuna.samplers.GPSampler(seed=seed), []
        for n in range(trials):
            s = optuna.samplers.GPSampler(seed=derive_seed(seed, n) if variant == "sha" else seed * 100003 + n)
            if variant in ("rng", "gprng"):
                s._rng = keep._rng
            if variant == "rng":
                s._independent_sampler = keep._independent_sampler
            study = optuna.create_study(sampler=s)
            study.add_trials(frozen)
            t = study.ask(space.distributions)
            v = problem.fn(space.assignments(t.params))
            study.tell(t, v)
            frozen.append(study.trials[-1])
            best = v if best is None else min(best, v)
    return best - problem.optimum


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("function", choices=sorted(PROBLEMS))
    ap.add_argument("variants")
    ap.add_argument("--seeds", default="0-9", help="FIRST-LAST")
    args = ap.parse_args(argv)
    first, last = (int(x) for x in args.seeds.split("-"))
    for v in args.variants.split(","):
        regrets = [run(PROBLEMS[args.function], seed, v) for seed in range(first, last + 1)]
        print(args.function, v, "median", statistics.median(regrets), [f"{r:.3g}" for r in regrets], flush=True)


if __name__ == "__main__":
    main()
