"""A local trial's lifetime, with real processes: it ends when its main process ends, its deadline
holds whatever it does with its output, and no process it starts (double-forked, ``setsid`` away)
outlives it, its deadline or its runner (Linux: the trial's supervisor, hp_components/_reaper.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hp_components._trial_process import _start_time, kill_leftovers
from hp_components.experiment import parse_experiment
from hp_components.local import run_local
from tests.conftest import ROOT, script_experiment
from tests.test_cli import HP_TUNE

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the supervisor is Linux-only")

# the pieces a hostile trial is made of; each process it starts writes its pid to pids/<role>
HEADER = """
import os, subprocess, sys, time
pids = os.path.join(os.environ["HP_TRIAL_DIR"], "pids")
os.makedirs(pids, exist_ok=True)
def mark(role):
    with open(os.path.join(pids, role), "w") as f:
        f.write(str(os.getpid()))
def daemon(role):
    # the classic daemon: fork, setsid, fork again, close stdio; the grandchild is orphaned
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            mark(role)
            os.closerange(0, 3)
            time.sleep(120)
        os._exit(0)
    os.wait()
def child(role, hold_output=True):
    # a plain child in the trial's process group, holding its stdout, ignoring SIGTERM
    code = "import os, signal, time, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \\
           f"open({os.path.join(pids, role)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    subprocess.Popen([sys.executable, "-c", code], stdout=None if hold_output else subprocess.DEVNULL)
    while not os.path.exists(os.path.join(pids, role)):
        time.sleep(0.01)
mark("main")
"""


def _alive(pid: int) -> bool:
    return _start_time(pid) is not None  # a zombie counts as dead


def _pids(trial_dir: Path) -> dict[str, int]:
    return {p.name: int(p.read_text()) for p in (trial_dir / "pids").iterdir() if p.read_text()}


def _wait_dead(pids: dict[str, int], within: float) -> list[str]:
    """The roles still alive after ``within`` seconds (killed then, so a failure leaks nothing)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
        time.sleep(0.05)
    left = [role for role, pid in pids.items() if _alive(pid)]
    for role in left:
        os.kill(pids[role], signal.SIGKILL)
    return left


def _run(tmp_path: Path, name: str, body: str, **spec):
    exp = parse_experiment(script_experiment(name, HEADER + body, maxTrialCount=1, parallelTrialCount=1,
                                             maxFailedTrialCount=1, **spec))
    started = time.monotonic()
    result = run_local(exp, storage=f"sqlite:///{tmp_path}/s.db", run_dir=tmp_path / "runs", kill_grace=1.0)
    [trial] = result.history
    return trial, time.monotonic() - started, tmp_path / "runs" / name / trial.name


