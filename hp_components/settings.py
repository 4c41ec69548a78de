"""Katib's ``algorithmSettings``: one table shape and one reader for search and early-stopping algorithms.

Katib passes every setting as a string; each table entry says how to parse it, the rule shown when it does
not hold, and (optionally) its default::

    from hp_components.settings import int_setting, read_settings
    table = {"start_step": int_setting(1, default=4)}
    read_settings(table, {"start_step": "0"}, "spec.earlyStopping", "medianstop")
    # ({'start_step': 4}, [('spec.earlyStopping.algorithmSettings[0].value',
    #                       'start_step must be a whole number >= 1, not \\'0\\'')])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

__all__ = ["Setting", "choice_setting", "float_setting", "int_setting", "read_settings"]


@dataclass(frozen=True)
class Setting:
    """One setting: how to parse Katib's string value, what is allowed, and its default (None: unset)."""

    parse: Callable[[str], Any]
    rule: str
    check: Callable[[Any], bool] = lambda v: True
    default: Any = None

    def read(self, raw: str) -> Any:
        value = self.parse(raw)
        if not self.check(value):
            raise ValueError
        return value


def int_setting(low: int, high: int | None = None, *, default: int | None = None) -> Setting:
    """A whole number in ``[low, high]``."""
    rule = f"a whole number >= {low}" + (f" and <= {high}" if high is not None else "")
    return Setting(lambda s: int(s, 10), rule, lambda v: v >= low and (high is None or v <= high), default)


def float_setting(low: float, high: float | None = None, low_open: bool = False, *,
                  default: float | None = None) -> Setting:
    """A finite number at least (or, ``low_open``, above) ``low`` and at most ``high``."""
    rule = f"a number {'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
    return Setting(
        float,
        rule,
        lambda v: math.isfinite(v) and (v > low if low_open else v >= low) and (high is None or v <= high),
        default,
    )


def choice_setting(*choices: str) -> Setting:
    """One of ``choices``, spelled exactly."""
    return Setting(str, "one of " + ", ".join(choices), lambda v: v in choices)


def read_settings(table: Mapping[str, Setting], raw: Mapping[str, str], path: str,
                  owner: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The parsed settings (defaults filled in) and every problem, each with its field path under ``path``."""
    values: dict[str, Any] = {k: s.default for k, s in table.items() if s.default is not None}
    problems: list[tuple[str, str]] = []
    for i, (key, text) in enumerate(raw.items()):
        where = f"{path}.algorithmSettings[{i}]"
        if key not in table:
            known = ", ".join(sorted(table)) or "none"
            problems.append((f"{where}.name", f"{key!r} is not a setting of {owner} (known: {known})"))
            continue
        try:
            values[key] = table[key].read(text)
        except (ValueError, TypeError):
            problems.append((f"{where}.value", f"{key} must be {table[key].rule}, not {text!r}"))
    return values, problems
