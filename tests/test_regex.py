"""Metrics filters as Katib reads them (RE2), and hostile ones that must not freeze anything (issue 15).

Katib compiles filters with Go's ``regexp`` (RE2 syntax: linear time, no backreferences, no lookaround):
the webhook, pkg/webhook/v1beta1/experiment/validator/validator.go ``validateMetricsCollector``
(``regexp.Compile(mFormat)`` must succeed and ``.*\\(.*\\).*\\(.*\\).*`` match: "two top subexpressions"),
and the collector, pkg/metricscollector/v1beta1/file-metricscollector/file-metricscollector.go
``GetFilterRegexpList`` (``regexp.Compile(filter)``, no flags) and ``parseLogsInTextFormat``
(``FindAllStringSubmatch(logline, -1)``, group 1 the name and group 2 the value, both trimmed).
Here RE2 is google-re2 (the same engine in C++), in the runner, the validator and the wrapper where it
is installed; a wrapper in an image without it matches with Python's ``re`` in a child process with a
time budget per line. Everything runs as real processes: ``hp-tune``, and the wrapper both as
``python -m hp_components.metrics`` (re2 importable) and as the file alone under ``python -I -S`` (no
site-packages: re2 cannot be imported).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hp_components import metrics as m
from hp_components.experiment import parse_experiment
from hp_components.store import ExperimentStore
from tests.conftest import PY, ROOT, script_experiment

HP_TUNE = [PY, "-m", "hp_components.cli"]
#: the issue's filter: nested quantifiers, exponential for a backtracking engine on "loss=aaa...a!"
HOSTILE = r"(loss)=((a+)+)$"
NUMBER = r"(loss)=([0-9.]+)"
HOSTILE_LINE = "loss=" + "a" * 34 + "!"  # Python's re: ~2**34 steps for this one line

#: prints ``n`` hostile lines, each followed by loss=0.<i>; n < 0: forever (marks its start in HP_TRIAL_DIR or cwd)
TRIAL = f"""
import os, sys, time
n = int(sys.argv[1])
i = 0
while n < 0 or i < n:
    print({HOSTILE_LINE!r}, flush=True)
    print(f"loss=0.{{i % 9 + 1}}", flush=True)
    if i == 0:
        open(os.path.join(os.environ.get("HP_TRIAL_DIR", "."), "started"), "w").close()
    i += 1
    if n < 0:
        time.sleep(0.05)
