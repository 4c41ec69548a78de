"""Search algorithms: Katib ``algorithmName`` -> one narrow interface, settings validated first.

Every algorithm is an :class:`Algorithm`: it declares its settings (Katib's names) and suggests
a batch of internal parameter values from the history. Optuna's samplers do the searching; the
history is replayed into an in-memory study each time, so a suggestion is a pure function of
(experiment, history, count) and runs the same in a local process, a KFP task or an Argo pod::

    from hp_components.algorithms import get_algorithm
    algo = get_algorithm("tpe", {"n_startup_trials": "5", "random_state": "7"})
    batch = algo.suggest(space, history, count=4, direction="maximize", seed=123)

| name | sampler | settings (Katib names) |
|---|---|---|
| ``random`` | Optuna ``RandomSampler`` | random_state |
| ``grid`` | every grid point in order, then done | random_state (unused) |
| ``tpe`` | ``TPESampler`` (constant liar) | random_state, n_startup_trials, n_ei_candidates, constant_liar; hyperopt's gamma, prior_weight, n_EI_candidates |
| ``multivariate-tpe`` | ``TPESampler(multivariate=True, group=True)`` | random_state, n_startup_trials, n_ei_candidates, constant_liar |
| ``cmaes`` | ``CmaEsSampler`` | random_state, sigma, restart_strategy, n_startup_trials |
| ``sobol`` | scrambled Sobol sequence (scipy) | random_state |
| ``bayesianoptimization`` | ``GPSampler`` on power-transformed values (needs the ``gp`` extra: PyTorch); ``base_estimator`` RF/ET/GBRT: scikit-optimize's tree ensembles (hp_components._trees, scikit-learn) | random_state, n_initial_points, base_estimator, acq_func, acq_optimizer |
| ``hyperband`` | Katib's Hyperband brackets over random points (hp_components._hyperband) | eta, r_l, resource_name, random_state |
| ``auto`` | chosen by :func:`auto_choice`: ``grid`` when the whole grid fits the budget, else the GP for the first 100 trials, then multivariate TPE | random_state |

Batches: trials still running are in the replayed study as RUNNING, and so is each trial
already asked in the batch, so TPE's constant liar and the GP's running-trial handling spread a
batch out instead of asking the same point eight times.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import importlib.util
import math
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np
import optuna
from optuna.trial import TrialState, create_trial

from hp_components import _persistent_gp
from hp_components.settings import Setting, choice_setting, float_setting, int_setting, read_settings
from hp_components.space import SearchSpace, grid_size
from hp_components.trials import Trial

if TYPE_CHECKING:
    from hp_components.spec import ExperimentSpec

__all__ = [
    "Algorithm",
    "ALGORITHMS",
    "auto_choice",
    "derive_seed",
    "find_algorithm",
    "Setting",
    "get_algorithm",
    "validate",
]

optuna.logging.set_verbosity(optuna.logging.ERROR)

#: a suggestion: internal parameter values and the sampler state to keep with the trial
Suggestion = tuple[dict[str, Any], dict[str, Any]]


# --------------------------------------------------------------------------- settings


def _bool(raw: str) -> bool:
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ValueError


_BOOL = Setting(_bool, "true or false")
_SEED = int_setting(0, 2**32 - 1)


def derive_seed(random_state: int, n_history: int) -> int:
    """The sampler seed for a suggestion after ``n_history`` trials: fixed for a given history."""
    digest = hashlib.sha256(f"{random_state}:{n_history}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


# --------------------------------------------------------------------------- the interface


class Algorithm:
    """A search algorithm. Subclasses set ``name`` and ``settings`` and implement :meth:`suggest`."""

    name: ClassVar[str]
    settings: ClassVar[dict[str, Setting]] = {"random_state": _SEED}
    #: Katib settings that are accepted so existing experiments load, but have no effect here
    accepted: ClassVar[dict[str, str]] = {}
    #: its model is slow to fit (seconds per point): while it computes, the local runner gives a slot
    #: that frees a random point (``suggest.filler``) instead of letting it wait
    fills_while_fitting: ClassVar[bool] = False

    def __init__(self, settings: dict[str, Any]):
        self.options = settings

    def suggest(
        self, space: "SearchSpace", history: Sequence[Trial], count: int, *, direction: str, seed: int
    ) -> list[Suggestion]:
        raise NotImplementedError

    @classmethod
    def check_settings(cls, values: dict[str, Any]) -> dict[str, str]:
        """Problems with the parsed settings taken together: setting name -> message (none by default)."""
        return {}

    def check_space(self, spec: "ExperimentSpec") -> list[str]:
        """Problems with the search space for this algorithm (messages for ``spec.algorithm``)."""
        return []

    @classmethod
    def runtime_problem(cls) -> str | None:
        """Why this algorithm cannot run in this Python environment, or None."""
        return None

    def problem(self) -> str | None:
        """Why this algorithm, with its settings, cannot run in this Python environment, or None
        (:meth:`runtime_problem` unless the settings choose a part that needs less)."""
        return self.runtime_problem()


class _SharedDistributions(optuna.trial.FrozenTrial):
    """A history trial that an in-memory study copies cheaply.

    ``Study.add_trials`` deep-copies every trial it is given, its distribution objects too: at
    1000 trials that was a third of a suggestion's own work. Distributions are immutable values
    (Optuna compares them by value), so the copy here shares them and copies the rest; the study
    stores a plain :class:`~optuna.trial.FrozenTrial`, as with any other trial::

        study.add_trials([_frozen(t, space) for t in history])
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> optuna.trial.FrozenTrial:
        return optuna.trial.FrozenTrial(
            number=self.number, state=self.state, value=None, values=self.values,
            datetime_start=self.datetime_start, datetime_complete=self.datetime_complete,
            params=dict(self.params), distributions=dict(self.distributions),
            user_attrs=copy.deepcopy(self.user_attrs, memo), system_attrs=copy.deepcopy(self.system_attrs, memo),
            intermediate_values=dict(self.intermediate_values), trial_id=-1)


