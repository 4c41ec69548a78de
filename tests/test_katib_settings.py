"""Katib's algorithm settings (issue 14, point 4): every setting Katib's default katib-config
accepts is accepted here with its meaning, and misspelled ones are still refused.

Katib sources: pkg/suggestion/v1beta1/hyperopt/service.py (``tpe``: gamma in (0, 1),
prior_weight > 0, n_EI_candidates > 0, random_state >= 0), pkg/suggestion/v1beta1/skopt/service.py
(``bayesianoptimization``: base_estimator GP/RF/ET/GBRT, n_initial_points >= 0, acq_func,
acq_optimizer, random_state) and pkg/suggestion/v1beta1/optuna/service.py (``multivariate-tpe``:
n_startup_trials, n_ei_candidates, random_state >= 0).
"""

from __future__ import annotations

import math
import statistics

import warnings

import pytest

from hp_components import algorithms
from hp_components.algorithms import HyperoptGamma, get_algorithm, validate
from hp_components.experiment import SpecError
from hp_components.suggest import suggest
from tests.conftest import make_experiment


def _settings(**kv: str) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in kv.items()]


def _exp(basic_dict, name, **kv):
    return make_experiment(basic_dict, **{"spec.algorithm.algorithmName": name, "spec.maxTrialCount": 30,
                                          "spec.algorithm.algorithmSettings": _settings(**kv)})


# --------------------------------------------------------------------------- tpe (hyperopt in Katib)


def test_tpe_accepts_hyperopts_settings_and_maps_them_onto_optuna(basic_dict):
    exp = _exp(basic_dict, "tpe", gamma="0.4", prior_weight="2.5", n_EI_candidates="7", random_state="3")
    algo = get_algorithm("tpe", exp.spec.algorithm.settings())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna's own deprecation of gamma/prior_weight is not the user's concern
        sampler = algo.sampler(1, None)
    assert sampler._n_ei_candidates == 7
    assert sampler._parzen_estimator_parameters.prior_weight == 2.5
    # hyperopt's split: ceil(gamma * sqrt(n)) good trials, at most 25
    assert isinstance(sampler._gamma, HyperoptGamma)
    assert [sampler._gamma(n) for n in (1, 16, 100, 10_000)] == [1, 2, 4, 25]
    assert len(suggest(exp, [], 3)) == 3


@pytest.mark.parametrize("key,value", [("gamma", "0"), ("gamma", "1"), ("gamma", "1.5"), ("prior_weight", "0"),
                                       ("n_EI_candidates", "0"), ("random_state", "-1")])
def test_tpe_refuses_what_hyperopt_refuses(basic_dict, key, value):
    with pytest.raises(SpecError) as err:
        _exp(basic_dict, "tpe", **{key: value})
    assert err.value.problems == [(f"spec.algorithm.algorithmSettings[0].value", err.value.problems[0][1])]
    assert key in err.value.problems[0][1]


def test_misspelled_settings_are_still_refused(basic_dict):
    for name, key in (("tpe", "gama"), ("tpe", "n_ei_candidate"), ("bayesianoptimization", "base_estimater"),
                      ("multivariate-tpe", "gamma")):
        with pytest.raises(SpecError, match=f"'{key}' is not a setting of {name}"):
            _exp(basic_dict, name, **{key: "0.5"})


def test_both_spellings_of_the_candidates_setting_are_one_too_many(basic_dict):
    with pytest.raises(SpecError, match="not both"):
        _exp(basic_dict, "tpe", n_ei_candidates="5", n_EI_candidates="7")


def test_multivariate_tpe_accepts_zero_ei_candidates(basic_dict):
    """Katib's Optuna service accepts n_ei_candidates >= 0; Optuna itself needs 1, which is what 0 means here."""
    exp = _exp(basic_dict, "multivariate-tpe", n_ei_candidates="0", n_startup_trials="2", random_state="1")
    history = []
    for _ in range(3):
        batch = suggest(exp, history, 2)
        for t in batch:
            t.condition, t.objective_value = "Succeeded", -float(t.assignments["x"]) ** 2
        history += batch
    assert len(history) == 6
    assert get_algorithm("multivariate-tpe", {"n_ei_candidates": "0"}).sampler(1, None)._n_ei_candidates == 1


# --------------------------------------------------------------------------- bayesianoptimization (skopt in Katib)


def test_n_initial_points_zero_models_from_the_first_result(basic_dict):
    pytest.importorskip("torch")
    exp = _exp(basic_dict, "bayesianoptimization", n_initial_points="0", random_state="2")
    first = suggest(exp, [], 1)
    first[0].condition, first[0].objective_value = "Succeeded", 0.5
    assert len(suggest(exp, first, 2)) == 2


