"""``hp-tune step suggest|collect|launch``: the pipeline steps, without the CLI's libraries.

Every suggest and collect pod of a KFP or Argo run is a fresh ``hp-tune step suggest`` or
``hp-tune step collect`` process, so what those two import is paid every round. The console
script (:mod:`hp_components._entry`) and ``python -m hp_components.cli`` hand them here before
typer, rich and the SQL store are imported: the arguments are read with :mod:`argparse` (exit 2
on a bad one) and only :mod:`hp_components.steps` and what it needs is loaded. This module is the
only definition of the step commands; ``hp-tune --help`` lists them through a stub in the CLI::

    from hp_components._step_cli import is_step, run_step
    if is_step(["step", "suggest", "--experiment", "exp.yaml"]):
        code = run_step(["step", "suggest", "--experiment", "exp.yaml"])   # prints the batch
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from hp_components._lane_cli import LANE_COMMANDS
from hp_components._step_args import BadInput as _BadInput
from hp_components._step_args import StepFault
from hp_components._step_args import experiment_arg as _experiment_arg
from hp_components._step_args import history_arg as _history_arg
from hp_components._step_args import json_arg as _json_arg
from hp_components._step_args import write as _write

__all__ = ["STEP_COMMANDS", "is_step", "run_step"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # the CLI's usage errors: exit 2, no traceback
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


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


def _launch(a: argparse.Namespace) -> None:
    """Run a trial as a Kubernetes job (Job, PyTorchJob, TFJob, MPIJob, XGBoostJob) and report its metrics."""
    exp = _experiment_arg(a.experiment)
    if any("=" not in p for p in a.param):
        raise _BadInput("--param takes NAME=VALUE (a trialParameter's name and this trial's value)")
    values = dict(p.partition("=")[::2] for p in a.param)
    from hp_components.jobs import JobTrialError, KubeJobs, default_namespace, launch

    try:
        result = launch(exp, a.name, values, KubeJobs.from_environment(),
                        namespace=a.namespace or exp.metadata.namespace or default_namespace(),
                        create=not a.observe_only, poll=a.poll)
    except JobTrialError as e:
        raise _BadInput(str(e)) from None
    _write(a.output, result)


_EXPERIMENT = "The Experiment: a YAML/JSON file or inline JSON"
_BATCH = "the batch as flat fan-out items ({hp-trial-name, trialParameter: value})"


def _add_suggest(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", required=True, help=_EXPERIMENT)
    p.add_argument("--history", default="", help="History JSON (a file or inline); empty for a new experiment")
    p.add_argument("--count", type=int, default=None, help="How many trials (default: parallelTrialCount)")
    p.add_argument("--trials-out", type=Path, help="Write the batch here (default: stdout)")
    p.add_argument("--params-out", type=Path, help="Also write the batch without sampler state (for a fan-out)")
    p.add_argument("--items-out", type=Path, help="Also write " + _BATCH)


def _add_collect(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", required=True, help=_EXPERIMENT)
    p.add_argument("--history", default="", help="History JSON before this batch (a file or inline)")
    p.add_argument("--trials", default="[]", help="The batch the suggest step returned (a file or inline JSON)")
    p.add_argument("--observations", default="[]", help="The wrappers' outputs: a JSON list in batch order, a JSON "
                                                        "object by trial name, or a folder of *.json files")
    for name, text in (("history-out", "the new history"), ("status-out", "Katib's Experiment.status"),
                       ("done-out", "'true' or 'false'"), ("best-out", "{name, parameters, objective} of the best trial"),
                       ("summary-out", "the status without trial lists (small)"),
                       ("next-trials-out", "the next batch, suggested now ([] when done)"),
                       ("next-params-out", "with --next-trials-out: the batch without sampler state"),
                       ("next-items-out", "with --next-trials-out: " + _BATCH),
                       ("best-parameters-out", "the best trial's assignments {name: value}"),
                       ("objective-out", "the best objective value (empty: none yet)")):
        p.add_argument(f"--{name}", type=Path, help=f"Write {text} here")


def _add_launch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", required=True, help=_EXPERIMENT)
    p.add_argument("--name", required=True, help="The trial's name (the job's name)")
    p.add_argument("--param", action="append", default=[], help="NAME=VALUE: a trialParameter's value (repeat for each)")
    p.add_argument("--namespace", help="Namespace of the job (default: the experiment's, else the pod's own, else the "
                                       "kubeconfig context's)")
    p.add_argument("--output", type=Path, help="Write the trial's result JSON here (default: stdout)")
    p.add_argument("--observe-only", action="store_true",
                   help="Do not create the job, wait for the one an earlier step created")
    p.add_argument("--poll", type=float, default=5.0, help="Seconds between status checks")


#: ``hp-tune step <command>``: (what it does, its options, its body)
STEP_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], None]]] = {
    "suggest": (_add_suggest, _suggest),
    "collect": (_add_collect, _collect),
    "launch": (_add_launch, _launch),
    **LANE_COMMANDS,  # lane-suggest, lane-record, lane-summary: the lanes over a shared store (hp_components._lane_cli)
}
#: one line for ``hp-tune --help``
HELP = ("The pipeline steps KFP and Argo run: suggest, collect, launch, lane-suggest, lane-record, lane-summary "
        "(JSON in, JSON out; hp-tune step --help)")


def _parser() -> _Parser:
    """``hp-tune step`` and its commands' options (``hp-tune step suggest --help`` lists them)."""
    p = _Parser(prog="hp-tune step", allow_abbrev=False, description=HELP)
    commands = p.add_subparsers(dest="command", required=True, metavar="{" + ",".join(STEP_COMMANDS) + "}",
                                parser_class=_Parser)
    for name, (add, body) in STEP_COMMANDS.items():
        sub = commands.add_parser(name, help=(body.__doc__ or "").splitlines()[0], description=body.__doc__,
                                  allow_abbrev=False)
        add(sub)
    return p


def is_step(argv: Sequence[str]) -> bool:
    """True for ``step ...`` (``hp-tune step suggest``, ``collect``, ``launch`` and their ``--help``): handled here."""
    return len(argv) >= 1 and argv[0] == "step"


def run_step(argv: Sequence[str]) -> int:
    """Run ``step <command> <options>``; the exit code (2: bad input, 3: a runtime fault, said on stderr)."""
    try:
        args = _parser().parse_args(list(argv[1:]))
    except SystemExit as e:
        return int(e.code or 0)
    try:
        STEP_COMMANDS[args.command][1](args)
    except _BadInput as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    except StepFault as e:  # a runtime fault (a store it cannot reach): the CLI's FAULT_EXIT
        sys.stderr.write(f"error: {e}\n")
        return 3
    return 0