def _frozen(trial: Trial, space: "SearchSpace") -> optuna.trial.FrozenTrial | None:
    """A history record as an Optuna trial; None when it cannot inform the sampler."""
    frozen = _frozen_trial(trial, space)
    if frozen is not None:
        frozen.__class__ = _SharedDistributions  # create_trial validated it; only its copying changes
    return frozen


def _frozen_trial(trial: Trial, space: "SearchSpace") -> optuna.trial.FrozenTrial | None:
    try:
        params = space.internal(trial.assignments)
    except (ValueError, TypeError):
        return None  # the spec changed since this trial ran; it still counts, but cannot guide
    c = trial.condition
    attrs = {k: v for k, v in trial.system_attrs.items()}
    inter = {s: v for s, v in trial.intermediate_values if math.isfinite(v)}
    if c == "Succeeded" and trial.objective_value is not None:
        return create_trial(state=TrialState.COMPLETE, value=trial.objective_value, params=params,
                            distributions=space.distributions, system_attrs=attrs, intermediate_values=inter)
    if c == "EarlyStopped":
        return create_trial(state=TrialState.PRUNED, params=params, distributions=space.distributions,
                            system_attrs=attrs, intermediate_values=inter)
    if c in ("Created", "Running"):
        return create_trial(state=TrialState.RUNNING, params=params, distributions=space.distributions,
                            system_attrs=attrs, intermediate_values=inter)
    if c in ("Failed", "MetricsUnavailable", "Killed"):
        return create_trial(state=TrialState.FAIL, params=params, distributions=space.distributions,
                            system_attrs=attrs)
    return None  # Interrupted: rerun under a new name, so it is not a point of its own


class OptunaAlgorithm(Algorithm):
    """An algorithm backed by an Optuna sampler, replaying the history into an in-memory study."""

    def sampler(self, seed: int, space: "SearchSpace") -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def suggest(self, space, history, count, *, direction, seed):  # type: ignore[override]
        with warnings.catch_warnings():
            # experimental-feature and independent-sampling warnings are expected here
            warnings.simplefilter("ignore")
            study = optuna.create_study(direction=direction, sampler=self.sampler(seed, space))
            study.add_trials([f for f in (_frozen(t, space) for t in history) if f is not None])
            for _ in range(count):
                study.ask(space.distributions)  # stays RUNNING: the next ask sees it
        asked = study.get_trials(deepcopy=False)[-count:] if count else []
        return [(dict(t.params), dict(t.system_attrs)) for t in asked]


class RandomSearch(Algorithm):
    """Optuna's ``RandomSampler``; trial ``i`` is drawn from a sampler seeded for ``i`` alone.

    The seed of a point depends on ``random_state`` and the point's place in the history only,
    so a run with ``parallelTrialCount`` > 1 gets the same trials however its batches were cut
    (one suggestion of 4, or 1 + 3 as slots free up); one at a time, the points are the ones
    earlier versions drew.
    """

    name = "random"

    def suggest(self, space, history, count, *, direction, seed):  # type: ignore[override]
        random_state = self.options.get("random_state", seed)
        return [(_random_point(space, derive_seed(random_state, len(history) + i)), {}) for i in range(count)]


def _random_point(space: "SearchSpace", seed: int) -> dict[str, Any]:
    """The first point Optuna's RandomSampler with ``seed`` draws from the space."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return dict(study.ask(space.distributions).params)


class HyperoptGamma:
    """hyperopt's ``gamma`` as Optuna's TPE ``gamma`` callable: ``ceil(gamma * sqrt(n))`` good trials, at most 25.

    That is how hyperopt's TPE (which serves Katib's ``tpe``) splits the history, and what
    Optuna's ``hyperopt_default_gamma`` computes for gamma 0.25::

        TPESampler(gamma=HyperoptGamma(0.25))
    """

    def __init__(self, gamma: float):
        self.gamma = gamma

    def __call__(self, n: int) -> int:
        return min(math.ceil(self.gamma * math.sqrt(n)), 25)


def _ei_candidates(n: int) -> int:
    """Optuna's ``n_ei_candidates`` for a Katib value: 0 (which Katib's Optuna service accepts and
    Optuna itself rejects at its first model-based ask) compares no candidates by expected
    improvement: the point is the one draw from the good trials' density, as with 1."""
    return max(n, 1)


