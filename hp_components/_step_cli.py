"""``hp-tune step suggest`` and ``hp-tune step collect`` without the CLI's libraries.

Every suggest and collect pod of a KFP or Argo run is a fresh ``hp-tune step suggest`` or
``hp-tune step collect`` process, so what those two import is paid every round. The console
script (:mod:`hp_components._entry`) and ``python -m hp_components.cli`` hand them here before
typer, rich and the SQL store are imported: the arguments are read with :mod:`argparse` (the
options of the CLI's ``step`` commands, exit 2 on a bad one) and only :mod:`hp_components.steps`
and what it needs is loaded. ``--help`` and every other command stay with the CLI::

    from hp_components._step_cli import is_step, run_step
    if is_step(["step", "suggest", "--experiment", "exp.yaml"]):
        code = run_step(["step", "suggest", "--experiment", "exp.yaml"])   # prints the batch
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Sequence

if TYPE_CHECKING:
    from hp_components.experiment import Experiment
    from hp_components.trials import Trial

__all__ = ["STEP_COMMANDS", "is_step", "run_step"]


class _BadInput(Exception):
    """A user mistake in the step's arguments: printed as ``error: ...``, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # the CLI's usage errors: exit 2, no traceback
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def _json_arg(value: str, what: str) -> Any:
    """A JSON value given inline (starts with '{' or '['), as a file path, or empty (None)."""
    text = value.strip()
    if not text:
        return None
    if not text.startswith(("{", "[")):
        try:
            text = Path(value).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise _BadInput(f"--{what}: cannot read {value}: {e.strerror or e}") from None
        if not text:
            return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise _BadInput(f"--{what}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None


def _experiment_arg(value: str) -> "Experiment":
    from hp_components.experiment import SpecError, load_experiment

    data = _json_arg(value, "experiment") if value.strip().startswith("{") else None
    try:
        return load_experiment(data if data is not None else Path(value))
    except SpecError as e:
        raise _BadInput("--experiment: " + "; ".join(f"{p}: {m}" for p, m in e.problems)) from None


def _history_arg(value: str) -> list["Trial"]:
    from hp_components.trials import load_history

    data = _json_arg(value, "history")
    try:
        return load_history(data if data is not None else [])
    except (ValueError, TypeError, KeyError) as e:
        raise _BadInput(f"--history: {e}") from None


def _write(path: Path | None, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if path is None:
        sys.stdout.write(text + "\n")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _suggest(a: argparse.Namespace) -> None:
    """Suggest the next batch: [{name, parameterAssignments, parameters}], [] when nothing is left."""
    exp = _experiment_arg(a.experiment)
    history = _history_arg(a.history)
    from hp_components.steps import fan_out_items, slim, suggest_step

    batch = suggest_step(exp, history, a.count)
    _write(a.trials_out, batch)
    if a.params_out:
        _write(a.params_out, slim(batch))
    if a.items_out:
        _write(a.items_out, fan_out_items(batch))


def _collect(a: argparse.Namespace) -> None:
    """Record a batch's observations; report status, done and the best trial (and the next batch)."""
    exp = _experiment_arg(a.experiment)
    batch = _json_arg(a.trials, "trials") or []
    folder = Path(a.observations)
    if a.observations.strip() and not a.observations.strip().startswith(("[", "{")) and folder.is_dir():
        obs: Any = {}
        for f in sorted(folder.glob("*.json")):
            item = _json_arg(str(f), "observations")
            if isinstance(item, dict):
                obs[str(item.get("name") or f.stem)] = item
    else:
        obs = _json_arg(a.observations, "observations") or []
    if not isinstance(batch, list) or not isinstance(obs, (list, dict)):
        raise _BadInput("--trials must be a JSON list and --observations a JSON list or object")
    history = _history_arg(a.history)
    from hp_components.steps import collect_step, fan_out_items, slim, status_summary

    result = collect_step(exp, history, batch, obs, suggest_next=a.next_trials_out is not None)
    if a.next_trials_out:
        _write(a.next_trials_out, result["next"])
        if a.next_params_out:
            _write(a.next_params_out, slim(result["next"]))
        if a.next_items_out:
            _write(a.next_items_out, fan_out_items(result["next"]))
    if a.summary_out:
        _write(a.summary_out, status_summary(result["status"]))
    if a.history_out:
        _write(a.history_out, result["history"])
    if a.status_out:
        _write(a.status_out, result["status"])
    if a.done_out:
        _write(a.done_out, "true" if result["done"] else "false")
    if a.best_out:
        _write(a.best_out, result["best"])
    if a.best_parameters_out:
        _write(a.best_parameters_out, result["best"]["parameters"])
    if a.objective_out:
        objective = result["best"]["objective"]
        _write(a.objective_out, "" if objective is None else repr(float(objective)))
    if not any((a.history_out, a.status_out, a.done_out, a.best_out, a.summary_out, a.next_trials_out,
                a.best_parameters_out, a.objective_out)):
        _write(None, result)


def _parser(command: str) -> _Parser:
    """The options of ``hp-tune step <command>`` (as ``hp-tune step <command> --help`` lists them)."""
    p = _Parser(prog=f"hp-tune step {command}", allow_abbrev=False, add_help=False)
    p.add_argument("--experiment", required=True)
    p.add_argument("--history", default="")
    outputs = {"suggest": ["trials-out", "params-out", "items-out"],
               "collect": ["history-out", "status-out", "done-out", "best-out", "summary-out", "next-trials-out",
                           "next-params-out", "next-items-out", "best-parameters-out", "objective-out"]}[command]
    if command == "suggest":
        p.add_argument("--count", type=int, default=None)
    else:
        p.add_argument("--trials", default="[]")
        p.add_argument("--observations", default="[]")
    for name in outputs:
        p.add_argument(f"--{name}", type=Path, default=None)
    return p


#: the step commands run here (without typer); ``hp-tune step launch`` and the rest go to the CLI
STEP_COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {"suggest": _suggest, "collect": _collect}


def is_step(argv: Sequence[str]) -> bool:
    """True for ``step suggest ...`` and ``step collect ...`` (not their ``--help``): handled here."""
    return len(argv) >= 2 and argv[0] == "step" and argv[1] in STEP_COMMANDS and not {"--help", "-h"} & set(argv[2:])


def run_step(argv: Sequence[str]) -> int:
    """Run ``step suggest|collect <options>``; the exit code (2: bad input, said on stderr)."""
    try:
        args = _parser(argv[1]).parse_args(list(argv[2:]))
    except SystemExit as e:
        return int(e.code or 0)
    try:
        STEP_COMMANDS[argv[1]](args)
    except _BadInput as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    return 0
