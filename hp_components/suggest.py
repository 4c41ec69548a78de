"""``suggest(experiment, history, count)``: the next batch of trials.

A pure function of its inputs: the same experiment (``random_state`` included) and the same
history give the same batch, in a local process, a KFP task or an Argo pod. Without a
``random_state`` setting the seed comes from the experiment's name, so runs are reproducible
unless you ask otherwise. One exception: ``bayesianoptimization`` asked one point at a time, nothing
running, keeps one GPSampler per run within a process (:mod:`hp_components._persistent_gp`), so
the history it handed out itself continues that sampler's stream; a run from an empty history is
still reproducible, and any other history gets a fresh sampler as everywhere else::

    from hp_components import load_experiment, suggest
    exp = load_experiment("examples/random-digits.yaml")
    batch = suggest(exp, history=[], count=3)
    print([(t.name, t.assignments) for t in batch])

The batch is empty when the algorithm has nothing left (a used-up grid) or the trial budget
``maxTrialCount`` is spent. No point is suggested twice while the space has untried points: a
point the algorithm repeats (one already in the history, running ones included, or earlier in the
same batch) is replaced here, for every algorithm (see :func:`unique_batch`).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from typing import Any, Iterator, Sequence

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hp_components.algorithms import Suggestion, derive_seed, find_algorithm, get_algorithm
from hp_components.experiment import Experiment
from hp_components.space import SearchSpace
from hp_components.status import remaining_slots
from hp_components.trials import Trial, trial_name

__all__ = ["suggest", "filler", "random_state", "unique_batch", "REPLACED_ATTR", "FILLER_ATTR"]

#: system attribute of a trial that replaces a point the algorithm suggested again
REPLACED_ATTR = "hp:replaced_duplicate"
#: system attribute of a random trial that took a slot while the algorithm was still computing
FILLER_ATTR = "hp:filler"
#: random draws tried for an untried point before the space is enumerated (when it is finite)
RANDOM_TRIES = 64
#: a finite space up to this many points is enumerated to find its untried ones
ENUMERATE_MAX = 200_000


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
    batch = unique_batch(space, history, batch, seed)
    return [
        Trial(
            name=trial_name(experiment.name, len(history) + i),
            assignments=space.assignments(internal),
            system_attrs=attrs,
        )
        for i, (internal, attrs) in enumerate(batch)
    ]


def filler(experiment: Experiment, history: Sequence[Trial], count: int) -> list[Trial]:
    """Up to ``count`` random trials (marked ``FILLER_ATTR``, untried points as :func:`unique_batch`
    gives them) for slots that would otherwise wait for a slow model: the local runner hands them
    out when a slot frees while the next suggestion is still being computed. Seeded by the
    experiment's ``random_state`` and the history's length, like :func:`suggest`::

        batch = filler(exp, history, 1)
    """
    left = remaining_slots(experiment, history)
    if left is not None:
        count = min(count, left)
    if count <= 0:
        return []
    space = SearchSpace(experiment.spec.parameters)
    seed = derive_seed(random_state(experiment) ^ 0x5A5A5A5A, len(history))
    rng = random.Random(seed)
    batch: list[Suggestion] = [(space.from_unit([rng.random() for _ in range(len(space))]), {FILLER_ATTR: True})
                               for _ in range(count)]
    return [Trial(name=trial_name(experiment.name, len(history) + i), assignments=space.assignments(internal),
                  system_attrs=attrs)
            for i, (internal, attrs) in enumerate(unique_batch(space, history, batch, seed))]


Key = tuple[str, ...]


def _tried(space: SearchSpace, history: Sequence[Trial]) -> set[Key]:
    """The points of the history as the trials received them (an ``Interrupted`` trial is rerun
    under a new name, so its point is not taken; one outside today's space cannot be suggested)."""
    keys = set()
    for t in history:
        if t.condition == "Interrupted":
            continue
        try:
            keys.add(space.key(space.internal(t.assignments)))
        except (ValueError, TypeError):
            continue
    return keys


def _neighbours(space: SearchSpace, internal: dict[str, Any], rng: random.Random) -> Iterator[dict[str, Any]]:
    """The point with one parameter moved to a next value: an adjacent int or step, another
    choice, a double by 1% of its range (of its log range for log ones); in random order."""
    moves: list[tuple[str, Any]] = []
    for name, d in space.distributions.items():
        x = internal[name]
        if isinstance(d, CategoricalDistribution):
            moves += [(name, c) for c in d.choices if c != x]
        elif isinstance(d, IntDistribution):
            moves += [(name, v) for v in (x - d.step, x + d.step) if d.low <= v <= d.high]
        elif isinstance(d, FloatDistribution):
            if d.step is not None:
                moves += [(name, v) for v in (x - d.step, x + d.step) if d.low - 1e-12 <= v <= d.high + 1e-12]
            elif d.log:
                span = math.log(d.high) - math.log(d.low)
                moves += [(name, math.exp(v)) for v in (math.log(x) - span / 100, math.log(x) + span / 100)
                          if math.log(d.low) <= v <= math.log(d.high)]
            else:
                span = d.high - d.low
                moves += [(name, v) for v in (x - span / 100, x + span / 100) if d.low <= v <= d.high]
    rng.shuffle(moves)
    for name, value in moves:
        yield {**internal, name: value}


def _finite(space: SearchSpace) -> bool:
    return all(not isinstance(d, FloatDistribution) or d.step is not None for d in space.distributions.values())


def _replacement(space: SearchSpace, internal: dict[str, Any], taken: set[Key], rng: random.Random) -> dict[str, Any] | None:
    """An untried point for a repeated one: a neighbour, else a random point, else (a finite space)
    any untried point; None when every point of the space was tried."""
    for point in _neighbours(space, internal, rng):
        if space.key(point) not in taken:
            return point
    for _ in range(RANDOM_TRIES):
        point = space.from_unit([rng.random() for _ in range(len(space))])
        if space.key(point) not in taken:
            return point
    if _finite(space) and math.prod(len(_values(d)) for d in space.distributions.values()) <= ENUMERATE_MAX:
        names = list(space.distributions)
        for combo in itertools.product(*(_values(d) for d in space.distributions.values())):
            point = dict(zip(names, combo))
            if space.key(point) not in taken:
                return point
    return None


def _values(d: Any) -> list[Any]:
    """Every internal value of a finite distribution."""
    if isinstance(d, CategoricalDistribution):
        return list(d.choices)
    if isinstance(d, IntDistribution) and not d.log:
        return list(range(d.low, d.high + 1, d.step))
    if isinstance(d, IntDistribution):
        return list(range(d.low, d.high + 1))
    n = int(round((d.high - d.low) / d.step)) + 1
    return [d.low + i * d.step for i in range(n)]


def unique_batch(space: SearchSpace, history: Sequence[Trial], batch: Sequence[Suggestion], seed: int) -> list[Suggestion]:
    """The batch with every repeated point replaced by an untried one while the space has any.

    A point is repeated when a trial of the history already has it (whatever its condition but
    ``Interrupted``: running and failed trials too) or an earlier point of the batch does. Its
    replacement is the first untried of: the point with one parameter moved to a next value
    (the region the algorithm chose), a random point, and, in a finite space, every point in
    order. It keeps the suggestion's sampler state and is marked ``REPLACED_ATTR``. Katib's
    suggestion services do not check this (skopt's ``ask(n_points)`` and Optuna's ``ask`` may
    return a point again: pkg/suggestion/v1beta1/skopt/base_service.py ``getSuggestions``,
    optuna/base_service.py ``_ask``, which keeps a list of trial numbers per assignment for that
    reason); here a slot never reruns a configuration whose result is known or coming::

        batch = unique_batch(space, history, algo.suggest(space, history, 4, direction="minimize", seed=1), seed=1)
    """
    taken = _tried(space, history)
    rng = random.Random(seed)
    out: list[Suggestion] = []
    for internal, attrs in batch:
        key = space.key(internal)
        if key in taken:
            point = _replacement(space, internal, taken, rng)
            if point is not None:
                internal, attrs = space.internal(space.assignments(point)), {**attrs, REPLACED_ATTR: True}
                key = space.key(internal)
        taken.add(key)
        out.append((internal, attrs))
    return out
