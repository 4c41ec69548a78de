"""The local runner's start-up and process plumbing (issue 18, target 6): behaviour, not speed.

* A new SQLite store is a copy of an empty store that this Optuna version made once: Optuna's own
  checks accept it, a file another runner created is never replaced, and without a writable cache
  folder Optuna creates the schema as before.
* Trial supervisors for the first trials start before the store is opened, and end with the run
  even when the store refuses the experiment; a spare killed while it waited is skipped.
* A trial's end is watched by the event loop itself (a pidfd), not by a thread per process.

Real SQLite files, real run_local runs with subprocess trials.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading

import optuna
import pytest

import hp_components.local as local
import hp_components.store as store_module
from hp_components.experiment import parse_experiment
from hp_components.local import run_local
from hp_components.store import ExperimentStore, StoreConflict, make_storage
from hp_components.trials import Trial
from tests.conftest import script_experiment
from tests.test_slots import _supervisors

LINUX = os.path.exists("/proc/self/stat")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder of the test's own (the empty store is made there once)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    store_module._empty_store.cache_clear()
    yield tmp_path / "cache" / "hp-components"
    store_module._empty_store.cache_clear()


def _tables(path) -> set[str]:
    with sqlite3.connect(path) as c:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_new_sqlite_store_is_a_copy_of_the_empty_store_optuna_accepts(tmp_path, cache):
    exp = parse_experiment(script_experiment("copy", "print('loss=1')", maxTrialCount=2))
    ExperimentStore(f"sqlite:///{tmp_path}/a.db", exp)
    [empty] = list(cache.iterdir())
    assert empty.name == f"empty-store-optuna-{optuna.__version__}-sqlalchemy-{__import__('sqlalchemy').__version__}.db"
    made = empty.stat().st_mtime_ns
    with sqlite3.connect(empty) as c:
        assert c.execute("SELECT count(*) FROM studies").fetchone() == (0,)  # no experiment in the copy's source
    store = ExperimentStore(f"sqlite:///{tmp_path}/b.db", exp)
    assert empty.stat().st_mtime_ns == made, "the empty store is made once"
    assert {"studies", "trials", "version_info", "alembic_version"} <= _tables(tmp_path / "b.db")
    [t] = store.create([Trial(name="copy-0000", assignments={"x": 0.5}, condition="Running")])
    t.condition, t.objective_value = "Succeeded", 1.0
    store.save(t)
    # Optuna's own schema check (skipped for the copy) passes on it, and the trial reads back
    checked = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/b.db")
    assert checked._version_manager.get_current_version() == checked._version_manager.get_head_version()
    assert [s.study_name for s in checked.get_all_studies()] == ["copy"]
    assert ExperimentStore(f"sqlite:///{tmp_path}/b.db", exp).history()[0].condition == "Succeeded"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "no copy left behind"


def test_an_existing_file_is_never_replaced_by_the_copy(tmp_path, cache):
    path = tmp_path / "theirs.db"
    with sqlite3.connect(path) as c:  # another runner's (or anyone's) database, created first
        c.execute("CREATE TABLE mine (x INTEGER)")
    assert store_module._new_sqlite_file(str(path)) is False
    assert _tables(path) == {"mine"}
    make_storage(f"sqlite:///{path}")  # Optuna adds its tables next to the existing one, as before
    assert {"mine", "studies", "trials"} <= _tables(path)


def test_without_a_writable_cache_folder_optuna_creates_the_schema(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    store_module._empty_store.cache_clear()
    try:
        assert store_module._empty_store() is None
        storage = make_storage(f"sqlite:///{tmp_path}/hp.db")
    finally:
        store_module._empty_store.cache_clear()
    assert storage._version_manager.get_current_version() == storage._version_manager.get_head_version()
    assert {"studies", "trials", "version_info", "alembic_version"} <= _tables(tmp_path / "hp.db")


@pytest.mark.skipif(not LINUX, reason="supervisors run on Linux")
def test_the_first_trials_supervisors_start_before_the_store_is_opened(tmp_path, monkeypatch):
    seen: list[int] = []
    opened = ExperimentStore.__init__

    def counting(self, *args, **kwargs):
        seen.append(len(_supervisors()))
        opened(self, *args, **kwargs)

    monkeypatch.setattr(ExperimentStore, "__init__", counting)
    exp = parse_experiment(script_experiment("early", "print('loss=1')", maxTrialCount=6, parallelTrialCount=3))
    result = run_local(exp, storage=f"sqlite:///{tmp_path}/hp.db", run_dir=tmp_path / "runs")
    assert result.status.counts["trialsSucceeded"] == 6
    assert seen[0] == 3, "one supervisor per slot waited for the store"
    assert _supervisors() == [], "the spares left over ended with the run"


@pytest.mark.skipif(not LINUX, reason="supervisors run on Linux")
def test_spares_end_when_the_store_refuses_the_experiment(tmp_path):
    url = f"sqlite:///{tmp_path}/hp.db"
    run_local(parse_experiment(script_experiment("same", "print('loss=1')", maxTrialCount=2)), storage=url,
              run_dir=tmp_path / "runs")
    other = script_experiment("same", "print('loss=2')", maxTrialCount=2, parallelTrialCount=2)
    with pytest.raises(StoreConflict):
        run_local(parse_experiment(other), storage=url, run_dir=tmp_path / "runs")
    assert _supervisors() == []


@pytest.mark.skipif(not LINUX, reason="supervisors run on Linux")
def test_a_spare_killed_while_it_waited_is_skipped(tmp_path, monkeypatch):
    made = local._early_spares

    def killed(*args):
        spares = made(*args)
        for proc in spares.ready:
            os.kill(proc.pid, signal.SIGKILL)
            proc.popen.wait()
        return spares

    monkeypatch.setattr(local, "_early_spares", killed)
    exp = parse_experiment(script_experiment("dead", "print('loss=1')", maxTrialCount=4, parallelTrialCount=2))
    result = run_local(exp, storage=f"sqlite:///{tmp_path}/hp.db", run_dir=tmp_path / "runs")
    assert result.status.counts["trialsSucceeded"] == 4
    assert _supervisors() == []


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="pidfd (Linux)")
def test_no_thread_waits_for_a_trial_process(tmp_path):
    threads: list[list[str]] = []

    def on_event(kind, payload):
        if kind == "started":
            threads.append([t.name for t in threading.enumerate()])

    script = "import time; time.sleep(0.3); print('loss=1')"
    exp = parse_experiment(script_experiment("threads", script, maxTrialCount=8, parallelTrialCount=4))
    result = run_local(exp, storage=f"sqlite:///{tmp_path}/hp.db", run_dir=tmp_path / "runs", on_event=on_event)
    assert result.status.counts["trialsSucceeded"] == 8
    assert len(threads) == 8
    # asyncio's ThreadedChildWatcher (Python < 3.12) names its threads asyncio-waitpid-N
    assert not [name for names in threads for name in names if "waitpid" in name]