class TPE(OptunaAlgorithm):
    """Optuna's ``TPESampler`` with the settings of both of Katib's ``tpe`` services.

    Katib's default katib-config serves ``tpe`` with hyperopt (pkg/suggestion/v1beta1/hyperopt/
    service.py: ``gamma`` in (0, 1), ``prior_weight`` > 0, ``n_EI_candidates`` > 0,
    ``random_state`` >= 0), its Optuna service with ``n_startup_trials``, ``n_ei_candidates`` and
    ``random_state`` (pkg/suggestion/v1beta1/optuna/service.py). Each maps onto Optuna's option:
    ``gamma`` -> :class:`HyperoptGamma`, ``prior_weight`` -> ``prior_weight``, ``n_EI_candidates``
    -> ``n_ei_candidates``.
    """

    name = "tpe"
    multivariate: ClassVar[bool] = False
    settings = {
        "random_state": _SEED,
        "n_startup_trials": int_setting(0),
        "n_ei_candidates": int_setting(0),
        "n_EI_candidates": int_setting(1),
        "gamma": Setting(float, "a number > 0 and < 1", lambda v: 0.0 < v < 1.0),
        "prior_weight": float_setting(0.0, low_open=True),
        "constant_liar": _BOOL,
    }

    @classmethod
    def check_settings(cls, values):
        if "n_ei_candidates" in values and "n_EI_candidates" in values:
            return {"n_EI_candidates": "give n_EI_candidates (hyperopt's name) or n_ei_candidates (Optuna's), not both"}
        return {}

    def sampler(self, seed, space):
        o = self.options
        gamma = o.get("gamma")
        with warnings.catch_warnings():
            # Optuna 4.9 deprecates its gamma and prior_weight (removed in 6, which pyproject.toml
            # excludes); Katib's hyperopt settings map onto them, and the user set Katib's, not Optuna's
            warnings.filterwarnings("ignore", message="`(gamma|prior_weight)` has been deprecated", category=FutureWarning)
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=o.get("n_startup_trials", 10),
                n_ei_candidates=_ei_candidates(o.get("n_ei_candidates", o.get("n_EI_candidates", 24))),
                gamma=HyperoptGamma(gamma) if gamma is not None else None,
                prior_weight=o.get("prior_weight"),
                constant_liar=o.get("constant_liar", True),
                multivariate=self.multivariate,
                group=self.multivariate,
            )


class MultivariateTPE(TPE):
    """Katib's ``multivariate-tpe`` (its Optuna service: ``n_startup_trials``, ``n_ei_candidates``
    >= 0, ``random_state``), plus ``constant_liar``."""

    name = "multivariate-tpe"
    multivariate = True
    settings = {k: TPE.settings[k] for k in ("random_state", "n_startup_trials", "n_ei_candidates", "constant_liar")}


class CMAES(OptunaAlgorithm):
    name = "cmaes"
    settings = {
        "random_state": _SEED,
        "sigma": float_setting(0.0, low_open=True),
        "restart_strategy": choice_setting("none", "ipop", "bipop"),
        "n_startup_trials": int_setting(0),
    }

    def sampler(self, seed, space):
        o = self.options
        restart = o.get("restart_strategy", "none")
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            sigma0=o.get("sigma"),
            n_startup_trials=o.get("n_startup_trials", 1),
            restart_strategy=None if restart == "none" else restart,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,
        )

    def check_space(self, spec):
        numeric = [p for p in spec.parameters if p.parameter_type in ("double", "int")]
        if len(numeric) < 2:
            return ["cmaes needs at least two double or int parameters; use tpe or bayesianoptimization"]
        return []


