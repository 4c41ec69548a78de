"""Reports (HTML rendered in headless Chromium, Markdown) and the dashboard on a real run's store."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hp_components.experiment import parse_experiment
from hp_components.local import run_local
from tests.conftest import ROOT, script_experiment

TRIAL = """
import sys
x = float(sys.argv[1].split("=")[1]); y = sys.argv[2].split("=")[1]
print(f"loss={(x - 0.5) ** 2 + (y == 'b')}")
"""
PARAMS = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-2", "max": "2"}},
          {"name": "y", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}}]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    spec = script_experiment("reported", TRIAL, params=PARAMS, maxTrialCount=8, parallelTrialCount=4)
    (tmp / "exp.yaml").write_text(json.dumps(spec))
    db = f"sqlite:///{tmp}/hp.db"
    run_local(parse_experiment(spec), storage=db, run_dir=tmp / "runs")
    return tmp, db


def hp(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "hp_components.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, **kw)


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found and os.environ.get("HP_REQUIRE_CHROMIUM"):
        pytest.fail("chromium is required here (HP_REQUIRE_CHROMIUM) but not installed")
    return found


def test_html_report_renders_in_chromium(finished):
    tmp, db = finished
    res = hp("report", str(tmp / "exp.yaml"), "--storage", db, "-o", str(tmp / "r.html"), cwd=tmp)
    assert res.returncode == 0, res.stderr
    page = (tmp / "r.html").read_text()
    assert "<h2>Optimization history</h2>" in page and "reported-0007" in page
    assert not re.search(r"<script[^>]*\ssrc=|<link[^>]*\shref=", page), "self-contained: no network needed"
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on this machine (CI installs it)")
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / 'chromium'}", "--virtual-time-budget=15000", "--dump-dom", (tmp / "r.html").as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    # plotly drew each chart into SVG: 4 charts (history, parallel coordinates, importances, slices)
    assert dom.count('class="main-svg"') >= 4, "the charts did not render"
    assert "Parallel Coordinate Plot" in dom


def test_markdown_report(finished):
    tmp, db = finished
    res = hp("report", str(tmp / "exp.yaml"), "--storage", db, "--format", "markdown", cwd=tmp)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "# reported"
    assert any(line.startswith("- **Best trial**: reported-") for line in lines)
    table = [line for line in lines if line.startswith("| reported-")]
    assert len(table) == 8


def test_run_output_includes_the_report(tmp_path):
    spec = script_experiment("withreport", TRIAL, params=PARAMS, maxTrialCount=3, parallelTrialCount=3)
    (tmp_path / "exp.yaml").write_text(json.dumps(spec))
    res = hp("run", str(tmp_path / "exp.yaml"), "-q", "-o", "out", "--storage", f"sqlite:///{tmp_path}/s.db", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"status.json", "trials.csv", "report.html"}


def test_dashboard_serves_the_store(finished):
    pytest.importorskip("optuna_dashboard")
    tmp, db = finished
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "hp_components.cli", "dashboard", "--storage", db, "--port", str(port)],
                            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    data = json.load(r)
                break
            except OSError:
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.3)
        assert [s["study_name"] for s in data["study_summaries"]] == ["reported"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_reports_study_uses_the_search_spaces_distributions_with_their_steps():
    from hp_components.report import _study
    from hp_components.space import SearchSpace
    from hp_components.trials import Trial

    spec = script_experiment("steps", "print('loss=1')", params=[
        {"name": "n", "parameterType": "int", "feasibleSpace": {"min": "2", "max": "10", "step": "4"}},
        {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1", "step": "0.25"}},
        {"name": "m", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1", "distribution": "normal"}}])
    exp = parse_experiment(spec)
    history = [Trial(name="t1", assignments={"n": "6", "x": "0.75", "m": "0.4"}, condition="Succeeded", objective_value=1.0),
               Trial(name="t2", assignments={"n": "5", "x": "0.5", "m": "0.4"}, condition="Succeeded", objective_value=2.0)]
    study = _study(exp, history)
    assert study.trials[0].distributions == SearchSpace(exp.spec.parameters).shown_distributions
    assert study.trials[0].distributions["n"].step == 4 and study.trials[0].distributions["x"].step == 0.25
    assert study.trials[0].params == {"n": 6, "x": 0.75, "m": 0.4}
    assert len(study.trials) == 1  # n=5 is not on the int's step: it cannot come from this space


CURVES = """
import sys
x = float(sys.argv[1].split("=")[1]); y = sys.argv[2].split("=")[1]
if y == "b" and x > 1.5:
    raise SystemExit(f"diverged at x={x}")
