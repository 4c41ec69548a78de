"""``hp-tune`` as a user runs it: real processes, exit codes, kill -9 and Ctrl-C then resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import DATA, ROOT, script_experiment

HP_TUNE = [sys.executable, "-m", "hp_components.cli"]

SLOW = """
import sys, time
x = float(sys.argv[1].split("=")[1])
time.sleep(0.4)
print(f"loss={x * x}", flush=True)
"""


def hp(*args: str, cwd: Path, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run([*HP_TUNE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, **kw)


def write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_validate_ok_and_bad(tmp_path):
    ok = hp("validate", str(DATA / "basic.yaml"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "valid" in ok.stdout
    spec = yaml.safe_load((DATA / "basic.yaml").read_text())
    spec["spec"]["maxTrialCount"] = -3
    spec["spec"]["parameters"][0]["feasibleSpace"]["min"] = "1"
    bad = hp("validate", str(write(tmp_path, spec)), cwd=tmp_path)
    assert bad.returncode == 2
    assert "spec.maxTrialCount" in bad.stderr and "spec.parameters[0].feasibleSpace.min" in bad.stderr
    assert "Traceback" not in bad.stderr + bad.stdout


def test_run_writes_status_and_csv(tmp_path):
    spec = script_experiment("clirun", SLOW.replace("0.4", "0"), maxTrialCount=4, parallelTrialCount=2)
    res = hp("run", str(write(tmp_path, spec)), "--output", "out", "--storage", f"sqlite:///{tmp_path}/s.db", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    assert status["trials"] == status["trialsSucceeded"] == 4
    assert status["conditions"][-1]["type"] == "Succeeded"
    assert status["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached"
    best = status["currentOptimalTrial"]
    assert best["bestTrialName"].startswith("clirun-")
    assert best["parameterAssignments"][0]["name"] == "x"
    assert {m["name"] for m in best["observation"]["metrics"]} == {"loss"}
    for key in ("trialsFailed", "trialsEarlyStopped", "trialMetricsUnavailable"):
        assert status[key] == 0
    rows = list(csv.DictReader((tmp_path / "out" / "trials.csv").open()))
    assert len(rows) == 4 and {"name", "condition", "objective", "x", "loss"} <= set(rows[0])
    assert "best trial" in res.stdout


def test_failed_experiment_exits_1_and_bad_storage_exits_2(tmp_path):
    spec = script_experiment("clifail", "import sys; sys.exit(2)", maxTrialCount=3, parallelTrialCount=1, maxFailedTrialCount=1)
    path = write(tmp_path, spec)
    res = hp("run", str(path), "-q", "--storage", f"sqlite:///{tmp_path}/s.db", cwd=tmp_path)
    assert res.returncode == 1
    assert "ExperimentFailed" in res.stdout
    res = hp("run", str(path), "--storage", "nosuchdb://x", cwd=tmp_path)
    assert res.returncode == 2 and "--storage" in res.stderr and "Traceback" not in res.stderr


def _run_until(tmp_path: Path, path: Path, db: str, trials_done: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*HP_TUNE, "run", str(path), "-q", "--storage", db], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    import sqlite3
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            con = sqlite3.connect(db.removeprefix("sqlite:///"), timeout=5)
            n = con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
            con.close()
        except sqlite3.Error:
            continue
        if n >= trials_done:
            return proc
    proc.kill()
    raise AssertionError("the runner did not get far enough")


def _finished_trials(tmp_path: Path) -> dict[str, str]:
    rows = list(csv.DictReader((tmp_path / "out" / "trials.csv").open()))
    assert len({r["name"] for r in rows}) == len(rows), "trial names are unique"
    # trials the crash cut short stay on record as Interrupted; their parameters ran again
    return {r["name"]: r["objective"] for r in rows if r["condition"] != "Interrupted"}


def test_kill_9_then_resume_keeps_every_finished_trial(tmp_path):
    spec = script_experiment("crash", SLOW, maxTrialCount=10, parallelTrialCount=3)
    path = write(tmp_path, spec)
    db = f"sqlite:///{tmp_path}/s.db"
    proc = _run_until(tmp_path, path, db, 4)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its trials, as a crash would
    proc.wait()
    from hp_components.experiment import parse_experiment
    from hp_components.store import ExperimentStore
    before = {t.name: t.objective_value for t in ExperimentStore(db, parse_experiment(spec)).history() if t.condition == "Succeeded"}
    assert len(before) >= 4
    res = hp("run", str(path), "-q", "--storage", db, "--output", "out", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    assert status["trialsSucceeded"] == 10
    after = _finished_trials(tmp_path)
    for name, value in before.items():
        assert float(after[name]) == value
    assert len(after) == 10 and len(set(after)) == 10


def test_ctrl_c_stops_trials_and_resume_finishes(tmp_path):
    spec = script_experiment("ctrlc", SLOW, maxTrialCount=8, parallelTrialCount=2)
    path = write(tmp_path, spec)
    db = f"sqlite:///{tmp_path}/s.db"
    proc = _run_until(tmp_path, path, db, 2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    res = hp("run", str(path), "-q", "--storage", db, "--output", "out", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    assert status["trialsSucceeded"] == 8 and status["trials"] == 8


def test_trials_die_with_a_killed_runner(tmp_path):
    """kill -9 of the runner alone must not leave its trials running as orphans."""
    script = """
import os, sys, time
open(os.path.join(os.environ["HP_TRIAL_DIR"], "pid"), "w").write(str(os.getpid()))
time.sleep(60)
"""
    spec = script_experiment("orphans", script, maxTrialCount=2, parallelTrialCount=2)
    path = write(tmp_path, spec)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*HP_TUNE, "run", str(path), "-q", "--storage", f"sqlite:///{tmp_path}/s.db"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_files = [tmp_path / "hp-runs" / "orphans" / f"orphans-000{i}" / "pid" for i in range(2)]
    deadline = time.monotonic() + 60
    while not all(f.exists() and f.read_text() for f in pid_files):
        assert time.monotonic() < deadline, "trials did not start"
        time.sleep(0.1)
    pids = [int(f.read_text()) for f in pid_files]
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in pids if _alive(p)]
    assert not alive, f"trial processes {alive} outlived their runner"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
