"""The GP's own parts: the value transform it fits on, the posterior-mean and local points of a parallel batch."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from hp_components.algorithms import (EXPLOIT_ATTR, LOCAL_ATTR, _compress_bad_tail, _ExploitingGPSampler,
                                      _local_point)
from hp_components.suggest import suggest
from tests.conftest import make_experiment
from tests.test_suggest import finish, score

DIST = {"x": FloatDistribution(0.0, 1.0)}


def trials(values: list[float]) -> list:
    done = [create_trial(state=TrialState.COMPLETE, value=v, params={"x": i / len(values)}, distributions=DIST)
            for i, v in enumerate(values)]
    return done + [create_trial(state=TrialState.RUNNING, params={"x": 0.5}, distributions=DIST)]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_a_heavy_tail_of_bad_values_is_compressed_keeping_the_order(direction):
    sign = 1 if direction == "minimize" else -1
    values = [sign * (0.01 * i) ** 2 * 100 for i in range(1, 30)]  # a bowl: bad values far larger than good ones
    out = _compress_bad_tail(trials(values), direction)
    warped = [t.value for t in out if t.state == TrialState.COMPLETE]
    assert sorted(range(len(values)), key=values.__getitem__) == sorted(range(len(warped)), key=warped.__getitem__)
    worst_gap = abs(warped[-1] - warped[-2]) / abs(values[-1] - values[-2])
    best_gap = abs(warped[1] - warped[0]) / abs(values[1] - values[0])
    assert worst_gap < best_gap, "the bad end is compressed relative to the good end"
    assert out[-1].state == TrialState.RUNNING and out[-1].params == {"x": 0.5}


def test_a_tail_of_good_values_is_left_alone():
    values = [-3.0 * math.exp(-20 * (i / 30) ** 2) for i in range(30)]  # mostly ~0, a few good ones (Hartmann-like)
    frozen = trials(values)
    assert _compress_bad_tail(frozen, "minimize") is frozen


def test_too_few_or_constant_values_are_left_alone():
    for values in ([1.0, 2.0], [5.0] * 6):
        frozen = trials(values)
        assert _compress_bad_tail(frozen, "minimize") is frozen


def gp_history(basic_dict, n: int = 10):
    exp = make_experiment(basic_dict, **{"spec.algorithm.algorithmName": "bayesianoptimization",
                                         "spec.maxTrialCount": 40})
    return exp, finish(suggest(exp, [], n), score)


def test_a_parallel_batch_has_one_posterior_mean_point_and_a_sequential_ask_none(basic_dict):
    exp, history = gp_history(basic_dict)
    batch = suggest(exp, history, 4)
    assert [bool(t.system_attrs.get(EXPLOIT_ATTR)) for t in batch] == [True, False, False, False]
    assert len({str(t.assignments) for t in batch}) == 4
    assert not any(t.system_attrs.get(EXPLOIT_ATTR) for t in suggest(exp, history, 1))


def test_one_posterior_mean_point_in_flight_when_slots_free_up_one_by_one(basic_dict):
    exp, history = gp_history(basic_dict)
    done, running = history[:-2], history[-2:]
    for t in running:
        t.condition, t.objective_value = "Running", None
    first = suggest(exp, done + running, 1)  # others still run: this one is the model's best guess
    assert first[0].system_attrs.get(EXPLOIT_ATTR)
    assert not suggest(exp, done + running + first, 1)[0].system_attrs.get(EXPLOIT_ATTR), "one at a time"


def test_the_posterior_mean_is_available_in_this_optuna(monkeypatch):
    """Guards the fallback: on the installed Optuna the exploitation point really is the posterior mean's."""
    import optuna

    sampler = _ExploitingGPSampler(seed=0, n_startup_trials=3)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.3) ** 2, n_trials=5)
    captured = []
    original = optuna.samplers.GPSampler._optimize_acqf
    monkeypatch.setattr(optuna.samplers.GPSampler, "_optimize_acqf",
                        lambda self, acqf, best: captured.append(acqf) or original(self, acqf, best))
    sampler.exploit_next = True
    study.ask({"x": FloatDistribution(0.0, 1.0)})
    assert [type(a).__name__ for a in captured] == ["UCB"]