def _with_deadline(name: str, body: str, seconds: int) -> dict:
    spec = script_experiment(name, HEADER + body, maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=1)
    spec["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = seconds
    return spec


def _run_spec(tmp_path: Path, spec: dict):
    exp = parse_experiment(spec)
    started = time.monotonic()
    result = run_local(exp, storage=f"sqlite:///{tmp_path}/s.db", run_dir=tmp_path / "runs", kill_grace=1.0)
    [trial] = result.history
    return trial, time.monotonic() - started, tmp_path / "runs" / exp.name / trial.name


def test_a_trial_that_closes_its_output_is_still_held_to_its_deadline(tmp_path):
    spec = _with_deadline("closes", "os.closerange(1, 3)\ntime.sleep(60)\n", 2)
    trial, took, trial_dir = _run_spec(tmp_path, spec)
    assert (trial.condition, trial.reason) == ("Failed", "DeadlineExceeded"), trial.message
    assert took < 30, f"the trial ran {took:.0f} s past a 2 s deadline"
    assert _wait_dead(_pids(trial_dir), 0) == []


@pytest.mark.parametrize("leftover", ["child holding stdout", "daemon"])
def test_a_trial_ends_with_its_main_process(tmp_path, leftover):
    call = 'child("left")' if leftover != "daemon" else 'daemon("left")'
    trial, took, trial_dir = _run(tmp_path, "mainends", f"{call}\nprint('loss=0.5', flush=True)\n")
    assert (trial.condition, trial.objective_value) == ("Succeeded", 0.5), trial.message
    assert took < 30, f"the trial lasted {took:.0f} s: as long as the process it left behind"
    # left behind, it got SIGTERM (ignored here) and a short grace, then SIGKILL, before the trial ended
    assert _wait_dead(_pids(trial_dir), 0) == []


def test_the_deadline_covers_the_whole_process_tree(tmp_path):
    body = 'daemon("daemon")\nchild("child", hold_output=False)\ntime.sleep(60)\n'
    trial, took, trial_dir = _run_spec(tmp_path, _with_deadline("tree", body, 2))
    assert (trial.condition, trial.reason) == ("Failed", "DeadlineExceeded")
    assert took < 30
    pids = _pids(trial_dir)
    assert set(pids) == {"main", "daemon", "child"}
    assert _wait_dead(pids, 0) == [], "a process of the trial outlived its deadline"


def _start_runner(tmp_path: Path, name: str, body: str) -> tuple[subprocess.Popen, Path]:
    spec = script_experiment(name, HEADER + body, maxTrialCount=1, parallelTrialCount=1)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(spec))
    runner = subprocess.Popen([*HP_TUNE, "run", str(tmp_path / "exp.yaml"), "-q", "--storage",
                               f"sqlite:///{tmp_path}/s.db", "--run-dir", str(tmp_path / "runs")],
                              cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    trial_dir = tmp_path / "runs" / name / f"{name}-0000"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (trial_dir / "pids" / "ready").exists():
        time.sleep(0.05)
    assert (trial_dir / "pids" / "ready").exists(), runner.stderr.read().decode() if runner.poll() is not None else ""
    return runner, trial_dir


def test_kill_9_of_the_runner_takes_the_whole_tree(tmp_path):
    body = 'daemon("daemon")\nchild("child")\nmark("ready")\ntime.sleep(120)\n'
    runner, trial_dir = _start_runner(tmp_path, "orphans", body)
    os.kill(runner.pid, signal.SIGKILL)  # the runner alone
    runner.wait()
    pids = _pids(trial_dir)
    pids.pop("ready")
    assert _wait_dead(pids, 15) == []


def test_resume_kills_what_a_dead_runner_left(tmp_path):
    """The runner and the trial's supervisor both die by SIGKILL (nothing could clean up): the main
    process dies with its supervisor, the child in its process group survives, until a resume."""
    body = 'child("child")\nmark("ready")\ntime.sleep(120)\n'
    runner, trial_dir = _start_runner(tmp_path, "leftover", body)
    record = json.loads((trial_dir / "processes.json").read_text())
    [supervisor] = record["processes"]
    assert supervisor["start"] == _start_time(supervisor["pid"])
    os.kill(supervisor["pid"], signal.SIGKILL)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    pids = _pids(trial_dir)
    assert _wait_dead({"main": pids["main"]}, 10) == []
    time.sleep(0.5)
    assert _alive(pids["child"]), "nothing left behind: the test shows nothing"
    resumed = subprocess.Popen([*HP_TUNE, "run", str(tmp_path / "exp.yaml"), "-q", "--storage",
                                f"sqlite:///{tmp_path}/s.db", "--run-dir", str(tmp_path / "runs")],
                               cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_dead({"child": pids["child"]}, 30) == [], "the resume left the dead runner's process running"
    finally:
        resumed.kill()
        resumed.wait()


def test_a_reused_pid_is_left_alone(tmp_path):
    """A record whose pid now belongs to another process (another start time) kills nothing."""
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        start = _start_time(other.pid)
        assert start is not None
        host = socket.gethostname()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        (tmp_path / "processes.json").write_text(json.dumps(
            {"host": host, "boot": boot, "processes": [{"pid": other.pid, "pgid": other.pid, "start": start - 1}]}))
        assert kill_leftovers(tmp_path) == 0
        assert other.poll() is None
        (tmp_path / "processes.json").write_text(json.dumps(
            {"host": host, "boot": boot, "processes": [{"pid": other.pid, "pgid": other.pid, "start": start}]}))
        assert kill_leftovers(tmp_path) == 1
        assert other.wait(timeout=10) == -signal.SIGKILL
    finally:
        other.kill()
        other.wait()