class GaussianProcess(OptunaAlgorithm):
    name = "bayesianoptimization"
    fills_while_fitting = True
    settings = {
        "random_state": _SEED,
        "n_initial_points": int_setting(0),
        "base_estimator": choice_setting("GP", "RF", "ET", "GBRT"),
        "acq_func": choice_setting("gp_hedge", "LCB", "EI", "PI", "EIps", "PIps"),
        "acq_optimizer": choice_setting("auto", "sampling", "lbfgs"),
    }
    accepted = {
        "acq_func": "with base_estimator GP, Optuna's GPSampler always uses log expected improvement",
        "acq_optimizer": "with base_estimator GP, Optuna's GPSampler optimizes its acquisition function its own way",
    }

    @classmethod
    def check_settings(cls, values):
        """RF/ET/GBRT (Katib's scikit-optimize surrogates, hp_components._trees) need scikit-learn and sampling."""
        if values.get("base_estimator", "GP") == "GP":
            return {}
        from hp_components import _trees

        missing = _trees.missing_dependency()
        if missing:
            return {"base_estimator": f"base_estimator {values['base_estimator']} {missing}"}
        if values.get("acq_optimizer") == "lbfgs":
            return {"acq_optimizer": f"lbfgs needs a differentiable surrogate; base_estimator {values['base_estimator']} "
                                     "is a tree ensemble, use acq_optimizer sampling or auto (as scikit-optimize requires)"}
        return {}

    def problem(self) -> str | None:
        """The tree surrogates (RF/ET/GBRT) run on scikit-learn (checked with the settings), not PyTorch."""
        return None if self.options.get("base_estimator", "GP") != "GP" else self.runtime_problem()

    def _tree_suggest(self, space, history, count, direction, seed) -> list[Suggestion]:
        """A batch from the tree-ensemble surrogate named by ``base_estimator`` (see hp_components._trees)."""
        from hp_components._trees import tree_suggest

        frozen = [f for f in (_frozen(t, space) for t in history) if f is not None]
        sign = 1.0 if direction == "minimize" else -1.0
        observed = [(f.params, sign * f.value) for f in frozen
                    if f.state == TrialState.COMPLETE and f.value is not None and math.isfinite(f.value)]
        pending = [f.params for f in frozen if f.state == TrialState.RUNNING]
        return tree_suggest(space, observed, pending, count, estimator=self.options["base_estimator"],
                            acq_func=self.options.get("acq_func", "gp_hedge"),
                            n_initial=self.options.get("n_initial_points", 10), n_placed=len(frozen), seed=seed)

    def sampler(self, seed, space, n_startup=None):
        return _ExploitingGPSampler(
            seed=seed,
            n_startup_trials=self.options.get("n_initial_points", 10) if n_startup is None else n_startup,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,
        )

    def suggest(self, space, history, count, *, direction, seed):  # type: ignore[override]
        """A sequential ask is Optuna's GPSampler; a parallel one is tuned for batches.

        Sequential (one point asked, nothing running): Optuna's GPSampler, its random initial points and
        its log-EI on the raw values. In one process asked one point at a time (the local runner at
        parallelTrialCount 1) it is one persistent ``GPSampler(seed=random_state)`` told each result
        (:mod:`hp_components._persistent_gp`): seed for seed the points Optuna asks, its kernel fit warm
        started; on a history it did not hand out (a pipeline step, a resumed run) it is a fresh
        ``GPSampler(seed=seed, n_startup_trials=n_initial_points)``. Measured (benchmarks/README.md, 48
        trials one at a time): the batch path below lost to plain GPSampler there (Hartmann6 median
        regret 0.22 against 0.009 on seeds 0-9); on seeds 100-104 (not the reported ones) the culprit was
        its Sobol initial design.

        Parallel: ``n_initial_points`` counts every point already placed (running ones too), not only results.

        Optuna's GPSampler samples at random until ``n_startup_trials`` trials have *completed*,
        so in batches of 8 with 10 initial points both of the first two batches (16 trials) were
        random. Here the initial design is the first ``n_initial_points`` points of the scrambled
        Sobol sequence of ``random_state`` (space-filling, and continued across batches), and it
        ends after that many points were *placed*: a batch fills it up, the rest of the batch comes
        from the GP fitted to the results so far (points still running are its pending points).
        The GP sees the values through :func:`_compress_bad_tail` (a power transform when the bad
        values have a heavy tail).

        When points are asked in parallel (several in this call, or others still running), one
        of them at a time is the optimum of the GP's posterior mean (marked ``EXPLOIT_ATTR``): the
        point the model believes best, which log-EI's batch (spread over the pending points,
        often to the corners of the space) would refine only late. Sequential asks take the
        GPSampler path above. Measured in batches of 8 (benchmarks/README.md): regret on the mixed function and
        Branin fell with it, Hartmann6 was about unchanged. When the best trial lies on a bound
        of the box, one more point of a parallel batch steps inside from it (:func:`_local_point`).
        """
        if self.options.get("base_estimator", "GP") != "GP":
            return self._tree_suggest(space, history, count, direction, seed)
        n_initial = self.options.get("n_initial_points", 10)
        frozen = [f for f in (_frozen(t, space) for t in history) if f is not None]
        if count == 1 and not any(f.state == TrialState.RUNNING for f in frozen):
            return [_persistent_gp.ask(frozen, space, direction, random_state=self.options.get("random_state", seed),
                                       seed=seed, n_initial=n_initial)]
        completed = sum(f.state == TrialState.COMPLETE for f in frozen)
        placed = len(frozen)
        initial = max(0, min(count, n_initial - placed)) if completed else count
        out: list[Suggestion] = [(p, {}) for p in _sobol_points(space, self.options.get("random_state", 0),
                                                                 placed, initial)]
        if initial == count:
            return out
        exploit = _wants_exploit(frozen, count - initial)
        local = _local_point(frozen, space, direction, count - initial - exploit, exploit, seed)
        extra: list[Suggestion] = [] if local is None else [(local, {LOCAL_ATTR: True})]
        frozen = _compress_bad_tail(frozen, direction)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp = self.sampler(seed, space, n_startup=min(n_initial, completed))
            study = optuna.create_study(direction=direction, sampler=gp)
            study.add_trials(frozen + [create_trial(state=TrialState.RUNNING, params=p, distributions=space.distributions)
                                       for p, _ in out + extra])
            n_model = count - len(out) - len(extra)
            for i in range(n_model):
                gp.exploit_next = exploit and i == 0
                study.ask(space.distributions)
        asked = [(dict(t.params), dict(t.system_attrs)) for t in study.get_trials(deepcopy=False)[-n_model:]] if n_model else []
        if exploit:
            asked[0][1][EXPLOIT_ATTR] = True
        return out + asked + extra

    @classmethod
    def runtime_problem(cls):
        if importlib.util.find_spec("torch") is None:
            return (
                "bayesianoptimization runs on Optuna's GPSampler, which needs PyTorch: "
                "pip install 'hp-components[gp]' (or use algorithmName tpe)"
            )
        return None


