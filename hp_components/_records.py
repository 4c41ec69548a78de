"""Typed records read from JSON-like data and written back, driven by the dataclasses' type hints.

The Katib spec (:mod:`hp_components.spec`) is a set of plain dataclasses; this module turns a
dict from YAML or JSON into them, checking every value against its field's type, and lists every
problem with its field path instead of stopping at the first. Keys are the fields' camelCase names
(``objective_metric_name`` -> ``objectiveMetricName``, or ``field(metadata={"key": ...})``);
unknown keys are refused unless the class sets ``EXTRA = "extra"`` (they land in that field)::

    from dataclasses import dataclass
    from hp_components._records import build, dump

    @dataclass
    class Goal:
        metric_name: str
        value: float | None = None

    goal, problems = build(Goal, {"metricName": "loss", "value": "x"})
    # problems == [("value", "must be a number, not 'x'")]
    dump(Goal("loss", 0.1))   # {"metricName": "loss", "value": 0.1}

Standard library only: the pipeline steps import it on every pod start, where pydantic's import
and class building cost more than the step's own work (benchmarks/results/steps.json).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Callable, Literal, Union

__all__ = ["build", "dump", "camel", "key_of", "shown"]

_MISSING = dataclasses.MISSING
Problems = list[tuple[str, str]]


def camel(name: str) -> str:
    """``"objective_metric_name"`` -> ``"objectiveMetricName"`` (Katib's JSON keys)."""
    first, *rest = name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def key_of(f: dataclasses.Field) -> str:
    """The JSON key of a dataclass field: ``metadata["key"]``, else its camelCase name."""
    return f.metadata.get("key") or camel(f.name)


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to about ``limit`` characters for error messages (a 50 MB name is not echoed)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} characters" if isinstance(value, (str, bytes, list, dict)) else f"{len(text)} characters shown"
    return f"{text[:limit]}... ({size})"


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _where(path: str) -> str:
    return path or "(input)"


@functools.cache
def _fields(cls: type) -> tuple[tuple[dataclasses.Field, Any], ...]:
    """The dataclass's fields with their resolved types (resolved once per class)."""
    hints = typing.get_type_hints(cls)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls) if f.init)


def _literal_text(options: tuple[Any, ...]) -> str:
    shown_ = [repr(o) for o in options]
    return shown_[0] if len(shown_) == 1 else ", ".join(shown_[:-1]) + " or " + shown_[-1]


def _check(tp: Any, value: Any, path: str, problems: Problems) -> Any:
    """``value`` as type ``tp``; a problem appended (and None returned) when it is not one."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]  # the spec's unions are all ``X | None``
        return _check(inner, value, path, problems)
    if origin is Literal:
        options = typing.get_args(tp)
        if any(value == o and type(value) is type(o) for o in options):
            return value
        return _fail(problems, path, f"must be {_literal_text(options)}, not {shown(value)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            return _fail(problems, path, f"must be a mapping, not {type(value).__name__}")
        return _record(tp, value, path, problems)
    if origin is list:
        if not isinstance(value, list):
            return _fail(problems, path, f"must be a list, not {type(value).__name__}")
        (item,) = typing.get_args(tp)
        return [_check(item, v, _join(path, i), problems) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            return _fail(problems, path, f"must be a mapping, not {type(value).__name__}")
        _, item = typing.get_args(tp)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                _fail(problems, _join(path, str(k)), f"keys must be strings, not {type(k).__name__}")
                continue
            out[k] = _check(item, v, _join(path, k), problems)
        return out
    if tp is str:
        if isinstance(value, str):
            return value
        return _fail(problems, path, f"must be a string, not {type(value).__name__}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        return _fail(problems, path, f"must be true or false, not {shown(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return _fail(problems, path, f"must be a whole number, not {shown(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return _fail(problems, path, f"must be a number, not {shown(value)}")
    raise TypeError(f"{path}: no reader for the type {tp!r}")  # a spec class using a type this module lacks


def _fail(problems: Problems, path: str, message: str) -> None:
    problems.append((_where(path), message))
    return None


def _record(cls: type, data: dict[str, Any], path: str, problems: Problems) -> Any:
    extra_field = getattr(cls, "EXTRA", None)
    known: set[str] = set()
    kwargs: dict[str, Any] = {}
    for f, tp in _fields(cls):
        if f.name == extra_field:
            continue
        key = key_of(f)
        known.add(key)
        before: Callable[[Any], Any] | None = f.metadata.get("before")
        if key in data:
            value = before(data[key]) if before else data[key]
            kwargs[f.name] = _check(tp, value, _join(path, key), problems)
        elif f.default is _MISSING and f.default_factory is _MISSING:
            _fail(problems, _join(path, key), "is required")
    unknown = {k: v for k, v in data.items() if k not in known}
    if extra_field:
        kwargs[extra_field] = unknown
    else:
        for k in unknown:
            _fail(problems, _join(path, str(k)), "is not a Katib v1beta1 field (check the spelling)")
    try:
        return cls(**kwargs)
    except TypeError:  # a required field was missing (already a problem): no record to return
        return None


def build(cls: type, data: Any, path: str = "") -> tuple[Any, Problems]:
    """``cls`` read from ``data``, with every problem as ``(field path, message)``; the record is only
    complete when there are none."""
    problems: Problems = []
    return _check(cls, data, path, problems), problems


def dump(value: Any) -> Any:
    """A record as JSON-ready data: camelCase keys, None fields left out, extras merged back in."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        extra_field = getattr(type(value), "EXTRA", None)
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if f.name == extra_field:
                out.update({k: dump(x) for k, x in v.items() if k not in out})
            elif v is not None:
                out[key_of(f)] = dump(v)
        return out
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    return value
