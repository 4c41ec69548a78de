"""Search space mapping, algorithms and suggest(): batches, determinism, grids that end."""

from __future__ import annotations

import math
import statistics

import pytest

from hp_components.algorithms import ALGORITHMS, auto_choice, get_algorithm
from hp_components.space import SearchSpace, grid_size
from hp_components.suggest import suggest
from hp_components.trials import Trial, dump_history, load_history
from tests.conftest import make_experiment

ALL = ["random", "tpe", "multivariate-tpe", "cmaes", "sobol", "bayesianoptimization", "auto"]


def finish(batch, score):
    for t in batch:
        t.condition = "Succeeded"
        t.objective_value = score(t.assignments)
    return batch


def score(a):
    return -((math.log10(float(a["lr"])) + 2) ** 2) - (int(a["n"]) - 3) ** 2 + (a["opt"] == "adam") - float(a["x"]) ** 2


@pytest.mark.parametrize("algorithm", ALL)
def test_batches_are_valid_distinct_and_reproducible(basic_dict, algorithm):
    exp = make_experiment(basic_dict, **{"spec.algorithm.algorithmName": algorithm, "spec.maxTrialCount": 15})
    history: list[Trial] = []
    for _ in range(5):
        batch = suggest(exp, history, 3)
        assert len(batch) == 3
        again = suggest(exp, load_history(dump_history(history)), 3)
        assert [t.assignments for t in batch] == [t.assignments for t in again], "same history, same batch"
        for t in batch:
            lr, n, x = float(t.assignments["lr"]), int(t.assignments["n"]), float(t.assignments["x"])
            assert 0.001 <= lr <= 0.1 and 1 <= n <= 5 and -1 <= x <= 1
            assert t.assignments["opt"] in ("sgd", "adam")
        assert len({str(t.assignments) for t in batch}) == 3, "a batch must not repeat a point"
        history += finish(batch, score)
    assert [t.name for t in history] == [f"basic-{i:04d}" for i in range(15)]
    assert suggest(exp, history, 3) == [], "maxTrialCount is spent"


def test_random_state_changes_the_batch(basic_dict):
    a = make_experiment(basic_dict, **{"spec.algorithm.algorithmSettings": [{"name": "random_state", "value": "1"}]})
    b = make_experiment(basic_dict, **{"spec.algorithm.algorithmSettings": [{"name": "random_state", "value": "2"}]})
    assert [t.assignments for t in suggest(a, [], 3)] != [t.assignments for t in suggest(b, [], 3)]


@pytest.mark.parametrize("algorithm", ["random", "sobol"])
def test_index_seeded_designs_ignore_how_batches_were_cut(basic_dict, algorithm):
    """Trial i gets the same point whether it was asked in one batch of 4 or as 1 + 3 (parallel runs)."""
    exp = make_experiment(basic_dict, **{"spec.algorithm.algorithmName": algorithm})
    whole = suggest(exp, [], 4)
    first = suggest(exp, [], 1)
    rest = suggest(exp, first, 3)
    assert [t.assignments for t in whole] == [t.assignments for t in first + rest]


def test_without_random_state_the_name_seeds_the_design(basic_dict):
    a = make_experiment(basic_dict, **{"spec.algorithm.algorithmName": "sobol", "metadata.name": "one"})
    b = make_experiment(basic_dict, **{"spec.algorithm.algorithmName": "sobol", "metadata.name": "two"})
    assert [t.assignments for t in suggest(a, [], 3)] != [t.assignments for t in suggest(b, [], 3)]


def test_running_trials_spread_the_next_batch(basic_dict):
    """Constant liar: with trials still running, TPE does not ask for the same point again."""
    exp = make_experiment(basic_dict, **{"spec.algorithm.algorithmName": "tpe", "spec.maxTrialCount": 40,
                                         "spec.algorithm.algorithmSettings": [{"name": "n_startup_trials", "value": "4"}]})
    history = finish(suggest(exp, [], 10), score)
    running = suggest(exp, history, 4)  # left Created: still running
    nxt = suggest(exp, history + running, 4)
    assert not {str(t.assignments) for t in nxt} & {str(t.assignments) for t in running}


