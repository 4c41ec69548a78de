"""Katib's trial success and failure conditions: GJSON paths evaluated against a job's JSON.

Katib decides a trial job's outcome with ``trialTemplate.successCondition`` and
``failureCondition``, GJSON paths (https://github.com/tidwall/gjson) evaluated on the job
object; a condition holds when the path yields an object or a non-empty array, and the failure
condition is checked first. This module evaluates the part of GJSON those conditions use:
keys (``\\`` escapes), array indexes, ``#`` (count, or map over the elements), queries
``#(path op value)`` (first match) and ``#(...)#`` (all matches) with ``== = != < <= > >= % !%``,
nested queries, and ``.`` / ``|`` separators with GJSON's difference between them after ``#``.
Modifiers (``@``), multipaths, wildcards in keys and ``~`` comparisons are refused by
:func:`parse` with a message, not misread. ::

    from hp_components.conditions import job_outcome
    job = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    job_outcome(job, success='status.conditions.#(type=="Complete")#|#(status=="True")#',
                failure='status.conditions.#(type=="Failed")#|#(status=="True")#')
    # -> ("Succeeded", {"type": "Complete", "status": "True"})

Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator

__all__ = ["parse", "get", "holds", "job_outcome", "ConditionError", "MISSING"]


class ConditionError(ValueError):
    """A condition this evaluator cannot read; the message says which part."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: what :func:`get` returns for a path that selects nothing (GJSON's non-existent result)
MISSING: Any = _Missing()

_OPS = ("==", "!=", "<=", ">=", "!%", "=", "<", ">", "%")


@dataclass(frozen=True)
class _Query:
    path: tuple["_Part", ...]
    op: str
    value: str | float | bool | None
    all: bool


@dataclass(frozen=True)
class _Part:
    sep: str  # "." or "|" before this component ("" for the first)
    key: str | None = None  # a key or index
    count: bool = False  # "#"
    query: _Query | None = None


def _top_level(text: str) -> Iterator[int]:
    """Indexes of the characters outside quotes and parentheses that no backslash escapes."""
    depth, quote, escaped = 0, False, False
    for i, ch in enumerate(text):
        if escaped or ch == "\\":
            escaped = not escaped
        elif quote:
            quote = ch != '"'
        elif ch == '"':
            quote = True
        elif ch in "()":
            depth += 1 if ch == "(" else -1
        elif depth == 0:
            yield i
    if quote or depth:
        raise ConditionError(f"unbalanced {'quote' if quote else 'parentheses'} in {text!r}")


def _split(path: str) -> list[tuple[str, str]]:
    """``(separator, component)`` pairs, splitting on ``.``/``|`` outside queries and quotes."""
    out, sep, start = [], "", 0
    for i in (i for i in _top_level(path) if path[i] in ".|"):
        out.append((sep, path[start:i]))
        sep, start = path[i], i + 1
    out.append((sep, path[start:]))
    return out


def _unescape(key: str) -> str:
    return re.sub(r"\\(.)", r"\1", key)


def _literal(text: str) -> str | float | bool | None:
    text = text.strip()
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return _unescape(text[1:-1])
    if text.startswith("~"):
        raise ConditionError(f"'~' comparisons ({text!r}) are not supported")
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _query(body: str, all_: bool) -> _Query:
    i = next((i for i in _top_level(body) if body[i] in "=!<>%"), None)
    if i is None:
        return _Query(parse(body.strip()), "", None, all_)
    op = next(o for o in _OPS if body.startswith(o, i))
    left = body[:i].strip()
    return _Query(parse(left) if left else (), op, _literal(body[i + len(op):]), all_)


