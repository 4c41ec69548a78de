"""``suggest(experiment, history, count)``: the next batch of trials.

A pure function of its inputs: the same experiment (``random_state`` included) and the same
history give the same batch, in a local process, a KFP task or an Argo pod. Without a
``random_state`` setting the seed comes from the experiment's name, so runs are reproducible
unless you ask otherwise::

    from hp_components import load_experiment, suggest
    exp = load_experiment("examples/random-digits.yaml")
    batch = suggest(exp, history=[], count=3)
    print([(t.name, t.assignments) for t in batch])

The batch is empty when the algorithm has nothing left (a used-up grid) or the trial budget
``maxTrialCount`` is spent.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from hp_components.algorithms import derive_seed, find_algorithm, get_algorithm
from hp_components.experiment import Experiment
from hp_components.space import SearchSpace
from hp_components.status import remaining_slots
from hp_components.trials import Trial, trial_name

__all__ = ["suggest", "random_state"]


def random_state(experiment: Experiment) -> int:
    """The experiment's ``random_state`` setting, or a number derived from its name."""
    raw = experiment.spec.algorithm.settings().get("random_state")
    if raw not in (None, ""):
        return int(raw)
    return int.from_bytes(hashlib.sha256(experiment.name.encode()).digest()[:4], "big")


def _settings(experiment: Experiment) -> dict[str, str]:
    """The algorithm settings, with the effective ``random_state`` when the algorithm has that setting.

    Index-seeded designs (random points, the GP's Sobol start) then differ between experiments
    without a ``random_state`` as the name-derived seed promises, instead of all using 0.
    """
    settings = dict(experiment.spec.algorithm.settings())
    algo = find_algorithm(experiment.spec.algorithm.algorithm_name)
    if "random_state" in algo.settings and settings.get("random_state") in (None, ""):
        settings["random_state"] = str(random_state(experiment))
    return settings


def suggest(experiment: Experiment, history: Sequence[Trial], count: int, prior: Sequence[Trial] = ()) -> list[Trial]:
    """Up to ``count`` new trials (condition ``Created``), named after their place in the history.

    ``prior`` (warm start): finished trials of another experiment that the sampler learns from
    as if they were this one's; they count toward nothing. Those outside today's space are ignored.
    """
    spec = experiment.spec
    left = remaining_slots(experiment, history)
    if left is not None:
        count = min(count, left)
    if count <= 0:
        return []
    space = SearchSpace(spec.parameters)
    algo = get_algorithm(spec.algorithm.algorithm_name, _settings(experiment), spec)
    direction = spec.objective.type
    seed = derive_seed(random_state(experiment), len(history))
    batch = algo.suggest(space, [*prior, *history], count, direction=direction, seed=seed)
    return [
        Trial(
            name=trial_name(experiment.name, len(history) + i),
            assignments=space.assignments(internal),
            system_attrs=attrs,
        )
        for i, (internal, attrs) in enumerate(batch)
    ]
