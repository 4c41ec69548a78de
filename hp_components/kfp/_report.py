"""The run's report for the KFP UI: metrics (a ``Metrics`` artifact), Markdown and HTML (an inline SVG plot).

Plain Python (no KFP import), so the report is testable without a pipeline::

    from hp_components.kfp._report import build_report
    rep = build_report(exp, status, history)
    rep.metrics     # {"best-objective": 0.97, "trials": 12, "trials-succeeded": 11, ...}
    rep.markdown    # status, best trial, the plot (an SVG data URI), trials table
    rep.html        # the same plus the objective over trials as an SVG line chart
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from typing import Any, Sequence

from hp_components.experiment import Experiment
from hp_components.trials import Trial

__all__ = ["Report", "build_report", "objective_svg"]

_MAX_ROWS = 200


@dataclass
class Report:
    metrics: dict[str, float]
    markdown: str
    html: str


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def objective_svg(experiment: Experiment, history: Sequence[Trial], width: int = 640, height: int = 260) -> str:
    """The objective of each trial (dots) and the best so far (a step line), as an SVG document."""
    maximize = experiment.spec.objective.type == "maximize"
    points = [(i, t.objective_value) for i, t in enumerate(history) if t.objective_value is not None]
    pad = 40
    if not points:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
                f'<text x="{pad}" y="{height // 2}">no trial reported an objective</text></svg>')
    lo = min(v for _, v in points)
    hi = max(v for _, v in points)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    n = max(len(history) - 1, 1)
    sx = lambda i: pad + (width - 2 * pad) * i / n  # noqa: E731
    sy = lambda v: height - pad - (height - 2 * pad) * (v - lo) / (hi - lo)  # noqa: E731
    best: list[tuple[float, float]] = []
    current: float | None = None
    for i, v in points:
        if current is None or (v > current if maximize else v < current):
            current = v
        best.append((sx(i), sy(current)))
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in best)
    dots = "".join(f'<circle cx="{sx(i):.1f}" cy="{sy(v):.1f}" r="3" fill="#1f77b4"><title>{html.escape(history[i].name)}: '
                   f'{v:.6g}</title></circle>' for i, v in points)
    metric = html.escape(experiment.spec.objective.objective_metric_name)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>'
        f'<text x="{pad}" y="{pad - 8}">{metric} per trial; line: best so far</text>'
        f'<text x="2" y="{pad + 4}">{hi:.4g}</text><text x="2" y="{height - pad}">{lo:.4g}</text>'
        f'<text x="{width - pad}" y="{height - pad + 16}" text-anchor="end">trial {len(history) - 1}</text>'
        f'<polyline points="{line}" fill="none" stroke="#d62728" stroke-width="2"/>{dots}</svg>'
    )


def build_report(experiment: Experiment, status: dict[str, Any], history: Sequence[Trial]) -> Report:
    """Metrics, Markdown and HTML for the experiment's status (Katib's shape) and history."""
    spec = experiment.spec
    metric = spec.objective.objective_metric_name
    params = [p.name for p in spec.parameters]
    cond = status["conditions"][-1]
    optimal = status.get("currentOptimalTrial") or {}
    best_name = optimal.get("bestTrialName", "")
    best = next((t for t in history if t.name == best_name), None)
    counts = {
        "trials": status.get("trials", 0), "trials-succeeded": status.get("trialsSucceeded", 0),
        "trials-failed": status.get("trialsFailed", 0),
        "trials-metrics-unavailable": status.get("trialMetricsUnavailable", 0),
    }
    metrics: dict[str, float] = {k: float(v) for k, v in counts.items()}
    if best is not None and best.objective_value is not None:
        metrics["best-objective"] = float(best.objective_value)

    md = [f"# {experiment.name}: {cond['type']}", "", f"**{cond['reason']}**: {cond['message']}", ""]
    md.append(f"{spec.objective.type} `{metric}` with `{spec.algorithm.algorithm_name}`; "
              + ", ".join(f"{k.replace('-', ' ')}: {int(v)}" for k, v in counts.items()))
    md.append("")
    if best is not None:
        md.append(f"Best trial `{best.name}`: {metric} = {_fmt(best.objective_value)} ("
                  + ", ".join(f"{k}={v}" for k, v in best.assignments.items()) + ")")
        md.append("")
    svg = objective_svg(experiment, history)
    md.append(f"![{metric} over trials](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})")
    md.append("")
    header = ["trial", "condition", metric, *params, "reason"]
    md.append("| " + " | ".join(header) + " |")
    md.append("|" + "---|" * len(header))
    rows = list(history)[-_MAX_ROWS:]
    for t in rows:
        cells = [t.name + (" (best)" if t.name == best_name else ""), t.condition, _fmt(t.objective_value),
                 *(t.assignments.get(p, "") for p in params), (t.reason + (f": {t.message}" if t.message else ""))]
        md.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    if len(history) > _MAX_ROWS:
        md.append(f"\n(the last {_MAX_ROWS} of {len(history)} trials)")
    markdown = "\n".join(md) + "\n"

    esc = html.escape
    table = "".join(
        "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in (t.name, t.condition, _fmt(t.objective_value),
                                                            *(t.assignments.get(p, "") for p in params), t.reason))
        + "</tr>" for t in rows)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>" + esc(experiment.name) + "</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>"
        "</head><body>"
        f"<h2>{esc(experiment.name)}: {esc(cond['type'])}</h2><p><b>{esc(cond['reason'])}</b>: {esc(cond['message'])}</p>"
        + (f"<p>Best trial <code>{esc(best.name)}</code>: {esc(metric)} = {_fmt(best.objective_value)} ("
           + esc(", ".join(f"{k}={v}" for k, v in best.assignments.items())) + ")</p>" if best is not None else "")
        + objective_svg(experiment, history)
        + "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" + table + "</table></body></html>"
    )
    return Report(metrics=metrics, markdown=markdown, html=page)