for step in range(4):
    print(f"loss={(x - 0.5) ** 2 + (y == 'b') + 1 / (step + 1)}")
"""


def test_report_has_learning_curves_a_legend_and_failed_trials_logs(tmp_path):
    spec = script_experiment("curves", CURVES, maxTrialCount=6, parallelTrialCount=3, algorithm={"algorithmName": "grid"},
                             params=[{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["0", "2"]}},
                                     {"name": "y", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}}],
                             objective={"type": "minimize", "objectiveMetricName": "loss",
                                        "metricStrategies": [{"name": "loss", "value": "min"}]})
    (tmp_path / "exp.yaml").write_text(json.dumps(spec))
    db = f"sqlite:///{tmp_path}/s.db"
    res = hp("run", str(tmp_path / "exp.yaml"), "-q", "--storage", db, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    res = hp("report", str(tmp_path / "exp.yaml"), "--storage", db, "-o", "r.html", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    page = (tmp_path / "r.html").read_text()
    # the intermediate values the store keeps, drawn as Optuna's intermediate-values chart
    assert "<h2>Learning curves</h2>" in page and "Intermediate Values Plot" in page
    assert "objective: the value of loss that counts for the search, the min of the values the trial reported" in page
    failed = [log for log in (tmp_path / "hp-runs" / "curves").glob("*/output.log") if "diverged" in log.read_text()]
    assert len(failed) == 1
    assert "<h2>Failed trials</h2>" in page and "diverged at x=2.0" in page
    assert f"log: <code>{failed[0].relative_to(tmp_path)}</code>" in page
    assert "Succeeded: ExperimentSuggestionEndReached" in page  # the grid ran out, as the run said
    md = hp("report", str(tmp_path / "exp.yaml"), "--storage", db, "-f", "markdown", cwd=tmp_path).stdout
    assert "## Failed trials" in md and "      diverged at x=2.0" in md and "the latest value each trial reported" in md
    # -o naming a folder is refused, not a traceback
    (tmp_path / "adir").mkdir()
    res = hp("report", str(tmp_path / "exp.yaml"), "--storage", db, "-o", "adir", cwd=tmp_path)
    assert res.returncode == 2 and "--output adir: is a folder" in res.stderr and "Traceback" not in res.stderr


def test_reports_study_names_its_metric_and_keeps_reported_values():
    from hp_components.report import _study
    from hp_components.trials import Trial

    exp = parse_experiment(script_experiment("named", "print('loss=1')", params=PARAMS))
    history = [Trial(name="a", assignments={"x": "0.1", "y": "a"}, condition="Succeeded", objective_value=1.0,
                     intermediate_values=[(0, 3.0), (1, 1.0)]),
               Trial(name="b", assignments={"x": "0.2", "y": "b"}, condition="EarlyStopped", objective_value=4.0,
                     intermediate_values=[(0, 5.0), (1, 4.0)]),
               Trial(name="c", assignments={"x": "0.3", "y": "b"}, condition="Failed")]
    study = _study(exp, history)
    assert study.metric_names == ["loss"]
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"]
    assert study.trials[1].intermediate_values == {0: 5.0, 1: 4.0}
