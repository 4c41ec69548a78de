"""Several runners on one store: ``parallelTrialCount`` holds for the experiment, counting every
runner's trials (real ``hp-tune run`` processes started at once on one SQLite file, and on
PostgreSQL when HP_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from hp_components.experiment import parse_experiment
from hp_components.store import ExperimentStore
from tests.conftest import ROOT, script_experiment
from tests.test_cli import HP_TUNE

# each trial's process logs when it started and when it is about to end
TRIAL = """
import os, sys, time
log = os.environ["TRIAL_LOG"]
with open(log, "a") as f:
    f.write(f"start {time.time()!r}\\n")
time.sleep(0.3)
print(f"loss={float(sys.argv[1].split('=')[1]) ** 2}", flush=True)
with open(log, "a") as f:
    f.write(f"end {time.time()!r}\\n")
"""

LIMIT, BUDGET, RUNNERS = 4, 16, 3


def _most_at_once(log: Path) -> int:
    events = []
    for line in log.read_text().splitlines():
        kind, at = line.split()
        events.append((float(at), 0 if kind == "end" else 1))  # an end before a start at the same instant
    running = most = 0
    for _, starts in sorted(events):
        running += 1 if starts else -1
        most = max(most, running)
    return most


def _three_runners_at_once(tmp_path: Path, storage: str, name: str) -> None:
    spec = script_experiment(name, TRIAL, maxTrialCount=BUDGET, parallelTrialCount=LIMIT)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    log = tmp_path / "trials.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRIAL_LOG": str(log)}
    procs = [subprocess.Popen([*HP_TUNE, "run", str(path), "-q", "--storage", storage, "--run-dir",
                               str(tmp_path / f"runs{i}")], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for i in range(RUNNERS)]
    for p in procs:
        _, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr.decode()
    history = ExperimentStore(storage, parse_experiment(spec)).history()
    assert sum(t.condition == "Succeeded" for t in history) == BUDGET
    most = _most_at_once(log)
    assert most <= LIMIT, f"{most} trials ran at once; parallelTrialCount is {LIMIT}"


@pytest.mark.parametrize("repetition", range(8))
def test_three_runners_on_one_sqlite_file_hold_parallel_trial_count(tmp_path, repetition):
    _three_runners_at_once(tmp_path, f"sqlite:///{tmp_path}/s.db", "crowd")


@pytest.mark.skipif(not os.environ.get("HP_TEST_POSTGRES_URL"), reason="no PostgreSQL server: set HP_TEST_POSTGRES_URL")
@pytest.mark.parametrize("repetition", range(3))
def test_three_runners_on_postgresql_hold_parallel_trial_count(tmp_path, repetition):
    _three_runners_at_once(tmp_path, os.environ["HP_TEST_POSTGRES_URL"], f"crowd-{uuid.uuid4().hex[:8]}")
