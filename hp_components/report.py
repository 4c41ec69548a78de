"""Results on disk: ``status.json`` (Katib's ``Experiment.status``), ``trials.csv`` and a report.

The report is one self-contained HTML file (Optuna's plotly charts: optimization history,
parallel coordinates, parameter importances; the trials table) or a Markdown summary::

    from hp_components.report import write_outputs, html_report, markdown_report
    write_outputs("out", exp, result.status, result.history)   # out/status.json, trials.csv, report.html
    print(markdown_report(exp, result.status, result.history))
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import optuna

from hp_components.experiment import Experiment
from hp_components.space import SearchSpace
from hp_components.status import ExperimentStatus
from hp_components.trials import Trial

__all__ = ["write_outputs", "trial_rows", "html_report", "markdown_report"]


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
    """Write ``status.json``, ``trials.csv`` and ``report.html`` into ``directory`` (each replaced atomically)."""
    out = Path(directory)
    _atomic_write(out / "status.json", json.dumps(status.to_dict(), indent=2) + "\n")
    header, rows = trial_rows(experiment, history)

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    _atomic_write(out / "trials.csv", buf.getvalue())
    _atomic_write(out / "report.html", html_report(experiment, status, history))


def _study(experiment: Experiment, history: Sequence[Trial]) -> optuna.Study:
    """Finished trials in an in-memory study, parameters as the trials saw them (for Optuna's charts)."""
    space = SearchSpace(experiment.spec.parameters)
    dists = space.shown_distributions
    study = optuna.create_study(direction=experiment.spec.objective.type, study_name=experiment.name)
    for t in history:
        if t.condition != "Succeeded" or t.objective_value is None:
            continue
        try:
            params = space.shown(t.assignments)
            study.add_trial(optuna.trial.create_trial(value=t.objective_value, params=params, distributions=dists,
                                                      user_attrs={"name": t.name}))
        except (ValueError, KeyError):
            continue  # a trial from an older spec falls outside today's ranges
    return study


def _figures(experiment: Experiment, history: Sequence[Trial]) -> list[tuple[str, str]]:
    """(title, HTML div) for each chart that has enough trials to draw."""
    import optuna.visualization as vis

    study = _study(experiment, history)
    n = len(study.trials)
    charts = [("Optimization history", vis.plot_optimization_history, 1),
              ("Parallel coordinates", vis.plot_parallel_coordinate, 2),
              ("Parameter importances", vis.plot_param_importances, 2),
              ("Objective by parameter", vis.plot_slice, 1)]
    out = []
    first = True
    for title, plot, needed in charts:
        if n < needed:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # e.g. importances of a single-valued parameter
        out.append((title, fig.to_html(full_html=False, include_plotlyjs="inline" if first else False)))
        first = False
    return out


def _summary_rows(experiment: Experiment, status: ExperimentStatus) -> list[tuple[str, str]]:
    c = status.counts
    best = status.best
    metric = experiment.spec.objective.objective_metric_name
    rows = [("Status", f"{status.condition}: {status.reason}"), ("Objective", f"{experiment.spec.objective.type} {metric}"),
            ("Algorithm", experiment.spec.algorithm.algorithm_name),
            ("Trials", f"{c['trials']} ({c['trialsSucceeded']} succeeded, {c['trialsFailed']} failed, "
                       f"{c['trialMetricsUnavailable']} without metrics, {c['trialsEarlyStopped']} early stopped, "
                       f"{c['trialsKilled']} killed)")]
    if best is not None:
        rows.append(("Best trial", f"{best.name}: {metric}={best.objective_value:.6g}"))
        rows.append(("Best parameters", ", ".join(f"{k}={v}" for k, v in best.assignments.items())))
    return rows


def html_report(experiment: Experiment, status: ExperimentStatus, history: Sequence[Trial]) -> str:
    """A self-contained HTML report (no network needed to open it)."""
    header, rows = trial_rows(experiment, history)
    best = status.best.name if status.best else None
    table = "".join(
        f"<tr{' class=best' if r[0] == best else ''}>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
        for r in rows)
    charts = "".join(f"<h2>{html.escape(t)}</h2>{div}" for t, div in _figures(experiment, history))
    summary = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _summary_rows(experiment, status))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(experiment.name)}: hp-components report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}}tr.best{{background:#e6ffe6}}</style>
</head><body>
<h1>{html.escape(experiment.name)}</h1>
<table class="summary">{summary}</table>
{charts or "<p>No finished trial yet: nothing to chart.</p>"}
<h2>Trials</h2>
<table class="trials"><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in header)}</tr>{table}</table>
</body></html>
"""


def markdown_report(experiment: Experiment, status: ExperimentStatus, history: Sequence[Trial]) -> str:
    """A Markdown summary: status, best trial and the trials table."""
    header, rows = trial_rows(experiment, history)
    keep = [i for i, h in enumerate(header) if h not in ("reason", "message", "startTime", "completionTime")]
    cell = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = [f"# {experiment.name}", "", *(f"- **{k}**: {cell(v)}" for k, v in _summary_rows(experiment, status)), "",
             "| " + " | ".join(header[i] for i in keep) + " |", "|" + "---|" * len(keep)]
    lines += ["| " + " | ".join(cell(r[i]) for i in keep) + " |" for r in rows]
    return "\n".join(lines) + "\n"
