"""Results on disk: ``status.json`` (Katib's ``Experiment.status``) and ``trials.csv``.

::

    from hp_components.report import write_outputs
    write_outputs("out", exp, result.status, result.history)   # out/status.json, out/trials.csv
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

from hp_components.experiment import Experiment
from hp_components.status import ExperimentStatus
from hp_components.trials import Trial

__all__ = ["write_outputs", "trial_rows"]


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _latest(trial: Trial) -> dict[str, str]:
    return {m["name"]: m.get("latest", "") for m in trial.observation.get("metrics", [])}


def trial_rows(experiment: Experiment, history: Sequence[Trial]) -> tuple[list[str], list[list[str]]]:
    """A header and one row per trial: name, condition, objective, parameters, metrics (latest)."""
    params = [p.name for p in experiment.spec.parameters]
    metrics = experiment.spec.objective.metric_names
    header = ["name", "condition", "objective", *params, *metrics, "reason", "message", "startTime", "completionTime"]
    rows = []
    for t in history:
        latest = _latest(t)
        rows.append([
            t.name, t.condition, "" if t.objective_value is None else repr(t.objective_value),
            *(t.assignments.get(p, "") for p in params), *(latest.get(m, "") for m in metrics),
            t.reason, t.message, t.start_time or "", t.completion_time or "",
        ])
    return header, rows


def write_outputs(directory: str | os.PathLike[str], experiment: Experiment, status: ExperimentStatus,
                  history: Sequence[Trial]) -> None:
    """Write ``status.json`` and ``trials.csv`` into ``directory`` (each replaced atomically)."""
    out = Path(directory)
    _atomic_write(out / "status.json", json.dumps(status.to_dict(), indent=2) + "\n")
    header, rows = trial_rows(experiment, history)

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    _atomic_write(out / "trials.csv", buf.getvalue())