#: system attribute of a trial the GP placed at the optimum of its posterior mean
EXPLOIT_ATTR = "hp:gp_exploit"
#: system attribute of a trial placed as a local perturbation of the best trial
LOCAL_ATTR = "hp:gp_local"
#: scale of a local point's half-normal step inside the box, as a fraction of the parameter's range
LOCAL_SIGMA = 0.05
#: the step halves after each local point that did not improve on the best trial, down to this many times
LOCAL_SHRINK = 3


def _unit(x: float, d: Any) -> float:
    """``x`` as a fraction of the numeric distribution ``d``'s range (of its log range for log ones)."""
    lo, hi, v = (math.log(d.low), math.log(d.high), math.log(x)) if d.log else (d.low, d.high, x)
    return (v - lo) / (hi - lo)


def _numeric(d: Any) -> bool:
    return isinstance(d, (optuna.distributions.FloatDistribution, optuna.distributions.IntDistribution)) \
        and d.low < d.high


def _at_bounds(params: dict[str, Any], distributions: dict[str, Any]) -> list[str]:
    """The numeric parameters of ``params`` that lie on a bound of their range."""
    return [name for name, d in distributions.items()
            if _numeric(d) and min(_unit(params[name], d), 1.0 - _unit(params[name], d)) < 1e-9]


def _local_point(frozen: list[optuna.trial.FrozenTrial], space: "SearchSpace", direction: str,
                 n_free: int, exploit: bool, seed: int) -> dict[str, Any] | None:
    """The best trial stepped inside the box where it lies on a bound, or None when not wanted now.

    The GP's acquisition and its posterior mean both follow the model's slope: when the best
    region's bottom lies just inside an edge of the box, both put their points *on* the edge
    and nothing is ever placed just inside it (Hartmann6: 7 of 10 seeds ended with a
    coordinate at 0 where the basin's bottom is at 0.04). So when the best trial has numeric
    parameters on a bound, in parallel batches one point at a time (like the posterior-mean
    point; marked ``LOCAL_ATTR``, one in flight) is the best trial with those parameters
    moved inside by a half-normal step (``LOCAL_SIGMA`` of the normalised range, log-scaled
    for log parameters; an int or stepped value at least one step); every other value stays
    the best trial's. As in TuRBO, the step halves after each such point that did not improve
    on the best trial. Sequential asks (no parallelism) and best trials inside the box get none.
    """
    running = [f for f in frozen if f.state == TrialState.RUNNING]
    if n_free < 1 or not (exploit or running) or (n_free < 2 and not running):
        return None
    if any(f.system_attrs.get(LOCAL_ATTR) for f in running):
        return None
    done = [(i, f) for i, f in enumerate(frozen) if f.state == TrialState.COMPLETE and f.value is not None
            and math.isfinite(f.value)]
    if not done:
        return None
    sign = 1.0 if direction == "minimize" else -1.0
    best_i, best = min(done, key=lambda x: sign * x[1].value)
    edge = _at_bounds(best.params, space.distributions) if set(best.params) == set(space.distributions) else []
    if not edge:
        return None
    failed = sum(1 for i, f in done if i > best_i and f.system_attrs.get(LOCAL_ATTR))
    sigma = LOCAL_SIGMA * 0.5 ** min(failed, LOCAL_SHRINK)
    rng = np.random.default_rng(seed)
    point: dict[str, Any] = {}
    for name, d in space.distributions.items():
        x = best.params[name]
        if name not in edge:
            point[name] = x
            continue
        lo, hi = (math.log(d.low), math.log(d.high)) if d.log else (d.low, d.high)
        u = _unit(x, d) + rng.normal(0.0, sigma)
        u = -u if u < 0 else (2.0 - u if u > 1 else u)  # reflect: a coordinate at a bound steps inside
        v = lo + min(max(u, 0.0), 1.0) * (hi - lo)
        v = math.exp(v) if d.log else v
        if d.step is not None:
            v = d.low + round((v - d.low) / d.step) * d.step
            if v == x:  # rounded back onto the bound: one step inside instead
                v = x + d.step if x == d.low else x - d.step
        v = min(max(v, d.low), d.high)
        point[name] = int(round(v)) if isinstance(d, optuna.distributions.IntDistribution) else float(v)
    return point


