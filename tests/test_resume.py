"""Ctrl-C (a real SIGINT to a real ``hp-tune run``) at several points, then resume: every trial the
interrupt cut short runs its parameters again, exactly once, and the trial count stays exact."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from hp_components.experiment import parse_experiment
from hp_components.store import RERUN_OF, ExperimentStore
from tests.conftest import ROOT, script_experiment
from tests.test_cli import HP_TUNE

# each trial logs its start and its end (with its parameter) to a file the test reads
TRIAL = """
import os, sys, time
x = sys.argv[1].split("=")[1]
y = float(sys.argv[2].split("=")[1])
log = os.environ["TRIAL_LOG"]
with open(log, "a") as f:
    f.write(f"start {os.environ['HP_TRIAL_NAME']} {x}\\n")
time.sleep(0.8)
with open(log, "a") as f:
    f.write(f"end {os.environ['HP_TRIAL_NAME']} {x}\\n")
print(f"loss={float(x) ** 2 + y ** 2}", flush=True)
"""

BUDGET, PARALLEL = 10, 3


def _lines(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def _run_until(cmd: list[str], env: dict[str, str], cwd: Path, log: Path, point: str) -> int:
    """Start ``hp-tune run``, send SIGINT when the trial log reaches ``point``, return the exit code."""
    before = _lines(log)
    starts0 = sum(w[0] == "start" for w in before)
    ends0 = sum(w[0] == "end" for w in before)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = _lines(log)
        starts = sum(w[0] == "start" for w in lines) - starts0
        ends = sum(w[0] == "end" for w in lines) - ends0
        if (point == "first batch" and starts >= PARALLEL and ends == 0) \
                or (point == "second batch" and starts > PARALLEL) \
                or (point == "as a trial ends" and ends >= 1):
            break
        assert proc.poll() is None, f"the run ended before {point}: {proc.stderr.read().decode()}"  # type: ignore[union-attr]
        time.sleep(0.01)
    else:
        raise AssertionError(f"never reached {point}")
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    return proc.returncode


@pytest.mark.parametrize("algorithm", ["random", "cmaes"])
def test_ctrl_c_then_resume_reruns_every_interrupted_trial(tmp_path, algorithm):
    params = [{"name": n, "parameterType": "double", "feasibleSpace": {"min": "-2", "max": "2"}} for n in "xy"]
    spec = script_experiment(f"resume-{algorithm}", TRIAL, params=params, maxTrialCount=BUDGET,
                             parallelTrialCount=PARALLEL, algorithm={"algorithmName": algorithm})
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    db = f"sqlite:///{tmp_path}/s.db"
    log = tmp_path / "trials.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRIAL_LOG": str(log)}
    cmd = [*HP_TUNE, "run", str(path), "-q", "--storage", db]
    exp = parse_experiment(spec)
    cut: dict[str, str] = {}  # trial name -> its parameter, for every trial an interrupt cut short
    for point in ("first batch", "second batch", "as a trial ends"):
        assert _run_until(cmd, env, tmp_path, log, point) == 130
        history = ExperimentStore(db, exp).history()
        assert not [t.name for t in history if t.condition in ("Running", "Created")], point
        interrupted = {t.name: t for t in history if t.condition == "Interrupted"}
        new = {n: t for n, t in interrupted.items() if n not in cut}
        if point != "as a trial ends":
            assert new, f"an interrupt in the {point} cut no trial short"
        for name, t in new.items():
            assert t.reason == "RunnerInterrupted" and "runs again on resume" in t.message
            cut[name] = repr(t.assignments["x"])
    final = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    history = ExperimentStore(db, exp).history()
    by_name = {t.name: t for t in history}
    counted = [t for t in history if t.condition != "Interrupted"]
    assert len(counted) == BUDGET and all(t.condition == "Succeeded" for t in counted)
    assert set(cut) == {t.name for t in history if t.condition == "Interrupted"}
    # each interrupted trial ran again exactly once, under a new name, with the same parameters
    reruns: dict[str, list[str]] = {}
    for t in history:
        if RERUN_OF in t.system_attrs:
            reruns.setdefault(t.system_attrs[RERUN_OF], []).append(t.name)
    assert set(reruns) == set(cut)
    lines = _lines(log)
    for name in cut:
        again = name
        while by_name[again].condition == "Interrupted":  # cut short again by a later interrupt: follow on
            (again,) = reruns[again]
            assert by_name[again].assignments == by_name[name].assignments
        # the process really ran to its end, with the same value
        assert any(w[:2] == ["end", again] and w[2] == by_name[name].assignments["x"] for w in lines), again
    # no trial other than the interrupted ones ran twice
    ends = [w[1] for w in lines if w[0] == "end"]
    assert len(ends) == len(set(ends)) == BUDGET + sum(1 for n in cut if any(w[:2] == ["end", n] for w in lines))