def test_cmaes_keeps_its_state_in_the_history(basic_dict):
    exp = make_experiment(basic_dict, **{"spec.algorithm.algorithmName": "cmaes", "spec.maxTrialCount": 60})
    history: list[Trial] = []
    while len(history) < 40:
        history += finish(suggest(exp, load_history(dump_history(history)), 4), score)
    generations = {t.system_attrs.get("cma:generation") for t in history}
    assert max(g for g in generations if g is not None) >= 3, "CMA-ES must move past its first generation"
    assert any(k.startswith("cma:optimizer") for t in history for k in t.system_attrs)


def test_model_based_search_beats_random(basic_dict):
    def best_after(algorithm, seed):
        exp = make_experiment(basic_dict, **{"spec.algorithm.algorithmName": algorithm, "spec.maxTrialCount": 40,
                                             "spec.algorithm.algorithmSettings": [{"name": "random_state", "value": str(seed)}]})
        history: list[Trial] = []
        while len(history) < 40:
            history += finish(suggest(exp, history, 4), score)
        return max(t.objective_value for t in history)

    tpe = statistics.median(best_after("multivariate-tpe", s) for s in range(3))
    rnd = statistics.median(best_after("random", s) for s in range(3))
    assert tpe >= rnd


def test_grid_runs_every_point_in_order_then_ends(basic_dict):
    exp = make_experiment(basic_dict, **{
        "spec.algorithm.algorithmName": "grid",
        "spec.maxTrialCount": 100,
        "spec.parallelTrialCount": 3,
        "spec.parameters.0.feasibleSpace": {"min": "0.01", "max": "0.03", "step": "0.01"},
        "spec.parameters.1.feasibleSpace": {"min": "1", "max": "2"},
        "spec.parameters.3.feasibleSpace": {"min": "-1", "max": "1", "step": "1"},
    })
    assert grid_size(exp.spec.parameters) == 3 * 2 * 2 * 3
    history: list[Trial] = []
    while batch := suggest(exp, history, 5):
        history += finish(batch, score)
    assert len(history) == 36
    assert len({str(t.assignments) for t in history}) == 36
    assert history[0].assignments == {"lr": "0.01", "n": "1", "opt": "sgd", "x": "-1"}
    assert history[1].assignments["x"] == "0"
    assert {t.assignments["lr"] for t in history} == {"0.01", "0.02", "0.03"}


def test_normal_distribution_centres_samples(basic_dict):
    exp = make_experiment(basic_dict, **{"spec.algorithm.algorithmName": "random", "spec.maxTrialCount": 1000})
    xs = [float(t.assignments["x"]) for t in suggest(exp, [], 600)]
    assert all(-1 <= x <= 1 for x in xs)
    inner = sum(abs(x) < 1 / 3 for x in xs) / len(xs)
    assert 0.6 < inner < 0.76, "about 68% within one sigma (a third of the half-range)"


def test_space_round_trip(basic_dict):
    exp = make_experiment(basic_dict)
    space = SearchSpace(exp.spec.parameters)
    for t in suggest(exp, [], 5):
        again = space.assignments(space.internal(t.assignments))
        assert again == t.assignments


def test_space_rejects_values_outside(basic_dict):
    space = SearchSpace(make_experiment(basic_dict).spec.parameters)
    with pytest.raises(ValueError):
        space.internal({"lr": "5", "n": "1", "opt": "sgd", "x": "0"})
    with pytest.raises(ValueError):
        space.internal({"lr": "0.01", "n": "1", "opt": "rmsprop", "x": "0"})


def test_history_from_another_spec_is_counted_but_not_replayed(basic_dict):
    exp = make_experiment(basic_dict, **{"spec.algorithm.algorithmName": "tpe"})
    stranger = Trial(name="basic-0000", assignments={"lr": "9", "n": "1", "opt": "sgd", "x": "0"},
                     condition="Succeeded", objective_value=1.0)
    batch = suggest(exp, [stranger], 3)
    assert [t.name for t in batch] == ["basic-0001", "basic-0002", "basic-0003"]


