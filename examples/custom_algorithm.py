"""A search algorithm of your own, plugged in without forking hp-components.

``HillClimb`` samples at random until it has ``n_startup_trials`` results, then proposes points
around the best trial so far, a Gaussian step (``step``: a fraction of each range) away. Use it
by dotted path in the experiment (see ``custom-algorithm-digits.yaml``)::

    algorithm:
      algorithmName: examples.custom_algorithm:HillClimb
      algorithmSettings:
        - {name: step, value: "0.1"}

or register it for ``algorithmName: hillclimb`` from your package's ``pyproject.toml``::

    [project.entry-points."hp_components.algorithms"]
    hillclimb = "my_package.custom_algorithm:HillClimb"

The interface is the built-ins' own: declare ``settings`` (validated before anything runs, every
problem reported with its field path) and implement ``suggest``, which returns for each new
trial its parameter values in the search space's *internal* form (``space.distributions``) and
any state to keep with the trial (``{}`` here). On KFP and Argo the suggest step runs in the
hp-components image: build yours ``FROM`` it with your package installed and pass ``--image``.
"""

from __future__ import annotations

import math
import random
from typing import Any, Sequence

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hp_components.algorithms import Algorithm, Setting
from hp_components.space import SearchSpace
from hp_components.trials import Trial


class HillClimb(Algorithm):
    name = "hillclimb"
    settings = {
        "random_state": Setting(int, "a whole number >= 0", lambda v: v >= 0),
        "n_startup_trials": Setting(int, "a whole number >= 1", lambda v: v >= 1),
        "step": Setting(float, "a number in (0, 1]", lambda v: 0 < v <= 1),
    }

    def suggest(self, space: SearchSpace, history: Sequence[Trial], count: int, *, direction: str,
                seed: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        rng = random.Random(seed)
        done = [t for t in history if t.condition == "Succeeded" and t.objective_value is not None]
        if len(done) < self.options.get("n_startup_trials", 4):
            return [(space.from_unit([rng.random() for _ in range(len(space))]), {}) for _ in range(count)]
        sign = -1 if direction == "maximize" else 1
        best = space.internal(min(done, key=lambda t: sign * t.objective_value).assignments)
        return [(self._neighbour(space, best, rng), {}) for _ in range(count)]

    def _neighbour(self, space: SearchSpace, point: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        step = self.options.get("step", 0.1)
        out = {}
        for name, dist in space.distributions.items():
            value = point[name]
            if isinstance(dist, CategoricalDistribution):
                out[name] = rng.choice(dist.choices) if rng.random() < step else value
                continue
            assert isinstance(dist, (FloatDistribution, IntDistribution))
            lo, hi = (math.log(dist.low), math.log(dist.high)) if dist.log else (dist.low, dist.high)
            x = (math.log(value) if dist.log else value) + rng.gauss(0, step * (hi - lo))
            x = min(max(x, lo), hi)
            x = math.exp(x) if dist.log else x
            if isinstance(dist, IntDistribution):
                x = int(min(max(round((x - dist.low) / dist.step) * dist.step + dist.low, dist.low), dist.high))
            elif dist.step is not None:
                x = min(max(dist.low + round((x - dist.low) / dist.step) * dist.step, dist.low), dist.high)
            out[name] = x
        return out
