"""``hp-tune step lane-suggest|lane-record|lane-summary``: the lane steps' arguments, read with argparse.

Registered in the light step entry's table (``hp_components._step_cli.STEP_COMMANDS``), in its
style: no typer or rich, exit 2 on a bad argument, the step logic in :mod:`hp_components._lanes`.
A store that cannot be reached is a runtime fault: ``error: ...`` naming the host and the Secret,
exit 3 (the CLI's code for runtime faults)::

    from hp_components._step_cli import run_step
    code = run_step(["step", "lane-suggest", "--experiment", "exp.yaml", "--storage",
                     "postgresql+psycopg://hp@db/hp", "--lane", "0", "--items-out", "items.json"])
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

from hp_components._step_args import BadInput, StepFault, experiment_arg, write

__all__ = ["LANE_COMMANDS"]


def _storage(value: str) -> str:
    """``--storage`` checked before anything connects (:func:`hp_components.store.storage_url`); exit 2 if bad."""
    from hp_components._lanes import LANE_BACKENDS, LANE_NEED
    from hp_components.store import StoreConflict, storage_url

    try:
        storage_url(value, LANE_BACKENDS, LANE_NEED)
    except StoreConflict as e:
        raise BadInput(f"--storage {e}") from None
    return value


def _suggest(a: argparse.Namespace) -> None:
    """Claim a slot and suggest one trial; outputs its fan-out item, its name and whether the lane ends."""
    from hp_components._lanes import lane_suggest
    from hp_components.steps import fan_out_items

    claim = lane_suggest(experiment_arg(a.experiment), _storage(a.storage), lane=a.lane, run=a.run, depth=a.depth,
                         max_per_lane=a.max_per_lane, wait=a.wait, lost_after=a.lost_after)
    if a.items_out or a.name_out or a.done_out:
        write(a.items_out, fan_out_items([claim.item]) if not claim.done else [])
        write(a.name_out, claim.item.get("name", ""))
        write(a.done_out, "true" if claim.done else "false")
        write(a.depth_out, str(a.depth + (0 if claim.done else 1)))
    else:
        write(None, {"done": claim.done, "reason": claim.reason, "trial": claim.item})


def _record(a: argparse.Namespace) -> None:
    """Record the trial's observation (the engine's aggregated trial outputs, or the wrapper's JSON)."""
    from hp_components._lanes import lane_record, open_store

    text = a.observations.strip()
    if text and not text.startswith(("[", "{")):
        try:
            text = Path(text).read_text(encoding="utf-8").strip()
        except OSError:
            text = ""  # no observation file: the trial left none (recorded NoObservation)
    try:
        obs = json.loads(text) if text else []
    except json.JSONDecodeError:
        obs = []  # a truncated observation is no observation
    exp, storage = experiment_arg(a.experiment), _storage(a.storage)
    store = open_store(storage, exp)  # one store for the record and the summary
    try:
        trial = lane_record(exp, storage, a.name, obs, store=store)
    except ValueError as e:
        raise BadInput(str(e)) from None
    write(None, {"name": trial.name, "condition": trial.condition, "reason": trial.reason})
    if a.summary_out or a.best_out:  # the experiment so far (the engine's progress while the lanes run)
        from hp_components._lanes import lane_summary
        from hp_components.steps import status_summary

        result = lane_summary(exp, storage, store=store)
        for path, value in ((a.summary_out, status_summary(result["status"])), (a.best_out, result["best"])):
            if path:
                write(path, value)


def _summary(a: argparse.Namespace) -> None:
    """The experiment's status and best trial from the store (the entry point's outputs)."""
    from hp_components._lanes import lane_summary
    from hp_components.steps import status_summary

    result = lane_summary(experiment_arg(a.experiment), _storage(a.storage))
    objective = result["best"]["objective"]
    outs = {a.summary_out: status_summary(result["status"]), a.best_out: result["best"],
            a.best_parameters_out: result["best"]["parameters"], a.done_out: "true" if result["done"] else "false",
            a.objective_out: "" if objective is None else repr(float(objective))}
    if not any(outs):
        write(None, result)
    for path, value in outs.items():
        if path:
            write(path, value)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", required=True, help="The Experiment: a YAML/JSON file or inline JSON")
    p.add_argument("--storage", required=True,
                   help="The experiment store's URL without its password (that comes from $HP_STORAGE_PASSWORD)")


def _add_suggest(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--lane", required=True, help="This lane's id")
    p.add_argument("--run", default="", help="The run's id (the workflow's name): a retried step gets its claim back")
    p.add_argument("--depth", type=int, default=0, help="Trials this lane ran so far")
    p.add_argument("--max-per-lane", type=int, default=None, help="End the lane after this many trials (the depth limit)")
    p.add_argument("--wait", type=float, default=3600.0, help="Seconds to wait for a free slot before the lane ends")
    p.add_argument("--lost-after", type=float, default=None,
                   help="Seconds after which a lane trial still Running is lost (its workflow is gone): recorded "
                        "Failed, reason TrialLost (the compiler gives the longest a trial can run)")
    for name, text in (("items-out", "the claimed trial as one flat fan-out item ([] when the lane ends)"),
                       ("name-out", "the trial's name"), ("done-out", "'true' when the lane ends"),
                       ("depth-out", "the lane's depth after this trial")):
        p.add_argument(f"--{name}", type=Path, help=f"Write {text} here")


def _add_record(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--name", required=True, help="The trial lane-suggest claimed")
    p.add_argument("--observations", default="[]", help="The trial step's outputs (an engine's aggregate, the "
                                                        "wrapper's JSON, or a file); none: recorded NoObservation")
    p.add_argument("--summary-out", type=Path, help="Write the experiment's status so far (no trial lists) here")
    p.add_argument("--best-out", type=Path, help="Write the best trial so far {name, parameters, objective} here")


def _add_summary(p: argparse.ArgumentParser) -> None:
    _common(p)
    for name, text in (("summary-out", "the status without trial lists"), ("best-out", "{name, parameters, objective}"),
                       ("best-parameters-out", "the best trial's assignments"), ("objective-out", "the best objective"),
                       ("done-out", "'true' or 'false'")):
        p.add_argument(f"--{name}", type=Path, help=f"Write {text} here")


def _guarded(body: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    """A lane step's body whose unreachable store is a :class:`StepFault` (exit 3, a runtime fault)."""
    def run(a: argparse.Namespace) -> None:
        from hp_components._lanes import StoreUnreachable
        from hp_components.store import StoreConflict

        try:
            body(a)
        except StoreUnreachable as e:
            raise StepFault(str(e)) from None  # exit 3, a runtime fault, as the CLI's FAULT_EXIT
        except StoreConflict as e:  # the store holds this experiment with another spec: exit 2
            raise BadInput(str(e)) from None

    run.__doc__ = body.__doc__
    return run


#: ``hp-tune step lane-suggest|lane-record|lane-summary``: (options, body), as ``_step_cli.STEP_COMMANDS``
LANE_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], None]]] = {
    "lane-suggest": (_add_suggest, _guarded(_suggest)),
    "lane-record": (_add_record, _guarded(_record)),
    "lane-summary": (_add_summary, _guarded(_summary)),
}


