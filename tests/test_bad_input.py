"""A corpus of broken specs (tests/data/bad): each is refused with exit 2, naming the field, no traceback.

Each file's first line says what must be reported: ``# expect: <field path> :: <words of the message>``
(``(input)`` stands for the file itself).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hp_components.cli import main
from hp_components.experiment import SpecError, load_experiment, parse_experiment
from hp_components.metrics import MetricsParser
from tests.conftest import DATA, ROOT

CORPUS = sorted((DATA / "bad").glob("*.yaml"))


def _expectation(path: Path) -> tuple[str, str]:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    field, text = first.removeprefix("# expect: ").split(" :: ")
    return (str(path) if field == "(input)" else field), text


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_bad_spec_exits_2_naming_the_field(path, capsys):
    field, text = _expectation(path)
    code = main(["validate", str(path)])
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.out + captured.err
    lines = [line.strip() for line in captured.err.splitlines()]
    assert any(line.startswith(f"{field}:") and text in line for line in lines), captured.err


@pytest.mark.parametrize("name", ["01", "45", "47", "56", "57", "61", "63", "65", "72"])
def test_run_refuses_bad_input_before_anything_runs(tmp_path, name):
    [path] = [p for p in CORPUS if p.name.startswith(name)]
    res = subprocess.run([sys.executable, "-m", "hp_components.cli", "run", str(path), "--storage", f"sqlite:///{tmp_path}/s.db"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "s.db").exists(), "nothing may be written for a bad spec"


# ----------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


BASIC = load_experiment(DATA / "basic.yaml").to_dict()
BASIC_PATHS = [p for p in _paths(BASIC) if p]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(BASIC_PATHS), json_values)
def test_validator_never_crashes_on_a_mutated_spec(path, junk):
    import copy

    data = copy.deepcopy(BASIC)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = junk
    try:
        parse_experiment(data)
    except SpecError as err:
        assert err.problems and all(isinstance(p, str) and m for p, m in err.problems)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_validator_never_crashes_on_junk(junk):
    try:
        parse_experiment(junk if isinstance(junk, dict) else {"spec": junk})
    except SpecError:
        pass


metric_lines = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    st.builds(lambda n, v, pre: f"{pre}{n}={v}", st.sampled_from(["loss", "acc", "Validation-accuracy", "x|y"]),
              st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=10)),
              st.sampled_from(["", "2026-01-01T00:00:00Z ", "epoch 3: ", "{"])),
    st.builds(lambda d: __import__("json").dumps(d), st.dictionaries(st.sampled_from(["loss", "acc", "timestamp"]),
                                                                   json_values, max_size=3)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(metric_lines, max_size=20), st.sampled_from(["TEXT", "JSON"]))
def test_metrics_parser_never_crashes(lines, fmt):
    parser = MetricsParser(["loss", "acc", "Validation-accuracy"], None, fmt)
    for line in lines:
        for name, value in parser.feed(line):
            assert name in ("loss", "acc", "Validation-accuracy") and value == value and abs(value) != float("inf")
    obs = parser.observation()
    for m in obs["metrics"]:
        assert float(m["min"]) <= float(m["max"])
