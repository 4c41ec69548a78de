"""The spec loader reads YAML as the Kubernetes API server does (hp_components/_yaml.py), and hostile
YAML is refused before anything is built (issue 15, point 3).

Bounds are by design: aliases are counted on PyYAML's node graph (each node once), so the time
checks below are generous guards (10 s) against a regression that expands, not benchmarks.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hp_components._yaml import ALIAS_BUDGET, YamlRefused, load_documents, shown
from hp_components.cli import main
from hp_components.experiment import SpecError, load_experiment
from tests.conftest import DATA


def _laughs(levels: int, fan: int = 9) -> str:
    return "l0: &a0 lol\n" + "".join(
        f"l{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]\n" for i in range(1, levels + 1))


def _merges(levels: int) -> str:
    return "m0: &m0 {k0: v}\n" + "".join(
        f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: v}}\n" for i in range(1, levels + 1))


def test_billion_laughs_is_refused_without_building_it():
    start = time.monotonic()
    with pytest.raises(YamlRefused, match=f"expand to more than {ALIAS_BUDGET} nodes"):
        load_documents(_laughs(9))  # 9**9 leaves if built
    assert time.monotonic() - start < 10


def test_deep_merge_keys_are_refused_without_flattening_them():
    start = time.monotonic()
    with pytest.raises(YamlRefused, match="expand to more than"):
        load_documents(_merges(24))  # 2**24 merged pairs if flattened
    assert time.monotonic() - start < 10


def test_the_budget_is_on_what_aliases_add():
    # 3 levels of 9: 1 + 9 + 81 + 729 nodes expanded from 4 written ones (plus the keys)
    text = _laughs(3)
    assert load_documents(text, budget=1000)[0]["l3"][0][0] == ["lol"] * 9
    with pytest.raises(YamlRefused):
        load_documents(text, budget=500)
    # a large spec written out, without aliases, is not held to the budget
    big = "items:\n" + "".join(f"- {{name: n{i}, value: {i}}}\n" for i in range(ALIAS_BUDGET))
    assert len(load_documents(big)[0]["items"]) == ALIAS_BUDGET


def test_ordinary_anchors_and_merges_still_work():
    docs = load_documents("base: &b {image: python:3.11, cpu: 1}\n"
                          "a: {<<: *b, cpu: 2}\n"
                          "b: {<<: [*b, {gpu: 1}]}\n"
                          "c: *b\n")
    assert docs == [{"base": {"image": "python:3.11", "cpu": 1}, "a": {"image": "python:3.11", "cpu": 2},
                     "b": {"image": "python:3.11", "cpu": 1, "gpu": 1}, "c": {"image": "python:3.11", "cpu": 1}}]


@pytest.mark.parametrize("text, path", [
    ("a: &x [1, *x]\n", "a[1]"),
    ("spec: &x {objective: *x}\n", "spec.objective"),
    ("a: &x {b: [{c: *x}]}\n", "a.b[0].c"),
])
def test_a_self_referencing_alias_is_refused_with_its_path(text, path):
    with pytest.raises(YamlRefused, match="alias to the value that holds it") as err:
        load_documents(text)
    assert err.value.path == path


@pytest.mark.parametrize("text, path, tag", [
    ("metadata: {name: !!binary aGk=}\n", "metadata.name", "!!binary"),
    ("metadata: !!set {a, b}\n", "metadata", "!!set"),
    ("a: !!omap [{x: 1}]\n", "a", "!!omap"),
    ("a: !!timestamp 2026-01-01\n", "a", "!!timestamp"),
    ("a: !!python/object/apply:os.system [echo]\n", "a", "!!python/object/apply:os.system"),
    ("a: !mine 3\n", "a", "!mine"),
    ("!!binary aGk=\n", "", "!!binary"),
    ("a: {!!binary aGk=: 1}\n", "a", "!!binary"),
])
def test_tags_that_are_not_json_are_refused(text, path, tag):
    with pytest.raises(YamlRefused, match="not a JSON type") as err:
        load_documents(text)
    assert err.value.path == path and tag in err.value.message and "line 1" in err.value.message


def test_json_tags_and_implicit_types_keep_their_meaning():
    docs = load_documents("a: !!str 12\nb: !!int '7'\nc: !!float 1\nd: 2026-01-01\ne: 2026-01-01T10:00:00Z\n"
                          "f: =\ng: yes\nh: ~\n1: one\ntrue: two\n")
    assert docs == [{"a": "12", "b": 7, "c": 1.0, "d": "2026-01-01", "e": "2026-01-01T10:00:00Z",
                     "f": "=", "g": True, "h": None, "1": "one", "true": "two"}]


def test_duplicate_keys_are_refused_at_their_path():
    with pytest.raises(YamlRefused, match=r"is given twice \(line 2, column 3 and line 4, column 3\)") as err:
        load_documents("spec:\n  maxTrialCount: 3\n  parallelTrialCount: 1\n  maxTrialCount: 5\n")
    assert err.value.path == "spec.maxTrialCount"
    with pytest.raises(YamlRefused, match="given twice"):  # quoting does not make it another key
        load_documents("a: 1\n'a': 2\n")


def test_a_mapping_as_a_key_is_refused():
    with pytest.raises(YamlRefused, match="has a list as a key"):
        load_documents("a: {? [x, y] : 1}\n")


def test_a_value_that_its_tag_cannot_hold_is_a_yaml_error_at_the_value():
    with pytest.raises(SpecError, match="not valid YAML at line 1, column 4: not a value of its tag !!int"):
        load_experiment("a: !!int abc\n")


@pytest.mark.skipif(not getattr(yaml, "__with_libyaml__", False),
                    reason="PyYAML without libyaml scans a 50 MB scalar in pure Python (about 20 s)")
def test_a_50_mb_name_is_refused_quickly_and_not_echoed(tmp_path, capsys):
    text = (DATA / "basic.yaml").read_text().replace("name: basic", "name: " + "x" * 50_000_000, 1)
    path = tmp_path / "huge.yaml"
    path.write_text(text)
    start = time.monotonic()
    assert main(["validate", str(path)]) == 2
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err
    assert "metadata.name:" in err and "(50000000 characters)" in err and len(err) < 2000


def test_every_message_is_cut_when_long():
    err = SpecError([("spec.parameters[0].name", "x" * 100_000 + " is used by another parameter")])
    [(path, message)] = err.problems
    assert len(message) <= SpecError.MAX_TEXT + 40 and message.endswith("is used by another parameter")
    assert "characters cut" in message
    assert shown("abc") == "'abc'" and shown("y" * 1000).endswith("(1000 characters)")


def _values(leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[str] = st.text(max_size=12)) -> st.SearchStrategy[Any]:
    return st.recursive(leaves, lambda children: st.lists(children, max_size=4)
                        | st.dictionaries(keys, children, max_size=4), max_leaves=30)


_LEAVES = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
_BMP_TEXT = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]), max_size=20)
_BMP = st.none() | st.booleans() | st.integers() | _BMP_TEXT


@settings(max_examples=300, deadline=None)
@given(_values(_LEAVES | st.floats(allow_nan=False, allow_infinity=False)), _values(_BMP, _BMP_TEXT), st.booleans())
def test_any_json_document_reads_back_unchanged(value, no_floats, flow):
    """The loader refuses only what JSON cannot say and changes no meaning: every JSON value, dumped
    as YAML (block or flow style) or as JSON, reads as PyYAML's own safe loader reads it, and JSON
    text reads back as the value itself. Two YAML 1.1 limits keep the JSON leg narrower, as
    before this loader: JSON's surrogate-pair escapes (``"\\ud800\\udc00"``, for characters past
    U+FFFF) are not YAML, and YAML 1.1 reads an exponent without a dot (``5e-324``) as a string."""
    safe = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for text in (yaml.safe_dump(value, default_flow_style=flow, allow_unicode=True), json.dumps(no_floats)):
        assert load_documents(text) == [yaml.load(text, Loader=safe)]
    assert load_documents(json.dumps(no_floats)) == [no_floats]
