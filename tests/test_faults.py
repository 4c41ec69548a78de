"""Runtime faults under a real ``hp-tune run``: a full disk under the run folder, a full, read-only or
damaged store. Each is reported as what it is, exit code 3 (never 2, bad input), with no traceback;
a full run folder stops the logging only, and the trials' results are kept."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from pathlib import Path

import yaml

from hp_components.experiment import parse_experiment
from hp_components.store import ExperimentStore
from tests.conftest import ROOT, script_experiment
from tests.test_cli import HP_TUNE

TRIAL = """
import sys, time
x = float(sys.argv[1].split("=")[1])
time.sleep(0.05)
print(f"loss={x * x}", flush=True)
"""


def _hp_tune(tmp_path: Path, spec: dict, storage: str, preexec=None) -> subprocess.CompletedProcess:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return subprocess.run([*HP_TUNE, "run", str(path), "-q", "--storage", storage, "--run-dir", str(tmp_path / "runs")],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=300, preexec_fn=preexec)


def test_a_full_disk_under_the_log_stops_the_logging_and_keeps_the_result(tmp_path):
    """The trial's output.log is /dev/full, where every write fails with ENOSPC (the kernel's own)."""
    spec = script_experiment("fulllog", TRIAL, maxTrialCount=2, parallelTrialCount=1)
    trial_dir = tmp_path / "runs" / "fulllog" / "fulllog-0000"
    trial_dir.mkdir(parents=True)
    (trial_dir / "output.log").symlink_to("/dev/full")
    storage = f"sqlite:///{tmp_path}/s.db"
    done = _hp_tune(tmp_path, spec, storage)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    said = " ".join(done.stderr.split())  # the terminal wraps long lines
    assert "No space left on device; the trial runs on without this log" in said and "fulllog-0000" in said, said
    history = ExperimentStore(storage, parse_experiment(spec)).history()
    assert [t.condition for t in history] == ["Succeeded", "Succeeded"]
    first = history[0]
    assert first.objective_value == float(first.assignments["x"]) ** 2


def _file_limit(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_a_full_store_is_a_runtime_fault_and_resumes(tmp_path):
    """RLIMIT_FSIZE caps every file the runner writes (its SQLite file and WAL among them); a write past
    it fails with EFBIG, which SQLite reports as "disk I/O error" (on a full disk: "database or disk is
    full"; both are runtime faults)."""
    spec = script_experiment("fullstore", TRIAL, maxTrialCount=400, parallelTrialCount=4)
    storage = f"sqlite:///{tmp_path}/s.db"
    done = _hp_tune(tmp_path, spec, storage, preexec=_file_limit(300_000))
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    said = " ".join(done.stderr.split())
    assert "runtime fault: the store" in said and "disk I/O error; the disk holding it failed to read or write" in said
    # without the limit the same command resumes and finishes
    again = _hp_tune(tmp_path, spec, storage)
    assert again.returncode == 0, again.stderr
    history = ExperimentStore(storage, parse_experiment(spec)).history()
    assert sum(t.condition == "Succeeded" for t in history) == 400
    assert not [t for t in history if t.condition == "Running"]


def test_a_read_only_store_is_a_runtime_fault(tmp_path):
    spec = script_experiment("rostore", TRIAL, maxTrialCount=2, parallelTrialCount=1)
    spec["spec"]["resumePolicy"] = "LongRunning"  # a finished experiment may go on (Katib's rule)
    db = tmp_path / "s.db"
    assert _hp_tune(tmp_path, spec, f"sqlite:///{db}").returncode == 0
    spec["spec"]["maxTrialCount"] = 4  # something to write (a change a resume may make)
    done = _hp_tune(tmp_path, spec, f"sqlite:///file:{db}?mode=ro&uri=true")
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and "readonly" in done.stderr and "read-only" in done.stderr, done.stderr


def test_a_damaged_store_is_a_runtime_fault(tmp_path):
    spec = script_experiment("badstore", TRIAL, maxTrialCount=2, parallelTrialCount=1)
    db = tmp_path / "s.db"
    db.write_bytes(b"this is no database\n" * 500)
    done = _hp_tune(tmp_path, spec, f"sqlite:///{db}")
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and "not a database" in done.stderr, done.stderr
    assert "damaged" in done.stderr


def test_a_failing_store_leaves_no_unretrieved_writer_error(tmp_path, monkeypatch, caplog):
    """Every writer job in flight when the store fails has its error taken in: asyncio logs an error no
    one retrieved as "Future exception was never retrieved" with a traceback on stderr (CI saw it under
    the full-store test above, when two writes failed at once). Here every save waits, then fails as a
    full SQLite file does, so that several writes are queued when the first failure reaches the runner."""
    import gc
    import logging
    import sqlite3
    import time as _time

    import optuna
    import pytest

    from hp_components.local import run_local
    from hp_components.store import StoreFault

    def failing_save(self, trial):
        _time.sleep(0.3)
        try:
            raise sqlite3.OperationalError("disk I/O error")
        except sqlite3.OperationalError as err:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from err

    monkeypatch.setattr(ExperimentStore, "save", failing_save)
    exp = parse_experiment(script_experiment("inflight", "print('loss=1')", maxTrialCount=40, parallelTrialCount=4))
    caplog.set_level(logging.ERROR, logger="asyncio")
    with pytest.raises(StoreFault, match="disk I/O error"):
        run_local(exp, storage=f"sqlite:///{tmp_path}/s.db", run_dir=tmp_path / "runs", kill_grace=1.0)
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()], caplog.text
