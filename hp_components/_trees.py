"""Tree-ensemble Bayesian optimization: ``bayesianoptimization`` with ``base_estimator`` RF, ET or GBRT.

Katib serves ``bayesianoptimization`` with scikit-optimize (pkg/suggestion/v1beta1/skopt/), whose
``Optimizer`` with a tree ``base_estimator`` fits a scikit-learn ensemble to the results and picks
the best of many random candidates by an acquisition function. This module does the same with the
regressors scikit-optimize builds (``cook_estimator``):

| base_estimator | surrogate | mean and spread |
|---|---|---|
| ``RF`` | ``RandomForestRegressor(n_estimators=100, min_samples_leaf=3)`` | mean and std over the trees |
| ``ET`` | ``ExtraTreesRegressor(n_estimators=100, min_samples_leaf=3)`` | mean and std over the trees |
| ``GBRT`` | ``GradientBoostingRegressor(loss="quantile", n_estimators=30)`` at 0.16, 0.5, 0.84 | median, half the 16-84 % spread |

The acquisition (``acq_func``, on the loss, lower is better) is scikit-optimize's: ``EI`` and
``PI`` with ``xi=0.01``, ``LCB`` with ``kappa=1.96``; ``EIps``/``PIps`` (per second) act as
EI/PI, since trials here report no run time to the model; ``gp_hedge`` (the default) draws one of
EI, PI and LCB per point with equal probability, which is scikit-optimize's portfolio before its
gains move (the gains are not kept across suggestions here). The acquisition is optimized by
``sampling`` (10000 random candidates), which is all scikit-optimize does for trees: ``lbfgs``
needs gradients and is refused at validation. A batch is filled as scikit-optimize's
``ask(n_points)`` does (``cl_min``): each point chosen, and each trial still running, counts as a
result equal to the best loss so far when the ensemble is refitted for the next point::

    from hp_components._trees import tree_suggest
    batch = tree_suggest(space, observed, pending, count=4, estimator="RF", acq_func="EI",
                         n_initial=10, n_placed=12, seed=3)

scikit-learn is needed (``pip install 'hp-components[examples]'``); :func:`missing_dependency`
says so at validation time.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any, Sequence

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

__all__ = ["ESTIMATORS", "tree_suggest", "missing_dependency", "N_CANDIDATES"]

ESTIMATORS = ("RF", "ET", "GBRT")
#: random candidates per point (scikit-optimize's ``n_points`` for ``acq_optimizer="sampling"``)
N_CANDIDATES = 10_000
_XI = 0.01
_KAPPA = 1.96
#: system attribute: the acquisition function that placed a trial
ACQ_ATTR = "hp:acq_func"


def missing_dependency() -> str | None:
    """Why tree surrogates cannot run here (no scikit-learn), or None."""
    if importlib.util.find_spec("sklearn") is None:
        return ("needs scikit-learn, which is not installed: pip install 'hp-components[examples]' "
                "(or use base_estimator GP)")
    return None


def _encode(points: Sequence[dict[str, Any]], distributions: dict[str, BaseDistribution]) -> np.ndarray:
    """Internal values -> features: numbers as a fraction of their (log) range, categories one-hot."""
    columns: list[np.ndarray] = []
    for name, d in distributions.items():
        values = [p[name] for p in points]
        if isinstance(d, CategoricalDistribution):
            index = {c: i for i, c in enumerate(d.choices)}
            onehot = np.zeros((len(points), len(d.choices)))
            for row, v in enumerate(values):
                onehot[row, index[v]] = 1.0
            columns.append(onehot)
            continue
        assert isinstance(d, (FloatDistribution, IntDistribution))
        x = np.asarray(values, dtype=float)
        lo, hi = float(d.low), float(d.high)
        if d.log:
            x, lo, hi = np.log(x), math.log(lo), math.log(hi)
        columns.append(((x - lo) / (hi - lo) if hi > lo else np.zeros_like(x))[:, None])
    return np.hstack(columns) if columns else np.zeros((len(points), 0))


def _ensemble(estimator: str, seed: int) -> Any:
    from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor

    if estimator == "RF":
        return RandomForestRegressor(n_estimators=100, min_samples_leaf=3, random_state=seed)
    if estimator == "ET":
        return ExtraTreesRegressor(n_estimators=100, min_samples_leaf=3, random_state=seed)
    return [GradientBoostingRegressor(loss="quantile", alpha=q, n_estimators=30, random_state=seed)
            for q in (0.16, 0.5, 0.84)]


def _fit_predict(estimator: str, X: np.ndarray, y: np.ndarray, C: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The surrogate's mean and spread at the candidates ``C`` after fitting ``(X, y)``."""
    model = _ensemble(estimator, seed)
    if isinstance(model, list):
        low, mid, high = (m.fit(X, y).predict(C) for m in model)
        return mid, np.maximum((high - low) / 2.0, 0.0)
    model.fit(X, y)
    per_tree = np.stack([t.predict(C) for t in model.estimators_])
    return per_tree.mean(axis=0), per_tree.std(axis=0)


def _acquisition(kind: str, mu: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """Higher is better; ``mu``/``best`` are losses (lower is better)."""
    if kind == "LCB":
        return -(mu - _KAPPA * std)
    from scipy.stats import norm

    safe = np.where(std > 0, std, 1e-12)
    improvement = best - mu - _XI
    z = improvement / safe
    if kind == "PI":
        return np.where(std > 0, norm.cdf(z), (improvement > 0).astype(float))
    return np.where(std > 0, improvement * norm.cdf(z) + safe * norm.pdf(z), np.maximum(improvement, 0.0))


def _member(acq_func: str, rng: np.random.Generator) -> str:
    if acq_func == "gp_hedge":
        return ("EI", "PI", "LCB")[int(rng.integers(3))]
    return {"EIps": "EI", "PIps": "PI"}.get(acq_func, acq_func)


def tree_suggest(
    space: Any,
    observed: Sequence[tuple[dict[str, Any], float]],
    pending: Sequence[dict[str, Any]],
    count: int,
    *,
    estimator: str,
    acq_func: str,
    n_initial: int,
    n_placed: int,
    seed: int,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``count`` points (internal values, system attributes) from a tree-ensemble surrogate.

    ``observed`` holds (internal values, loss) of finished trials, ``pending`` the internal values
    of trials still running, ``n_placed`` every trial placed so far. The first ``n_initial``
    points placed are random (scikit-optimize's initial design), and so is every point while no
    result is known; with ``n_initial`` 0 the ensemble models from the first result on.
    """
    rng = np.random.default_rng(seed)
    distributions = space.distributions
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    X_obs = _encode([p for p, _ in observed], distributions)
    y_obs = np.asarray([v for _, v in observed], dtype=float)
    liars = list(pending)
    for i in range(count):
        if n_placed + i < n_initial or len(observed) == 0:
            out.append((space.from_unit(rng.random(len(space))), {}))
            liars.append(out[-1][0])
            continue
        candidates = [space.from_unit(u) for u in rng.random((N_CANDIDATES, len(space)))]
        best = float(y_obs.min())
        X = np.vstack([X_obs, _encode(liars, distributions)]) if liars else X_obs
        y = np.concatenate([y_obs, np.full(len(liars), best)])
        mu, std = _fit_predict(estimator, X, y, _encode(candidates, distributions), int(rng.integers(2**31)))
        kind = _member(acq_func, rng)
        score = _acquisition(kind, mu, std, best)
        point = candidates[int(np.argmax(score))]
        out.append((point, {ACQ_ATTR: kind}))
        liars.append(point)
    return out