def _component(sep: str, comp: str) -> _Part:
    if comp == "#":
        return _Part(sep, count=True)
    m = re.fullmatch(r"#\((.*)\)(#?)", comp, re.S)
    if m:
        return _Part(sep, query=_query(m.group(1), m.group(2) == "#"))
    if comp.startswith(("@", "{", "[", "!")) or re.search(r"(?<!\\)[*?]", comp):
        raise ConditionError(f"{comp!r}: modifiers, multipaths, literals and wildcards are not supported")
    if not comp:
        raise ConditionError("empty path component")
    return _Part(sep, key=_unescape(comp))


def parse(path: str) -> tuple[_Part, ...]:
    """The parsed path; raises :class:`ConditionError` for syntax outside the supported part of GJSON."""
    if not path.strip():
        raise ConditionError("the condition is empty")
    return tuple(_component(sep, comp) for sep, comp in _split(path.strip()))


def _like(value: str, pattern: str) -> bool:
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.S) is not None


def _matches(q: _Query, element: Any) -> bool:
    value = _walk(element, q.path) if q.path else element
    if value is MISSING:
        return False
    if not q.op:
        return True
    want, op = q.value, ("==" if q.op == "=" else q.op)
    if isinstance(value, bool):
        if op == "==":
            return want is value or str(want).lower() == str(value).lower()
        if op == "!=":
            return not (want is value or str(want).lower() == str(value).lower())
        return False
    if isinstance(value, (int, float)):
        try:
            target = float(want)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            target = 0.0
        return {"==": value == target, "!=": value != target, "<": value < target, "<=": value <= target,
                ">": value > target, ">=": value >= target}.get(op, False)
    if isinstance(value, str):
        text = want if isinstance(want, str) else ("true" if want is True else "false" if want is False
                                                   else "null" if want is None else format(want, "g"))
        if op in ("%", "!%"):
            return _like(value, text) == (op == "%")
        return {"==": value == text, "!=": value != text, "<": value < text, "<=": value <= text,
                ">": value > text, ">=": value >= text}[op]
    return False


def _map(items: list[Any], rest: tuple[_Part, ...]) -> list[Any]:
    return [r for r in (_walk(v, rest) for v in items) if r is not MISSING]


def _walk(value: Any, parts: tuple[_Part, ...]) -> Any:
    if not parts or value is MISSING:
        return value
    part, rest = parts[0], parts[1:]
    if part.count or part.query:
        if not isinstance(value, list):
            return MISSING
        maps = bool(rest) and rest[0].sep == "."
        if part.count:
            return _map(value, rest) if maps else _walk(len(value), rest)
        assert part.query is not None
        found = [v for v in value if _matches(part.query, v)]
        if part.query.all:
            return _map(found, rest) if maps else _walk(found, rest)
        return _walk(found[0], rest) if found else MISSING
    if isinstance(value, dict):
        return _walk(value.get(part.key, MISSING), rest)
    if isinstance(value, list) and part.key is not None and part.key.isdigit():
        index = int(part.key)
        return _walk(value[index], rest) if index < len(value) else MISSING
    return MISSING


def get(obj: Any, path: str) -> Any:
    """The value ``path`` selects in ``obj`` (decoded JSON), or :data:`MISSING`."""
    return _walk(obj, parse(path))


def holds(obj: Any, condition: str) -> tuple[bool, Any]:
    """Katib's test: the condition holds when it selects an object or a non-empty array.

    Returns ``(holds, detail)`` where ``detail`` is the selected object (the first one for an
    array), which for job conditions carries ``reason`` and ``message``.
    """
    value = get(obj, condition)
    if isinstance(value, dict):
        return True, value
    if isinstance(value, list) and value:
        return True, value[0]
    return False, None


def job_outcome(job: dict[str, Any], success: str, failure: str) -> tuple[str, Any]:
    """``("Failed" | "Succeeded" | "Running", detail)`` for a job object, failure checked first."""
    failed, detail = holds(job, failure)
    if failed:
        return "Failed", detail
    succeeded, detail = holds(job, success)
    return ("Succeeded", detail) if succeeded else ("Running", None)