def _bowl(a):  # minimum at lr = 0.01, n = 3, opt = adam, x = 0.25
    return (math.log10(float(a["lr"])) + 2) ** 2 + (int(a["n"]) - 3) ** 2 + (a["opt"] != "adam") \
        + (float(a["x"]) - 0.25) ** 2


def _run(exp, rounds, batch):
    history = []
    for _ in range(rounds):
        new = suggest(exp, history, batch)
        for t in new:
            t.condition, t.objective_value = "Succeeded", _bowl(t.assignments)
        history += new
    return history


@pytest.mark.parametrize("estimator", ["RF", "ET", "GBRT"])
def test_tree_surrogates_model_the_results(basic_dict, estimator):
    """RF/ET/GBRT are scikit-optimize's tree ensembles: after the random initial points the
    acquisition over candidates concentrates on the good region (better than the random start)."""
    pytest.importorskip("sklearn")
    exp = _exp(basic_dict, "bayesianoptimization", base_estimator=estimator, n_initial_points="6",
               acq_func="EI", random_state="4")
    exp.spec.objective.type = "minimize"
    exp.spec.objective.goal = None
    history = _run(exp, 6, 3)
    initial = [t.objective_value for t in history[:6]]
    modelled = [t.objective_value for t in history[6:]]
    assert all(t.system_attrs.get("hp:acq_func") == "EI" for t in history[6:])
    assert not any("hp:acq_func" in t.system_attrs for t in history[:6])
    assert statistics.median(modelled) < statistics.median(initial)
    assert len({str(t.assignments) for t in history[6:]}) == 12, "a batch is spread by the constant liar"
    again = _run(exp, 6, 3)
    assert [t.assignments for t in again] == [t.assignments for t in history], "same history, same batch"


def test_gp_hedge_draws_each_point_from_the_portfolio(basic_dict):
    pytest.importorskip("sklearn")
    exp = _exp(basic_dict, "bayesianoptimization", base_estimator="RF", n_initial_points="3")
    exp.spec.objective.type = "minimize"
    members = {t.system_attrs["hp:acq_func"] for t in _run(exp, 8, 3)[3:]}
    assert members <= {"EI", "PI", "LCB"} and len(members) >= 2


def test_tree_surrogates_run_without_pytorch_and_the_gp_is_refused_naming_it(basic_dict, monkeypatch):
    """GaussianProcess.runtime_problem asks importlib for torch; here it answers "not installed"."""
    import importlib.util

    from hp_components.local import RunnerError, check_runnable

    pytest.importorskip("sklearn")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    check_runnable(_exp(basic_dict, "bayesianoptimization", base_estimator="RF"))  # scikit-learn's trees
    for name, settings in (("bayesianoptimization", {}), ("bayesianoptimization", {"base_estimator": "GP"})):
        with pytest.raises(RunnerError, match="spec.algorithm.algorithmName: bayesianoptimization runs on Optuna's "
                                              "GPSampler, which needs PyTorch"):
            check_runnable(_exp(basic_dict, name, **settings))


def test_trees_with_lbfgs_are_refused(basic_dict):
    pytest.importorskip("sklearn")
    with pytest.raises(SpecError) as err:
        _exp(basic_dict, "bayesianoptimization", base_estimator="ET", acq_optimizer="lbfgs")
    assert err.value.problems[0][0] == "spec.algorithm.algorithmSettings[1].value"
    assert "sampling" in err.value.problems[0][1]


def test_trees_without_scikit_learn_are_refused_at_validation_naming_the_extra(basic_dict, monkeypatch):
    real = algorithms.importlib.util.find_spec

    def no_sklearn(name, *args):
        return None if name == "sklearn" else real(name, *args)

    monkeypatch.setattr("importlib.util.find_spec", no_sklearn)
    problems = validate("bayesianoptimization", {"acq_func": "EI", "base_estimator": "GBRT"}, None)
    assert problems == [("spec.algorithm.algorithmSettings[1].value",
                         "base_estimator GBRT needs scikit-learn, which is not installed: "
                         "pip install 'hp-components[examples]' (or use base_estimator GP)")]
    assert validate("bayesianoptimization", {"base_estimator": "GP"}, None) == []


@pytest.mark.parametrize("key,value", [("base_estimator", "SVM"), ("n_initial_points", "-1"), ("acq_func", "UCB"),
                                       ("acq_optimizer", "adam"), ("random_state", "x")])
def test_bayesianoptimization_refuses_what_skopt_refuses(basic_dict, key, value):
    with pytest.raises(SpecError, match=key):
        _exp(basic_dict, "bayesianoptimization", **{key: value})

