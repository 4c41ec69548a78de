"""How every ``hp-tune step`` command reads its arguments and writes its outputs (standard library
and the core only: the step pods import neither typer nor rich).

    from hp_components._step_args import BadInput, experiment_arg, write
    exp = experiment_arg("examples/random-digits.yaml")   # BadInput("--experiment: ...") when bad
    write(None, {"ok": True})                             # compact JSON on stdout (or into a file)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hp_components.experiment import Experiment
    from hp_components.trials import Trial

__all__ = ["BadInput", "StepFault", "experiment_arg", "history_arg", "json_arg", "write"]


class BadInput(Exception):
    """A user mistake in a step's arguments: printed as ``error: ...``, exit 2."""


class StepFault(Exception):
    """A runtime fault of a step (for example a store it cannot reach): ``error: ...``, exit 3."""


def json_arg(value: str, what: str) -> Any:
    """A JSON value given inline (starts with '{' or '['), as a file path, or empty (None)."""
    text = value.strip()
    if not text:
        return None
    if not text.startswith(("{", "[")):
        try:
            text = Path(value).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise BadInput(f"--{what}: cannot read {value}: {e.strerror or e}") from None
        if not text:
            return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput(f"--{what}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None


def experiment_arg(value: str) -> "Experiment":
    from hp_components.experiment import SpecError, load_experiment

    data = json_arg(value, "experiment") if value.strip().startswith("{") else None
    try:
        return load_experiment(data if data is not None else Path(value))
    except SpecError as e:
        raise BadInput("--experiment: " + "; ".join(f"{p}: {m}" for p, m in e.problems)) from None


def history_arg(value: str) -> list["Trial"]:
    from hp_components.trials import load_history

    data = json_arg(value, "history")
    try:
        return load_history(data if data is not None else [])
    except (ValueError, TypeError, KeyError) as e:
        raise BadInput(f"--history: {e}") from None


def write(path: Path | None, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if path is None:
        sys.stdout.write(text + "\n")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
