"""kill -9 at random moments, 20+ times, then resume: every finished trial kept exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import yaml

from hp_components.experiment import parse_experiment
from hp_components.store import ExperimentStore
from tests.conftest import ROOT, script_experiment
from tests.test_cli import HP_TUNE

# a hostile trial: it leaves a daemon behind (fork, setsid, fork), which must die with the trial or its runner
TRIAL = """
import os, sys, time
x = float(sys.argv[1].split("=")[1])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(os.path.join(os.environ["HP_TRIAL_DIR"], "daemon-%d" % os.getpid()), "w"):
            pass
        os.closerange(0, 3)
        time.sleep(300)
    os._exit(0)
os.wait()
time.sleep(0.4)
print(f"loss={x * x}", flush=True)
"""


def _daemons_alive(root) -> list[int]:
    alive = []
    for marker in root.rglob("daemon-*"):
        pid = int(marker.name.split("-")[1])
        try:
            stat = open(f"/proc/{pid}/stat", "rb").read()
        except OSError:
            continue
        if stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X"):
            alive.append(pid)
    return alive


def test_random_kill_9_loop_then_resume(tmp_path):
    budget = 120  # enough work that the run is still going after 24 kills (the runner is fast now)
    spec = script_experiment("chaos", TRIAL, maxTrialCount=budget, parallelTrialCount=3,
                             algorithm={"algorithmName": "tpe",
                                        "algorithmSettings": [{"name": "n_startup_trials", "value": "4"}]})
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    db = f"sqlite:///{tmp_path}/s.db"
    exp = parse_experiment(spec)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(7)
    kept: dict[str, float] = {}
    kills = 0
    for attempt in range(24):  # 24 kills at most: each costs ~1.5 s of CI, and 20 are required
        proc = subprocess.Popen([*HP_TUNE, "run", str(path), "-q", "--storage", db], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(rng.uniform(0.2, 2.5))  # start-up, suggestion, trials running, results being written
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode()
            break
        if rng.random() < 0.5:
            os.killpg(proc.pid, signal.SIGKILL)  # the runner and its trials at once
        else:
            os.kill(proc.pid, signal.SIGKILL)  # the runner alone: its trials must die with it
        proc.wait()
        kills += 1
        history = ExperimentStore(db, exp).history()
        names = [t.name for t in history]
        assert len(names) == len(set(names)), "duplicate trial names"
        done = {t.name: t.objective_value for t in history if t.condition == "Succeeded"}
        for name, value in kept.items():
            assert done.get(name) == value, f"finished trial {name} changed or vanished after kill #{kills}"
        kept = done
        assert len(done) <= budget
    assert kills >= 20, f"only {kills} kills before it finished: make the trials slower"
    print(f"{kills} kills, {len(kept)} trials finished before the last one")
    final = subprocess.run([*HP_TUNE, "run", str(path), "-q", "--storage", db], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    history = ExperimentStore(db, exp).history()
    done = {t.name: t.objective_value for t in history if t.condition == "Succeeded"}
    assert len(done) == budget
    for name, value in kept.items():
        assert done[name] == value
    assert all(t.condition in ("Succeeded", "Interrupted") for t in history)
    assert len({t.name for t in history}) == len(history)
    if sys.platform.startswith("linux"):  # every daemon died with its trial or its runner
        deadline = time.monotonic() + 15
        while _daemons_alive(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _daemons_alive(tmp_path)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"{len(left)} daemons of trials outlived them"
