"""Results on disk: ``status.json`` (Katib's ``Experiment.status``), ``trials.csv`` and a report.

The report is one self-contained HTML file (Optuna's plotly charts: optimization history,
parallel coordinates, parameter importances; the trials table) or a Markdown summary::

    from hp_components.report import write_outputs, html_report, markdown_report
    written = write_outputs("out", exp, result.status, result.history, run_dir=result.run_dir)
    print(markdown_report(exp, result.status, result.history, run_dir=result.run_dir))
    path, last_lines = trial_log(result.run_dir, trial)           # a trial's output.log and how it ends

A failed trial's row names its log; the report shows the last lines of its output.
"""

from __future__ import annotations

import contextlib
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
from hp_components.trials import FAILED, Trial

__all__ = ["write_outputs", "write_file", "trial_rows", "trial_log", "failure_note", "html_report", "markdown_report"]

#: how a failed trial's output ends, in the terminal and the report
TAIL_LINES = 5


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` at once (its folder made if need be); the file gets the permissions of any new file (0644 under
    the usual umask 022), not mkstemp's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def trial_log(run_dir: str | os.PathLike[str], trial: Trial, lines: int = TAIL_LINES) -> tuple[Path, list[str]]:
    """A trial's ``output.log`` in ``run_dir`` (the experiment's folder of trial folders) and its last
    ``lines`` non-blank lines ([] when there is no log); only the file's last 16 KiB are read::

        path, tail = trial_log("hp-runs/my-exp", trial)
    """
    path = Path(run_dir) / trial.name / "output.log"
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - (16 << 10))
            fh.seek(start)
            data = fh.read()
    except OSError:
        return path, []
    text = data.decode("utf-8", "replace").splitlines()
    if start > 0 and text:
        text = text[1:]  # cut in the middle of a line
    # a trial's output is shown in terminals and pages: control characters (escape sequences) become U+FFFD
    shown = ["".join(c if c.isprintable() or c == "\t" else "\ufffd" for c in line.rstrip()[:300]) for line in text
             if line.strip()]
    return path, shown[-lines:]


def failure_note(run_dir: str | os.PathLike[str], trial: Trial) -> str:
    """Why a trial failed, in words: its condition and message, how its output ends and where its log is."""
    path, tail = trial_log(run_dir, trial)
    ends = ("; its output ends:\n" + "\n".join(f"    {line}" for line in tail)) if tail else "; it printed nothing"
    return f"{trial.name} {trial.condition} ({trial.message or trial.reason}){ends}\n  log: {path}"


def _latest(trial: Trial) -> dict[str, str]:
    return {m["name"]: m.get("latest", "") for m in trial.observation.get("metrics", [])}


def trial_rows(experiment: Experiment, history: Sequence[Trial],
               run_dir: str | os.PathLike[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """A header and one row per trial: name, condition, objective, parameters, metrics (latest), and
    with ``run_dir`` the path of each trial's log."""
    params = [p.name for p in experiment.spec.parameters]
    metrics = experiment.spec.objective.metric_names
    header = ["name", "condition", "objective", *params, *metrics, "reason", "message", "startTime", "completionTime"]
    if run_dir is not None:
        header.append("log")
    rows = []
    for t in history:
        latest = _latest(t)
        rows.append([
            t.name, t.condition, "" if t.objective_value is None else repr(t.objective_value),
            *(t.assignments.get(p, "") for p in params), *(latest.get(m, "") for m in metrics),
            t.reason, t.message, t.start_time or "", t.completion_time or "",
            *([str(Path(run_dir) / t.name / "output.log")] if run_dir is not None else []),
        ])
    return header, rows


def write_outputs(directory: str | os.PathLike[str], experiment: Experiment, status: ExperimentStatus,
                  history: Sequence[Trial], run_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write ``status.json``, ``trials.csv`` and ``report.html`` into ``directory`` (each replaced
    atomically, mode 0644 under the usual umask); returns their paths. ``run_dir``, the experiment's
    folder of trial logs, adds each trial's log to the rows and failed trials' last lines to the report."""
    out = Path(directory)
    written = [out / "status.json", out / "trials.csv", out / "report.html"]
    write_file(written[0], json.dumps(status.to_dict(), indent=2) + "\n")
    header, rows = trial_rows(experiment, history, run_dir)

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    write_file(written[1], buf.getvalue())
    write_file(written[2], html_report(experiment, status, history, run_dir))
    return written


def _study(experiment: Experiment, history: Sequence[Trial]) -> optuna.Study:
    """Finished trials in an in-memory study, parameters as the trials saw them (for Optuna's charts):
    Succeeded ones with their objective, EarlyStopped ones as pruned; both with their reported values."""
    space = SearchSpace(experiment.spec.parameters)
    dists = space.shown_distributions
    study = optuna.create_study(direction=experiment.spec.objective.type, study_name=experiment.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([experiment.spec.objective.objective_metric_name])
    for t in history:
        if t.condition == "Succeeded" and t.objective_value is not None:
            state, value = optuna.trial.TrialState.COMPLETE, t.objective_value
        elif t.condition == "EarlyStopped":
            state, value = optuna.trial.TrialState.PRUNED, None
        else:
            continue
        try:
            params = space.shown(t.assignments)
            study.add_trial(optuna.trial.create_trial(state=state, value=value, params=params, distributions=dists,
                                                      intermediate_values=dict(t.intermediate_values),
                                                      user_attrs={"name": t.name}))
        except (ValueError, KeyError):
            continue  # a trial from an older spec falls outside today's ranges
    return study


def _figures(experiment: Experiment, history: Sequence[Trial]) -> list[tuple[str, str]]:
    """(title, HTML div) for each chart that has enough trials to draw."""
    import optuna.visualization as vis

    study = _study(experiment, history)
    n = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    curves = sum(len(t.intermediate_values) > 1 for t in study.trials)
    charts = [("Optimization history", vis.plot_optimization_history, n >= 1),
              ("Learning curves", vis.plot_intermediate_values, curves >= 1),
              ("Parallel coordinates", vis.plot_parallel_coordinate, n >= 2),
              ("Parameter importances", vis.plot_param_importances, n >= 2),
              ("Objective by parameter", vis.plot_slice, n >= 1)]
    out = []
    first = True
    for title, plot, enough in charts:
        if not enough:
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


def _legend(experiment: Experiment) -> str:
    """What the objective column and the metric columns of the trials table mean."""
    objective = experiment.spec.objective
    strategy = objective.strategies()[objective.objective_metric_name]
    return (f"objective: the value of {objective.objective_metric_name} that counts for the search, the {strategy} of "
            f"the values the trial reported (metricStrategy); {', '.join(objective.metric_names)}: the latest value "
            "each trial reported.")


def _failures(history: Sequence[Trial], run_dir: str | os.PathLike[str] | None,
              limit: int = 20) -> list[tuple[Trial, Path, list[str]]]:
    """Failed trials (the first ``limit``) with their log path and last lines (none without ``run_dir``)."""
    if run_dir is None:
        return []
    return [(t, *trial_log(run_dir, t)) for t in history if t.condition in FAILED][:limit]


def html_report(experiment: Experiment, status: ExperimentStatus, history: Sequence[Trial],
                run_dir: str | os.PathLike[str] | None = None) -> str:
    """A self-contained HTML report (no network needed to open it); ``run_dir`` (the experiment's folder
    of trial logs) adds each failed trial's log path and last lines of output."""
    header, rows = trial_rows(experiment, history, run_dir)
    best = status.best.name if status.best else None
    table = "".join(
        f"<tr{' class=best' if r[0] == best else ''}>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
        for r in rows)
    charts = "".join(f"<h2>{html.escape(t)}</h2>{div}" for t, div in _figures(experiment, history))
    summary = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _summary_rows(experiment, status))
    failures = "".join(
        f"<h3>{html.escape(t.name)}: {html.escape(t.condition)} ({html.escape(t.message or t.reason)})</h3>"
        f"<p>log: <code>{html.escape(str(path))}</code></p>"
        + (f"<pre>{html.escape(chr(10).join(tail))}</pre>" if tail else "<p>It printed nothing.</p>")
        for t, path, tail in _failures(history, run_dir))
    failed = f"<h2>Failed trials</h2>{failures}" if failures else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(experiment.name)}: hp-components report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}}tr.best{{background:#e6ffe6}}
pre{{background:#f6f6f6;padding:6px;overflow-x:auto}}</style>
</head><body>
<h1>{html.escape(experiment.name)}</h1>
<table class="summary">{summary}</table>
{charts or "<p>No finished trial yet: nothing to chart.</p>"}
{failed}
<h2>Trials</h2>
<p class="legend">{html.escape(_legend(experiment))}</p>
<table class="trials"><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in header)}</tr>{table}</table>
</body></html>
"""


def markdown_report(experiment: Experiment, status: ExperimentStatus, history: Sequence[Trial],
                    run_dir: str | os.PathLike[str] | None = None) -> str:
    """A Markdown summary: status, best trial, failed trials' logs (with ``run_dir``) and the trials table."""
    header, rows = trial_rows(experiment, history)
    keep = [i for i, h in enumerate(header) if h not in ("reason", "message", "startTime", "completionTime")]
    cell = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = [f"# {experiment.name}", "", *(f"- **{k}**: {cell(v)}" for k, v in _summary_rows(experiment, status)), ""]
    failures = _failures(history, run_dir)
    if failures:
        lines += ["## Failed trials", ""]
        for t, path, tail in failures:
            lines += [f"- **{t.name}** {t.condition} ({cell(t.message or t.reason)}), log `{path}`"]
            lines += ["", *(f"      {line}" for line in tail), ""] if tail else []
        lines += [""]
    lines += [_legend(experiment), "", "| " + " | ".join(header[i] for i in keep) + " |", "|" + "---|" * len(keep)]
    lines += ["| " + " | ".join(cell(r[i]) for i in keep) + " |" for r in rows]
    return "\n".join(lines) + "\n"