def edge_history(basic_dict):
    """A GP history whose best trial has ``lr`` at the top of its range."""
    exp, history = gp_history(basic_dict)
    best = max(history, key=lambda t: t.objective_value)
    best.assignments["lr"], best.objective_value = "0.1", best.objective_value + 10
    return exp, history


def test_a_parallel_batch_has_one_local_point_when_the_best_trial_is_on_an_edge(basic_dict):
    exp, history = edge_history(basic_dict)
    batch = suggest(exp, history, 4)
    assert [bool(t.system_attrs.get(LOCAL_ATTR)) for t in batch] == [False, False, False, True]
    assert 0.01 < float(batch[-1].assignments["lr"]) < 0.1, "a step inside the box from the edge"
    assert not any(t.system_attrs.get(LOCAL_ATTR) for t in suggest(exp, history, 1)), "not when sequential"
    done, running = history[:-2], history[-2:]
    for t in running:
        t.condition, t.objective_value = "Running", None
    first = suggest(exp, done + running, 2)  # posterior mean + local
    assert [bool(t.system_attrs.get(LOCAL_ATTR)) for t in first] == [False, True]
    assert not suggest(exp, done + running + first, 1)[0].system_attrs.get(LOCAL_ATTR), "one at a time"


LOCAL_SPACE = SimpleNamespace(distributions={"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(1e-4, 1.0, log=True)})


def local_history(best: dict, failed_local: int = 0) -> list:
    d = LOCAL_SPACE.distributions
    out = [create_trial(state=TrialState.COMPLETE, value=1.0, params={"x": 0.9, "y": 0.5}, distributions=d),
           create_trial(state=TrialState.COMPLETE, value=0.0, params=best, distributions=d)]
    out += [create_trial(state=TrialState.COMPLETE, value=0.5, params={"x": 0.8, "y": 0.5}, distributions=d,
                         system_attrs={LOCAL_ATTR: True}) for _ in range(failed_local)]
    return out + [create_trial(state=TrialState.RUNNING, params={"x": 0.7, "y": 0.5}, distributions=d)]


def test_a_local_point_at_a_bound_steps_inside_the_box():
    for seed in range(20):
        p = _local_point(local_history({"x": 0.0, "y": 1.0}), LOCAL_SPACE, "minimize", 3, True, seed)
        assert 0.0 < p["x"] < 0.5 and 1e-2 < p["y"] < 1.0


def test_an_int_on_a_bound_moves_at_least_one_step_inside_and_interior_values_stay():
    d = {"n": IntDistribution(1, 5), "x": FloatDistribution(0.0, 1.0)}
    history = [create_trial(state=TrialState.COMPLETE, value=v, params=p, distributions=d)
               for v, p in ((1.0, {"n": 3, "x": 0.2}), (0.0, {"n": 1, "x": 0.4}))]
    history.append(create_trial(state=TrialState.RUNNING, params={"n": 4, "x": 0.9}, distributions=d))
    for seed in range(20):
        p = _local_point(history, SimpleNamespace(distributions=d), "minimize", 3, True, seed)
        assert 2 <= p["n"] <= 3 and p["x"] == 0.4


def test_the_local_step_halves_after_each_local_point_that_did_not_improve():
    best = {"x": 0.0, "y": 0.5}
    points = [_local_point(local_history(best, n), LOCAL_SPACE, "minimize", 3, True, seed=7) for n in range(3)]
    assert all(p["y"] == 0.5 for p in points), "only the coordinates on a bound move"
    steps = [p["x"] for p in points]
    assert steps[0] > 0 and steps[1] == pytest.approx(steps[0] / 2) and steps[2] == pytest.approx(steps[0] / 4)


def test_no_local_point_inside_the_box_or_for_a_sequential_ask():
    assert _local_point(local_history({"x": 0.5, "y": 0.5}), LOCAL_SPACE, "minimize", 3, True, 0) is None
    edge = local_history({"x": 0.0, "y": 0.5})
    assert _local_point(edge, LOCAL_SPACE, "minimize", 3, True, 0) is not None
    assert _local_point(edge[:-1], LOCAL_SPACE, "minimize", 1, False, 0) is None  # nothing running, one point


def _plain_gpsampler_ask(exp, history):
    """What a fresh Optuna GPSampler asks after ``history`` with the seed suggest() gives this ask."""
    import warnings

    import optuna

    from hp_components.algorithms import _frozen, derive_seed
    from hp_components.space import SearchSpace
    from hp_components.suggest import random_state

    space = SearchSpace(exp.spec.parameters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction=exp.spec.objective.type, sampler=optuna.samplers.GPSampler(
            seed=derive_seed(random_state(exp), len(history)), n_startup_trials=10))
        study.add_trials([_frozen(t, space) for t in history])
        return space.assignments(study.ask(space.distributions).params)


@pytest.mark.parametrize("n", [3, 12])
def test_a_sequential_ask_is_optunas_gpsampler_on_the_same_history(basic_dict, n):
    """One point with nothing running: the random start (n=3) and the fitted GP's log-EI (n=12) are GPSampler's."""
    pytest.importorskip("torch")
    exp, history = gp_history(basic_dict, n)
    (ours,) = suggest(exp, history, 1)
    assert ours.assignments == _plain_gpsampler_ask(exp, history)
    assert not ours.system_attrs.get(EXPLOIT_ATTR) and not ours.system_attrs.get(LOCAL_ATTR)


def test_a_parallel_ask_is_not_the_plain_gpsampler_path(basic_dict):
    """With a trial still running, one asked point is the batch path's (here its posterior-mean point)."""
    pytest.importorskip("torch")
    exp, history = gp_history(basic_dict, 12)
    history[-1].condition, history[-1].objective_value = "Running", None
    (ours,) = suggest(exp, history, 1)
    assert ours.system_attrs.get(EXPLOIT_ATTR)


def _sequential_gp(basic_dict, seed: int):
    exp = make_experiment(basic_dict, **{"metadata.name": "gp-seq", "spec.algorithm.algorithmName": "bayesianoptimization",
                                         "spec.maxTrialCount": 40,
                                         "spec.algorithm.algorithmSettings": [{"name": "random_state", "value": str(seed)}]})
    return exp, []


def _ask_and_tell(exp, history):
    (ours,) = suggest(exp, history, 1)
    history.append(finish([ours], score)[0])
    return ours.assignments


def test_sequential_asks_in_one_process_are_one_persistent_gpsampler(basic_dict):
    """From an empty history, one point at a time with each result told (the local runner at
    parallelTrialCount 1): the points of one ``GPSampler(seed=random_state)`` driven by study.ask/tell,
    its random start and then its GP, whose kernel fit each ask starts from the last one
    (hp_components._persistent_gp)."""
    pytest.importorskip("torch")
    import warnings

    import optuna

    from hp_components import _persistent_gp
    from hp_components.space import SearchSpace

    _persistent_gp.forget()
    exp, history = _sequential_gp(basic_dict, 3)
    space = SearchSpace(exp.spec.parameters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction=exp.spec.objective.type,
                                    sampler=optuna.samplers.GPSampler(seed=3, n_startup_trials=10))
        for i in range(14):
            ours = _ask_and_tell(exp, history)
            theirs = study.ask(space.distributions)
            assert ours == space.assignments(theirs.params), f"ask {i}"
            study.tell(theirs, score(ours))


def test_experiments_tuned_side_by_side_in_one_process_ask_what_each_asks_alone(basic_dict):
    """Kept samplers are told apart by history: two experiments with the same space and seed, and a third
    with another seed, asked in turn, get the points each gets alone; a history that does not continue a
    kept sampler (a resumed run) gets a fresh GPSampler's point, and the history one answered last, asked
    again, the same point."""
    pytest.importorskip("torch")
    from hp_components import _persistent_gp

    alone = []
    for seed in (5, 5, 6):
        _persistent_gp.forget()
        exp, history = _sequential_gp(basic_dict, seed)
        alone.append([_ask_and_tell(exp, history) for _ in range(12)])
    assert alone[0] == alone[1] and alone[0] != alone[2]
    _persistent_gp.forget()
    runs = [_sequential_gp(basic_dict, seed) for seed in (5, 5, 6)]
    together: list[list] = [[], [], []]
    for _ in range(12):
        for points, (exp, history) in zip(together, runs):
            points.append(_ask_and_tell(exp, history))
    assert together == alone
    exp, history = runs[0]
    (again,) = suggest(exp, history[:-1], 1)  # the history last answered, asked again: the same point
    assert again.assignments == history[-1].assignments
    (fresh,) = suggest(exp, history[:-2], 1)  # a history no kept sampler answered last
    assert fresh.assignments == _plain_gpsampler_ask(exp, history[:-2])