def _wants_exploit(frozen: list[optuna.trial.FrozenTrial], n_model: int) -> bool:
    """True when the next model point should be the posterior mean's optimum.

    That is when points are asked in parallel (more than one model point now, or trials still
    running) and no running trial is such a point already: one at a time is in flight.
    """
    running = [f for f in frozen if f.state == TrialState.RUNNING]
    if n_model < 2 and not running:
        return False
    return not any(f.system_attrs.get(EXPLOIT_ATTR) for f in running)


class _ExploitingGPSampler(optuna.samplers.GPSampler):
    """Optuna's GPSampler that optimizes the posterior mean instead of log-EI when ``exploit_next`` is set.

    It overrides ``_optimize_acqf``, the hook Optuna documents for changing the acquisition
    optimization (without a compatibility promise): where Optuna's internals differ from those
    of Optuna 5.0, the sampler falls back to its own acquisition function.
    """

    exploit_next: bool = False

    def _optimize_acqf(self, acqf, best_params):  # type: ignore[no-untyped-def]
        if self.exploit_next:
            acqf = _posterior_mean(self, acqf) or acqf
        return super()._optimize_acqf(acqf, best_params)


def _posterior_mean(sampler: optuna.samplers.GPSampler, acqf: Any) -> Any:
    """The posterior mean of the GP the sampler just fitted, as an acquisition function (or None)."""
    try:
        from optuna._gp.acqf import UCB

        return UCB(gpr=sampler._gprs_cache_list[0], search_space=acqf.search_space, beta=0.0)
    except (ImportError, AttributeError, IndexError, TypeError):
        return None


def _compress_bad_tail(frozen: list[optuna.trial.FrozenTrial], direction: str) -> list[optuna.trial.FrozenTrial]:
    """The trials with their values power-transformed for the GP when that compresses the bad values.

    A GP with one stationary kernel fits a surface whose bad values are far larger than the
    differences near the optimum (a bowl, a loss that explodes at high learning rates) poorly:
    the large values dominate the fit and flatten the model where the search must refine. As
    in HEBO, the values (standardised, oriented so that lower is better) go through the
    Yeo-Johnson transform with its maximum-likelihood lambda. The transform is monotone, so the
    ranking and the best trial are unchanged. It is used only when lambda < 1, i.e. when it
    compresses the tail of bad values; lambda > 1 (a skew towards good values, as on Hartmann6)
    would stretch the bad side and squeeze the good one, which measured worse, so those values
    are kept as they are.
    """
    from scipy.stats import yeojohnson  # imported here: only the GP needs scipy's stats

    done = [i for i, f in enumerate(frozen) if f.state == TrialState.COMPLETE]
    sign = 1.0 if direction == "minimize" else -1.0
    loss = np.array([sign * frozen[i].value for i in done], dtype=float)
    if len(done) < 3 or not np.all(np.isfinite(loss)) or not loss.std() > 0:
        return frozen
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's lambda search may overflow on the way
        warped, lmbda = yeojohnson((loss - loss.mean()) / loss.std())
    if not (lmbda < 1 and np.all(np.isfinite(warped))):
        return frozen
    out = list(frozen)
    for i, value in zip(done, warped):
        f = frozen[i]
        out[i] = create_trial(state=TrialState.COMPLETE, value=sign * float(value), params=f.params,
                              distributions=f.distributions, system_attrs=f.system_attrs,
                              intermediate_values=f.intermediate_values)
    return out


def _sobol_points(space: "SearchSpace", random_state: int, skip: int, count: int) -> list[dict[str, Any]]:
    """Points ``skip`` .. ``skip + count - 1`` of the scrambled Sobol sequence of ``random_state``
    (SciPy's, drawn without importing scipy.stats: hp_components._sobol)."""
    if count <= 0:
        return []
    from hp_components._sobol import sobol

    return [space.from_unit(p) for p in sobol(len(space), random_state, skip, count)]


class Sobol(Algorithm):
    name = "sobol"

    def suggest(self, space, history, count, *, direction, seed):  # type: ignore[override]
        return [(p, {}) for p in _sobol_points(space, self.options.get("random_state", 0), len(history), count)]


