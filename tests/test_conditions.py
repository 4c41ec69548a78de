"""Katib's GJSON success/failure conditions (hp_components.conditions).

The expected values are GJSON's own documented results (tidwall/gjson SYNTAX.md) on its sample
document, and Katib's rule: a condition holds when it selects an object or a non-empty array.
"""

from __future__ import annotations

import pytest

from hp_components.conditions import MISSING, ConditionError, get, holds, job_outcome, parse
from hp_components.experiment import load_experiment

DOC = {
    "name": {"first": "Tom", "last": "Anderson"}, "age": 37, "children": ["Sara", "Alex", "Jack"],
    "fav.movie": "Deer Hunter",
    "friends": [
        {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"]},
        {"first": "Roger", "last": "Craig", "age": 68, "nets": ["fb", "tw"]},
        {"first": "Jane", "last": "Murphy", "age": 47, "nets": ["ig", "tw"]},
    ],
}
SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'


@pytest.mark.parametrize("path, want", [
    ("name.last", "Anderson"), ("age", 37), ("children.#", 3), ("children.1", "Alex"),
    ("fav\\.movie", "Deer Hunter"), ("friends.#.first", ["Dale", "Roger", "Jane"]), ("friends.1.last", "Craig"),
    ('friends.#(last=="Murphy").first', "Dale"), ('friends.#(last=="Murphy")#.first', ["Dale", "Jane"]),
    ("friends.#(age>45)#.last", ["Craig", "Murphy"]), ('friends.#(first%"D*").last', "Murphy"),
    ('friends.#(first!%"D*").last', "Craig"), ('children.#(!%"*a*")', "Alex"), ('children.#(%"*a*")#', ["Sara", "Jack"]),
    ('friends.#(nets.#(=="fb"))#.first', ["Dale", "Roger"]), ('friends.#(last="Murphy")#|first', MISSING),
    ('friends.#(last="Murphy")#.0', []), ('friends.#(last="Murphy")#|#', 2), ('friends.#(last="Murphy")#|0.first', "Dale"),
    ('friends.#(last=="Nobody")#', []), ('friends.#(last=="Nobody").first', MISSING), ("name.middle", MISSING),
    ("children.7", MISSING), ("age.x", MISSING),
])
def test_gjson_documented_results(path, want):
    got = get(DOC, path)
    assert got is MISSING if want is MISSING else got == want


def test_katib_rule_empty_array_and_scalars_do_not_hold():
    assert holds(DOC, 'friends.#(last=="Nobody")#') == (False, None)   # [] exists in GJSON, Katib says no
    assert holds(DOC, "age") == (False, None)                             # a scalar never holds
    assert holds(DOC, "name") == (True, {"first": "Tom", "last": "Anderson"})
    assert holds(DOC, 'friends.#(last=="Murphy")#')[1]["first"] == "Dale"  # first element is the detail


def test_job_outcome_follows_conditions_failure_first():
    job: dict = {"status": {"conditions": [{"type": "Complete", "status": "False"}]}}
    assert job_outcome(job, SUCCESS, FAILURE) == ("Running", None)
    job["status"]["conditions"].append({"type": "Complete", "status": "True", "reason": "Done"})
    assert job_outcome(job, SUCCESS, FAILURE)[0] == "Succeeded"
    job["status"]["conditions"].append({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"})
    assert job_outcome(job, SUCCESS, FAILURE) == ("Failed", {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"})
    assert job_outcome({}, SUCCESS, FAILURE) == ("Running", None)


@pytest.mark.parametrize("bad, words", [
    ("status.@reverse", "modifiers"), ("status.*", "wildcards"), ("", "empty"), ('a.#(b=="x"', "unbalanced"),
    ("{a,b}", "multipaths"), ("a.#(x==~true)", "'~'"), ("a..b", "empty path component"),
])
def test_unsupported_syntax_is_refused_not_misread(bad, words):
    with pytest.raises(ConditionError, match=words.replace("(", r"\(")):
        parse(bad)


def test_every_default_condition_parses(tmp_path):
    """Katib's defaults for each job kind (filled in by load_experiment) are inside the supported syntax."""
    from hp_components.experiment import _JOB_CONDITIONS

    for ok, bad in _JOB_CONDITIONS.values():
        parse(ok), parse(bad)
    exp = load_experiment("examples/random-digits.yaml")
    assert exp.spec.trial_template.success_condition == SUCCESS