print("trial done", flush=True)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def _wait_for(folder: Path, name: str = "started", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (folder.exists() and any(folder.rglob(name))):
        assert time.monotonic() < deadline, f"no {name} in {folder}"
        time.sleep(0.05)


# --------------------------------------------------------------------------- validation (Katib's rules)


def _spec(filters: list[str], n: int = 5, **spec: Any) -> dict[str, Any]:
    body = script_experiment("regex", TRIAL, args=[str(n)], maxTrialCount=1, parallelTrialCount=1, **spec)
    body["spec"]["trialTemplate"]["trialParameters"] = []
    body["spec"]["metricsCollectorSpec"] = {"source": {"filter": {"metricsFormat": filters}}}
    return body


def _validate(tmp_path: Path, filters: list[str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(_spec(filters)))
    return subprocess.run([*HP_TUNE, "validate", "exp.yaml"], cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("pattern, words", [
    (r"(?u)(\w+)=([0-9.]+)", "invalid perl operator: (?u"),  # the issue's: passed validate, crashed the runner
    (r"(\w+)=([0-9.]+) \1", r"invalid escape sequence: \1"),  # Go: no backreferences
    (r"(?<=: )(\w+)=([0-9.]+)", "invalid perl operator: (?<"),  # Go: no lookbehind
    (r"(\w+)=(?!x)([0-9.]+)", "invalid perl operator: (?!"),  # Go: no negative lookahead
    (r"(\w++)=([0-9.]+)", "bad repetition operator: ++"),  # Go: no possessive quantifiers (Python 3.11 has them)
    (r"(\w+)=([0-9.]+)\Z", r"invalid escape sequence: \Z"),  # Go spells it \z
    (r"(\w+)", "two groups"),  # Katib: "two top subexpressions are required"
])
def test_validate_refuses_what_katibs_regexp_refuses(tmp_path: Path, pattern: str, words: str) -> None:
    res = _validate(tmp_path, [NUMBER, pattern])
    assert res.returncode == 2, res.stdout + res.stderr
    out = res.stdout + res.stderr
    assert "spec.metricsCollectorSpec.source.filter.metricsFormat[1]" in out and words in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize("pattern", [
    HOSTILE,  # RE2 matches it in linear time: a valid filter
    r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}",  # Katib's examples (literal braces)
    r"(?i)(LOSS)\s*[:=]\s*([+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)",
    r"(?P<name>loss)=(?P<value>[0-9.]+)",
])
def test_validate_accepts_what_katibs_regexp_accepts_and_the_trial_then_runs(tmp_path: Path, pattern: str) -> None:
    res = _validate(tmp_path, [pattern])
    assert res.returncode == 0, res.stdout + res.stderr
    m.MetricsParser(["loss"], [pattern]).feed("loss=0.5")  # compiled at run time with the same rules: no error


def test_filters_refused_only_because_the_wrapper_may_lack_re2_say_so(tmp_path: Path) -> None:
    """RE2 accepts ``\\pL`` and ``[[:digit:]]``; Python's re (the wrapper's fallback) refuses the first and
    reads the second as a different set: refused, saying why."""
    for pattern in (r"(\pL+)=([0-9.]+)", r"(loss)=([[:digit:].]+)"):
        res = _validate(tmp_path, [pattern])
        assert res.returncode == 2 and "Python's re, which trial images without google-re2 use" in res.stderr, res.stderr


# --------------------------------------------------------------------------- the local runner (RE2)


def _history(tmp_path: Path, spec: dict[str, Any]) -> list[Any]:
    return ExperimentStore(f"sqlite:///{tmp_path}/s.db", parse_experiment(spec)).history()


def _runner(tmp_path: Path, spec: dict[str, Any]) -> subprocess.Popen[str]:
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(spec))
    return subprocess.Popen([*HP_TUNE, "run", "exp.yaml", "-q", "--storage", f"sqlite:///{tmp_path}/s.db",
                             "--run-dir", str(tmp_path / "runs")], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_runner_matches_the_issues_filter_and_finishes(tmp_path: Path) -> None:
    spec = _spec([HOSTILE, NUMBER], n=200)  # 200 lines that would each take Python's re hours
    runner = _runner(tmp_path, spec)
    out, err = runner.communicate(timeout=120)
    assert runner.returncode == 0, err
    (trial,) = _history(tmp_path, spec)
    assert trial.condition == "Succeeded" and trial.objective_value == pytest.approx(0.1)  # minimize: Katib's min
    assert len(trial.intermediate_values) == 200 and trial.intermediate_values[-1][1] == pytest.approx(0.2)


def test_runner_honours_sigterm_while_a_trial_prints_hostile_lines(tmp_path: Path) -> None:
    spec = _spec([HOSTILE, NUMBER], n=-1)
    runner = _runner(tmp_path, spec)
    _wait_for(tmp_path / "runs")
    time.sleep(0.5)
    runner.send_signal(signal.SIGTERM)
    runner.communicate(timeout=30)  # kill_grace is 5 s by default
    (trial,) = _history(tmp_path, spec)
    assert trial.condition not in ("Running", "Created"), trial
    assert trial.intermediate_values  # the values kept flowing while the hostile lines were matched


def test_runner_enforces_the_deadline_of_a_trial_printing_hostile_lines(tmp_path: Path) -> None:
    spec = _spec([HOSTILE, NUMBER], n=-1, maxFailedTrialCount=1)
    spec["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 2
    runner = _runner(tmp_path, spec)
    runner.communicate(timeout=90)
    (trial,) = _history(tmp_path, spec)
    assert (trial.condition, trial.reason) == ("Failed", "DeadlineExceeded"), trial


# --------------------------------------------------------------------------- the wrapper, with and without re2


@pytest.fixture(params=["re2", "stdlib"])
def wrapper(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """The wrapper's command: ``-m hp_components.metrics`` (re2 importable), or the file alone under
    ``-I -S`` (no site-packages, so ``import re2`` fails), after checking which engine it really gets."""
    if request.param == "re2":
        cmd, probe = [PY, "-m", "hp_components.metrics"], [PY, "-c", "import hp_components.metrics as m; print(m._RE2)"]
    else:
        alone = tmp_path / "image"
        alone.mkdir()
        shutil.copy(Path(m.__file__), alone / "metrics.py")
        cmd = [PY, "-I", "-S", str(alone / "metrics.py")]
        probe = [PY, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(alone)!r}); import metrics; print(metrics._RE2)"]
    engine = subprocess.run(probe, cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert ("re2" in engine) == (request.param == "re2"), engine
    return cmd


def _wrap(cmd: list[str], tmp_path: Path, n: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*cmd, "--objective", "loss", "--filter", HOSTILE, NUMBER, *extra,
                             "--output", str(tmp_path / "out.json"), "--", PY, "-c", TRIAL, str(n)],
                            cwd=tmp_path, env={**_env(), "HP_TRIAL_DIR": str(tmp_path)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _warnings(err: str) -> int:
    return err.count("took more than")


def test_wrapper_collects_past_a_hostile_filter(wrapper: list[str], tmp_path: Path) -> None:
    proc = _wrap(wrapper, tmp_path, 3)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["condition"] == "Succeeded" and result["objectiveValue"] == pytest.approx(0.3)
    assert out.count(HOSTILE_LINE) == 3 and out.rstrip().endswith("trial done")  # the output passed through whole
    # without re2 each hostile line is skipped after the time budget, with one warning for all of them
    assert _warnings(err) == (0 if "-I" not in wrapper else 1), err


def test_wrapper_enforces_the_deadline(wrapper: list[str], tmp_path: Path) -> None:
    proc = _wrap(wrapper, tmp_path, -1, "--timeout", "3")
    proc.communicate(timeout=90)
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["reason"] == "DeadlineExceeded" and result["objectiveValue"] is not None, result


def test_wrapper_honours_sigterm(wrapper: list[str], tmp_path: Path) -> None:
    proc = _wrap(wrapper, tmp_path, -1)
    _wait_for(tmp_path)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["condition"] == "Failed" and "SIGTERM" in result["message"], result


def test_both_engines_read_katib_style_filters_alike(tmp_path: Path) -> None:
    """The same output through the wrapper with RE2 and with the stdlib fallback: the same observation."""
    alone = tmp_path / "image"
    alone.mkdir()
    shutil.copy(Path(m.__file__), alone / "metrics.py")
    lines = ["{metricName: accuracy, metricValue: 0.91}", "epoch 2 {metricName: loss, metricValue: -1.5}",
             "2024-05-01T10:00:00Z {metricName: accuracy, metricValue: 0.95} {metricName: loss, metricValue: 0.25}",
             "accuracy=0.99 (not this format)", "{metricName: accuracy, metricValue: 1e3}"]
    code = f"print({chr(10).join(lines)!r})"
    filters = [r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"]
    observations = []
    for cmd in ([PY, "-m", "hp_components.metrics"], [PY, "-I", "-S", str(alone / "metrics.py")]):
        out = tmp_path / "obs.json"
        proc = subprocess.run([*cmd, "--objective", "accuracy", "--metric", "loss", "--filter", *filters,
                               "--output", str(out), "--", PY, "-c", code],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        observations.append(json.loads(out.read_text())["metrics"])
    assert observations[0] == observations[1]
    assert {x["name"]: x["latest"] for x in observations[0]} == {"accuracy": "0.95", "loss": "0.25"}


def test_a_filter_overrunning_its_budget_too_often_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stdlib fallback's matcher itself, with real child processes (the budget shortened for the test)."""
    monkeypatch.setattr(m, "FILTER_TIME_BUDGET", 0.3)
    matcher = m._IsolatedMatcher(r"(\w+)=((a+)+)$")
    try:
        assert list(matcher("loss=aaaa")) == [("loss", "aaaa")]
        for _ in range(m.FILTER_MAX_OVERRUNS):
            assert list(matcher(HOSTILE_LINE)) == [] and matcher._proc is None  # skipped, its process killed
        assert list(matcher("loss=aaaa")) == [] and matcher._proc is None  # dropped: no process started again
    finally:
        matcher.close()