def test_auto_rule(basic_dict):
    mixed = make_experiment(basic_dict, **{"spec.algorithm.algorithmName": "auto"})
    assert auto_choice(mixed.spec) == "bayesianoptimization"  # the GP handles categoricals too
    assert auto_choice(mixed.spec, n_history=99) == "bayesianoptimization"
    assert auto_choice(mixed.spec, n_history=100) == "multivariate-tpe"  # its suggest step stays fast
    cont = make_experiment(basic_dict, **{"spec.parameters.2": {"name": "opt", "parameterType": "double",
                                                                "feasibleSpace": {"min": "0", "max": "1"}}})
    assert auto_choice(cont.spec) == "bayesianoptimization"
    discrete = make_experiment(basic_dict, **{
        "spec.parameters.0": {"name": "lr", "parameterType": "discrete", "feasibleSpace": {"list": ["0.1", "0.01"]}},
        "spec.parameters.3": {"name": "x", "parameterType": "categorical", "feasibleSpace": {"list": ["a"]}},
        "spec.maxTrialCount": 20,
    })
    assert auto_choice(discrete.spec) == "grid"  # 2 * 5 * 2 * 1 = 20 points fit the budget
    too_big = make_experiment(discrete.to_dict(), **{"spec.maxTrialCount": 19}).spec
    assert auto_choice(too_big) == "bayesianoptimization"
    assert auto_choice(too_big, n_history=100) == "multivariate-tpe"


def test_unknown_settings_are_rejected_by_get_algorithm():
    with pytest.raises(ValueError, match="not a setting of random"):
        get_algorithm("random", {"n_startup_trials": "3"})
    assert set(ALGORITHMS) == set(ALL) | {"grid", "hyperband"}


# --------------------------------------------------------------------------- no point twice

DISCRETE = [
    {"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
    {"name": "m", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "4", "step": "2"}},
    {"name": "c", "parameterType": "categorical", "feasibleSpace": {"list": ["p", "q"]}},
    {"name": "d", "parameterType": "discrete", "feasibleSpace": {"list": ["0.5", "1", "2"]}},
]  # 3 * 3 * 2 * 3 = 54 points
TINY = [
    {"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
    {"name": "s", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "0.5", "step": "0.5"}},
]  # 3 * 2 = 6 points


def discrete_experiment(algorithm: str, parameters: list[dict], max_trials: int):
    from hp_components.experiment import parse_experiment
    from tests.conftest import script_experiment

    return parse_experiment(script_experiment(
        f"unique-{algorithm}", "print('loss=0')", params=parameters, maxTrialCount=max_trials, parallelTrialCount=4,
        objective={"type": "maximize", "objectiveMetricName": "loss"}, algorithm={"algorithmName": algorithm}))


def discrete_score(a):
    return -(int(a["n"]) - 2) ** 2 - (int(a.get("m", "0")) - 2) ** 2 / 4 + (a.get("c") == "q") \
        - abs(float(a.get("d", "1")) - 1) - float(a.get("s", "0"))


def key(t):
    return tuple(sorted(t.assignments.items()))


UNIQUE_ALGORITHMS = ["random", "tpe", "multivariate-tpe", "cmaes", "sobol", "bayesianoptimization", "auto", "grid"]


@pytest.mark.parametrize("algorithm", UNIQUE_ALGORITHMS)
@pytest.mark.parametrize("parameters, n", [(DISCRETE, 30), (DISCRETE[:3], 18)], ids=["30-of-54", "all-18"])
def test_no_point_twice_while_the_space_has_untried_ones(algorithm, parameters, n):
    """Parallel slots freeing up one by one: each suggestion sees finished and still-running trials.

    Without the check every algorithm but grid repeated points here (4 to 14 of 30, 5 to 9 of 18)."""
    exp = discrete_experiment(algorithm, parameters, n)
    history: list[Trial] = []
    while len(history) < n:
        running = [t for t in history if t.condition == "Running"]
        batch = suggest(exp, history, min(4 - len(running) if running else 4, n - len(history)))
        assert batch, "the space still has untried points"
        for t in batch:
            t.condition = "Running"
        history += batch
        oldest = next(t for t in history if t.condition == "Running")  # one slot frees up
        finish([oldest], discrete_score)
    keys = [key(t) for t in history]
    assert len(keys) == n and len(set(keys)) == n, f"{n - len(set(keys))} repeated points"