class Grid(Algorithm):
    name = "grid"

    def suggest(self, space, history, count, *, direction, seed):  # type: ignore[override]
        seen = {tuple(sorted(t.assignments.items())) for t in history if t.condition != "Interrupted"}
        out: list[Suggestion] = []
        for point in space.grid():
            if len(out) == count:
                break
            if tuple(sorted(point.items())) not in seen:
                out.append((space.internal(point), {}))
        return out


class Hyperband(Algorithm):
    """Katib's ``hyperband``: brackets of random trials whose best are rerun with more of the
    resource parameter (the schedule and its Katib sources: hp_components._hyperband).

    Settings as Katib's (pkg/suggestion/v1beta1/hyperband/service.py): ``r_l`` (the largest
    resource), ``resource_name`` (the parameter the brackets assign), ``eta`` (default 3); plus
    ``random_state`` for the random points.
    """

    name = "hyperband"
    settings = {
        "random_state": _SEED,
        "eta": Setting(float, "a number > 1", lambda v: math.isfinite(v) and v > 1),
        "r_l": Setting(float, "a number >= 1 (the largest resource a trial gets)", lambda v: math.isfinite(v) and v >= 1),
        "resource_name": Setting(str, "the name of a parameter", lambda v: bool(v.strip())),
    }

    def check_space(self, spec):
        from hp_components import _hyperband as hb

        raw = spec.algorithm.settings()
        if "r_l" not in raw or "resource_name" not in raw:
            return ["hyperband needs the settings r_l and resource_name (as Katib requires)"]
        try:
            eta, r_l = float(raw.get("eta", "3")), float(raw["r_l"])
        except ValueError:
            return []  # reported with the setting's own path
        if not (eta > 1 and r_l >= 1):
            return []
        problems = []
        resource = next((p for p in spec.parameters if p.name == raw["resource_name"]), None)
        if resource is None:
            return [f"resource_name {raw['resource_name']!r} must be one of spec.parameters"]
        if resource.parameter_type not in ("int", "double"):
            return [f"resource_name {resource.name!r} must be an int or double parameter, not {resource.parameter_type}"]
        need = hb.max_parallel(eta, r_l)
        if spec.parallel_trial_count < need:
            problems.append(f"hyperband with eta {raw.get('eta', '3')} and r_l {raw['r_l']} runs rungs of up to {need} "
                            f"trials at once: spec.parallelTrialCount must be at least {need} (as Katib requires)")
        try:
            lo, hi = float(resource.feasible_space.min or "nan"), float(resource.feasible_space.max or "nan")
        except ValueError:
            return problems
        planned = hb.planned_resources(eta, r_l, spec.max_trial_count)
        outside = sorted({r for r in planned if not lo <= r <= hi})
        if outside:
            problems.append(f"the brackets set {resource.name} to {', '.join(map(str, outside))}, outside its feasibleSpace "
                            f"{resource.feasible_space.min}..{resource.feasible_space.max}: widen it (Katib would assign "
                            "the values anyway), or lower maxTrialCount or r_l")
        return problems

    def suggest(self, space, history, count, *, direction, seed):  # type: ignore[override]
        from hp_components import _hyperband as hb

        o = self.options
        resource = o["resource_name"]
        plan = hb.next_trials(hb.schedule(o.get("eta", 3.0), o["r_l"]), history, count, direction)
        random_state = o.get("random_state", seed)
        out: list[Suggestion] = []
        for i, (rung, source) in enumerate(plan):
            if source is None:
                assignments = space.assignments(_random_point(space, derive_seed(random_state, len(history) + i)))
            else:
                assignments = dict(source.assignments)
            assignments[resource] = str(rung.resource)
            out.append((space.internal(assignments), {hb.RUNG_ATTR: rung.tag}))
        return out


#: ``auto`` uses the Gaussian process while the history holds fewer trials than this: its cost grows
#: with the history (a batch of 8 takes seconds at 100 trials), multivariate TPE's stays under a second
AUTO_GP_MAX_TRIALS = 100


def auto_choice(spec: "ExperimentSpec", n_history: int = 0) -> str:
    """The algorithm ``auto`` runs for a suggestion after ``n_history`` trials, by this rule:

    1. ``grid`` when every parameter is int/categorical/discrete and the whole grid fits in
       ``maxTrialCount`` (exhaustive search beats any model);
    2. else, with PyTorch installed, ``bayesianoptimization`` (Optuna's GP, which handles
       categorical parameters too) while the history holds fewer than ``AUTO_GP_MAX_TRIALS``
       (100) trials, then ``multivariate-tpe`` from there on (the GP's cost grows with the
       history; TPE's suggest step stays well under a second at 1000 trials);
    3. ``multivariate-tpe`` without PyTorch.

    Why (benchmarks/README.md, 48 trials in batches of 8, median over 10 seeds): the GP reaches
    a regret 1000x lower than TPE on Branin (0.0001) and 10000x lower on a mixed
    float/int/categorical function (0.00002, Optuna's own GPSampler 0.001), and the lowest of
    all on Hartmann6 (0.14; multivariate TPE 0.48); TPE and random search fall far behind under
    batch parallelism.
    """
    budget = spec.max_trial_count
    if all(p.parameter_type != "double" for p in spec.parameters) and budget is not None:
        if grid_size(spec.parameters) <= budget:
            return "grid"
    if n_history < AUTO_GP_MAX_TRIALS and GaussianProcess.runtime_problem() is None:
        return "bayesianoptimization"
    return "multivariate-tpe"


