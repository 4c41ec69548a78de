"""One persistent Optuna ``GPSampler`` per sequential experiment in this process.

A sequential ask (one point, nothing running) of ``bayesianoptimization`` is Optuna's GPSampler.
Made fresh for every ask from the history, as a pipeline step must make it, it loses what a
persistent sampler keeps between asks: its random stream (the initial design) and the GP's fitted
kernel parameters, the next fit's starting point (benchmarks/gp_seeds.py compares both). A
long-lived process (the local runner, a notebook) asks again and again; here it keeps one study
and its sampler per experiment and tells it each result as it comes back, so a run of
``random_state: s`` from an empty history asks exactly what ``GPSampler(seed=s)`` asks in
``study.ask``/``study.tell`` (the same points, seed for seed, until ``unique_batch`` replaces one)::

    point = ask(frozen, space, "minimize", random_state=7, seed=derived, n_initial=10)

A kept sampler answers a history that is the one it was last asked about plus one trial: the
point it handed out, whose result it is told, or the point ``unique_batch`` put in its place (the
handed-out point is then told failed, the replacement added as it is); a run resumed in the same
process continues so, and the history it last answered, asked again, gets the same point. Any other
history (a pipeline step's, a run resumed by a new process) starts a new sampler seeded ``seed`` on
the whole history: exactly a fresh ``GPSampler(seed=seed)``.
"""

from __future__ import annotations

import collections
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hp_components.space import SearchSpace

#: samplers kept (the least recently used is dropped): one per experiment a process tunes at a time
MAX_KEPT = 8

_Key = tuple[Any, ...]


@dataclass
class _Kept:
    config: _Key
    study: optuna.Study
    #: the history last answered, each trial as (state, value, point key)
    seen: list[_Key] = field(default_factory=list)
    #: the point handed out for it: its study trial number, params and system attributes
    pending: tuple[int, dict[str, Any], dict[str, Any]] | None = None


_kept: collections.OrderedDict[int, _Kept] = collections.OrderedDict()
_lock = threading.Lock()


def _key(trial: FrozenTrial, space: SearchSpace) -> _Key:
    return trial.state, repr(trial.value if trial.state == TrialState.COMPLETE else None), space.key(trial.params)


def _follows(kept: _Kept, keys: list[_Key]) -> bool:
    """Whether ``keys`` (a history) is what ``kept`` saw plus one trial: the point it handed out, or what
    ``unique_batch`` put in its place."""
    return len(keys) == len(kept.seen) + 1 and keys[:-1] == kept.seen


def _tell(kept: _Kept, frozen: list[FrozenTrial], keys: list[_Key], space: SearchSpace) -> None:
    """Tell ``kept`` the history's new trial: the result of the point it handed out, or, when that point
    was replaced, that it failed and the replacement as it is."""
    (number, params, _), last = kept.pending, frozen[-1]  # type: ignore[misc]
    if keys[-1][2] != space.key(params):
        kept.study.tell(number, state=TrialState.FAIL)
        kept.study.add_trial(last)
    elif last.state == TrialState.COMPLETE:
        kept.study.tell(number, last.value)
    else:
        kept.study.tell(number, state=last.state)
    kept.seen = keys


def ask(frozen: list[FrozenTrial], space: SearchSpace, direction: str, *, random_state: int, seed: int,
        n_initial: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The next point (internal params, system attributes) of the persistent GPSampler for this history.

    ``frozen``: the history as Optuna trials, none running. ``seed``: the sampler's seed when this
    history does not continue a kept one and is not empty (an empty one takes ``random_state``).
    """
    config = (direction, n_initial, random_state, tuple(sorted((n, repr(d)) for n, d in space.distributions.items())))
    keys = [_key(t, space) for t in frozen]
    with _lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = next((k for k in reversed(_kept.values()) if k.config == config and k.pending is not None
                     and (k.seen == keys or _follows(k, keys))), None)
        if kept is not None and kept.seen == keys:  # the same history asked twice (a suggestion asked for again)
            _, params, attrs = kept.pending  # type: ignore[misc]
            return dict(params), dict(attrs)
        if kept is None:
            sampler = optuna.samplers.GPSampler(seed=seed if frozen else random_state,
                                                n_startup_trials=max(n_initial, 1), warn_independent_sampling=False)
            kept = _Kept(config, optuna.create_study(direction=direction, sampler=sampler))
            kept.study.add_trials(frozen)
            kept.seen = keys
        else:
            _tell(kept, frozen, keys, space)
        kept.study.ask(space.distributions)
        asked = kept.study.get_trials(deepcopy=False)[-1]
        kept.pending = asked.number, dict(asked.params), dict(asked.system_attrs)
        _kept[id(kept)] = kept
        _kept.move_to_end(id(kept))
        while len(_kept) > MAX_KEPT:
            _kept.popitem(last=False)
        return dict(asked.params), dict(asked.system_attrs)


def forget() -> None:
    """Drop every kept sampler (tests; a process that wants each ask fresh)."""
    with _lock:
        _kept.clear()