@pytest.mark.parametrize("algorithm", UNIQUE_ALGORITHMS)
def test_a_used_up_space_may_repeat_but_only_after_every_point_ran(algorithm):
    exp = discrete_experiment(algorithm, TINY, 10)
    history: list[Trial] = []
    for size in (4, 2):
        history += finish(suggest(exp, history, size), discrete_score)
    assert len({key(t) for t in history}) == 6, "the first six trials cover the six points"
    more = suggest(exp, history, 4)
    if algorithm == "grid":
        assert more == [], "a used-up grid ends"
    else:
        assert len(more) == 4 and all(key(t) in {key(h) for h in history} for t in more)


def test_running_failed_and_interrupted_trials_in_the_history():
    from hp_components.suggest import REPLACED_ATTR, unique_batch
    exp = discrete_experiment("random", TINY, 10)
    space = SearchSpace(exp.spec.parameters)
    seen = [Trial(name="a", assignments={"n": "1", "s": "0.0"}, condition="Running"),
            Trial(name="b", assignments={"n": "2", "s": "0.0"}, condition="Failed"),
            Trial(name="c", assignments={"n": "3", "s": "0.0"}, condition="Interrupted")]
    repeated = [({"n": 3, "s": 0.0}, {}), ({"n": 2, "s": 0.0}, {"k": 1}), ({"n": 1, "s": 0.0}, {}),
                ({"n": 3, "s": 0.0}, {})]
    out = unique_batch(space, seen, repeated, seed=5)
    points = [space.assignments(p) for p, _ in out]
    assert points[0] == {"n": "3", "s": "0.0"}, "an Interrupted trial's point is free (it is rerun)"
    assert {"n": "1", "s": "0.0"} not in points and {"n": "2", "s": "0.0"} not in points
    assert len({tuple(p.items()) for p in points}) == 4
    assert out[1][1] == {"k": 1, REPLACED_ATTR: True} and REPLACED_ATTR not in out[0][1]
    assert out[2][1] == out[3][1] == {REPLACED_ATTR: True}
    assert unique_batch(space, seen, repeated, seed=5) == out, "the replacement is a function of the seed"


def test_a_repeated_point_is_replaced_by_a_neighbour():
    """The replacement stays where the algorithm looked: one parameter moves to a next value."""
    from hp_components.suggest import unique_batch
    exp = discrete_experiment("random", DISCRETE, 60)
    space = SearchSpace(exp.spec.parameters)
    done = Trial(name="a", assignments={"n": "2", "m": "2", "c": "p", "d": "1"}, condition="Succeeded",
                 objective_value=1.0)
    for seed in range(10):
        (point, _), = unique_batch(space, [done], [(space.internal(done.assignments), {})], seed=seed)
        a = space.assignments(point)
        changed = [k for k in a if a[k] != done.assignments[k]]
        assert len(changed) == 1, a
        if changed[0] in ("n", "m"):
            step = {"n": 1, "m": 2}[changed[0]]
            assert abs(int(a[changed[0]]) - int(done.assignments[changed[0]])) == step


def test_the_algorithms_do_repeat_points_without_the_check():
    """What the check is for: the GP's own asks on a small discrete space repeat points."""
    exp = discrete_experiment("bayesianoptimization", DISCRETE, 60)
    algo = get_algorithm("bayesianoptimization", {"random_state": "3"}, exp.spec)
    space = SearchSpace(exp.spec.parameters)
    history: list[Trial] = []
    raw: list[tuple] = []
    for _ in range(5):
        batch = suggest(exp, history, 4)
        raw += [tuple(sorted(space.assignments(p).items()))
                for p, _ in algo.suggest(space, history, 4, direction="maximize", seed=len(history))]
        history += finish(batch, discrete_score)
    assert len(set(raw)) < len(raw) or any(r in {key(t) for t in history[:-4]} for r in raw[-4:])