class Auto(Algorithm):
    name = "auto"

    def __init__(self, settings: dict[str, Any], spec: "ExperimentSpec | None" = None):
        super().__init__(settings)
        self.spec = spec
        choice = auto_choice(spec) if spec is not None else "multivariate-tpe"
        self.choice = choice  # the first suggestion's algorithm
        self.inner = ALGORITHMS[choice](dict(settings))

    def problem(self) -> str | None:
        return self.inner.problem()

    @property
    def fills_while_fitting(self) -> bool:  # type: ignore[override]
        return self.inner.fills_while_fitting

    def suggest(self, space, history, count, *, direction, seed):  # type: ignore[override]
        choice = auto_choice(self.spec, len(history)) if self.spec is not None else self.choice
        inner = self.inner if choice == self.choice else ALGORITHMS[choice](dict(self.options))
        return inner.suggest(space, history, count, direction=direction, seed=seed)


ALGORITHMS: dict[str, type[Algorithm]] = {
    a.name: a for a in (RandomSearch, Grid, TPE, MultivariateTPE, CMAES, Sobol, GaussianProcess, Hyperband, Auto)
}

ENTRY_POINT_GROUP = "hp_components.algorithms"


class PluginError(ValueError):
    """A user algorithm that cannot be loaded."""


def find_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class for ``algorithmName``: a built-in, an installed plugin, or a dotted path.

    Plugins register under the entry point group ``hp_components.algorithms`` (name -> class);
    a dotted path (``package.module:Class`` or ``package.module.Class``) is imported, with the
    current folder on the import path as ``python -m`` would have it. Raises :class:`PluginError`.
    """
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                return _check_plugin(ep.load(), name)
            except Exception as e:  # noqa: BLE001 - any failure of user code is reported, not raised
                raise PluginError(f"the plugin {name!r} ({ep.value}) failed to load: {e}") from None
    if "." not in name and ":" not in name:
        raise PluginError(f"{name!r} is not supported; use one of {', '.join(ALGORITHMS)}, an installed plugin "
                          f"(entry point group {ENTRY_POINT_GROUP}) or a dotted path like my_package.module:MyAlgorithm")
    module_name, _, attr = name.partition(":") if ":" in name else name.rpartition(".")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001
        raise PluginError(f"cannot import {module_name!r} for algorithm {name!r}: {e}") from None
    if not hasattr(module, attr):
        raise PluginError(f"module {module_name!r} has no {attr!r} (algorithm {name!r})")
    return _check_plugin(getattr(module, attr), name)


def _check_plugin(obj: Any, name: str) -> type[Algorithm]:
    if not (isinstance(obj, type) and issubclass(obj, Algorithm)):
        raise PluginError(f"{name!r} is not a subclass of hp_components.algorithms.Algorithm")
    if obj.suggest is Algorithm.suggest:
        raise PluginError(f"{name!r} does not implement suggest()")
    return obj


def validate(name: str, settings: dict[str, str], spec: "ExperimentSpec | None", path: str = "spec.algorithm") -> list[tuple[str, str]]:
    """Problems with an algorithm name and its settings, each with its field path."""
    try:
        algo = find_algorithm(name)
    except PluginError as e:
        return [(f"{path}.algorithmName", str(e))]
    values, problems = read_settings(algo.settings, settings, path, name)
    if not problems:
        where = {key: i for i, key in enumerate(settings)}
        problems += [(f"{path}.algorithmSettings[{where[key]}].value", msg)
                     for key, msg in algo.check_settings(values).items()]
    if spec is not None and spec.parameters:
        try:
            problems += [(f"{path}.algorithmName", msg) for msg in algo(dict()).check_space(spec)]
        except Exception:  # noqa: BLE001 - a parameter problem, reported with its own path
            pass
    return problems


def get_algorithm(name: str, settings: dict[str, str], spec: "ExperimentSpec | None" = None) -> Algorithm:
    """The algorithm ``name`` with its settings parsed. ValueError when either is invalid."""
    problems = validate(name, settings, None)
    if problems:
        raise ValueError("; ".join(f"{p}: {m}" for p, m in problems))
    algo = find_algorithm(name)
    values, _ = read_settings(algo.settings, settings, "", name)
    if algo is Auto:
        return Auto(values, spec)
    return algo(values)
