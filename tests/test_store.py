"""The experiment store on SQLite and a real PostgreSQL server: concurrent runners lose and duplicate nothing.

PostgreSQL comes from ``HP_TEST_POSTGRES_URL`` (``.ci/run`` installs and starts a server on
loopback and sets it); each test gets a database of its own.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from hp_components.experiment import parse_experiment
from hp_components.store import ExperimentStore
from hp_components.suggest import suggest
from tests.conftest import ROOT, script_experiment
from tests.lanes_store import postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/hp.db"
        return
    yield from postgres_database()  # a database of its own on the real server (tests/lanes_store.py)


TRIAL = """
import os, sys, time
x = float(sys.argv[1].split("=")[1])
start = time.time()
time.sleep(0.2)
marker = os.path.join(os.environ["MARKERS"], os.environ["HP_TRIAL_NAME"])
with open(marker, "a") as f:
    f.write(f"{start} {time.time()}\\n")
print(f"loss={x * x}", flush=True)
"""


def _runner(path: Path, url: str, markers: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MARKERS": str(markers)}
    return subprocess.Popen([sys.executable, "-m", "hp_components.cli", "run", str(path), "-q", "--storage", url,
                             "--run-dir", str(cwd / "runs")], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_store_round_trip(storage_url, basic_dict):
    exp = parse_experiment(basic_dict)
    store = ExperimentStore(storage_url, exp)
    created = store.create(suggest(exp, store.history(), 3))
    assert [t.name for t in created] == ["basic-0000", "basic-0001", "basic-0002"]
    t = created[1]
    t.intermediate_values.append((0, 0.1))
    store.heartbeat([t])  # with a running trial's values so far
    t.intermediate_values.append((1, 0.3))
    t.condition, t.objective_value = "Succeeded", 0.5
    t.observation = {"metrics": [{"name": "acc", "min": "0.1", "max": "0.5", "latest": "0.5"}]}
    assert store.save(t)  # the values reported since, with the result
    again = ExperimentStore(storage_url, exp).history()
    assert [x.condition for x in again] == ["Created", "Succeeded", "Created"]
    assert again[1].objective_value == 0.5 and again[1].intermediate_values == [(0, 0.1), (1, 0.3)]
    assert again[1].assignments == created[1].assignments


def test_creating_and_reopening_a_store_warns_nothing(storage_url, basic_dict):
    """hp-tune run printed Optuna's ExperimentalWarning for set_metric_names on every new experiment."""
    exp = parse_experiment(basic_dict)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store = ExperimentStore(storage_url, exp)
        store.create(suggest(exp, store.history(), 1))
        assert len(ExperimentStore(storage_url, exp).history()) == 1


def test_non_finite_values_round_trip_and_a_finished_trial_stays_as_written(storage_url, basic_dict):
    exp = parse_experiment(basic_dict)
    store = ExperimentStore(storage_url, exp)
    [t] = store.create(suggest(exp, [], 1))
    t.intermediate_values += [(0, float("nan")), (1, float("inf"))]
    t.condition, t.objective_value = "Succeeded", float("-inf")
    assert store.save(t)
    t.condition, t.objective_value = "Failed", None
    assert not store.save(t)
    [again] = ExperimentStore(storage_url, exp).history()
    assert (again.condition, again.objective_value) == ("Succeeded", float("-inf"))
    assert math.isnan(again.intermediate_values[0][1]) and again.intermediate_values[1] == (1, float("inf"))


def test_sync_reads_the_history_only_when_another_store_changed_it(storage_url, basic_dict):
    exp = parse_experiment(basic_dict)
    mine, other = ExperimentStore(storage_url, exp), ExperimentStore(storage_url, exp)
    assert mine.sync(force=True) == []
    [t] = mine.create(suggest(exp, [], 1))
    t.condition, t.objective_value = "Succeeded", 0.5
    assert mine.save(t)
    assert mine.sync() is None, "its own writes are known"
    [o] = other.create(suggest(exp, [t], 1))
    assert [x.name for x in mine.sync()] == [t.name, o.name]
    assert mine.sync() is None
    o.condition = "Failed"
    assert other.save(o)
    assert [x.condition for x in mine.sync()] == ["Succeeded", "Failed"]


def test_two_runners_on_one_experiment(storage_url, tmp_path):
    spec = script_experiment("shared", TRIAL, maxTrialCount=16, parallelTrialCount=2)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    markers = tmp_path / "markers"
    markers.mkdir()
    procs = [_runner(path, storage_url, markers, tmp_path) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    history = ExperimentStore(storage_url, parse_experiment(spec)).history()
    names = [t.name for t in history]
    assert len(names) == len(set(names))
    succeeded = [t for t in history if t.condition == "Succeeded"]
    assert len(succeeded) == 16
    assert all(t.condition in ("Succeeded", "Interrupted") for t in history)
    ran = {m.name: m.read_text().splitlines() for m in markers.iterdir()}
    assert sorted(ran) == sorted(t.name for t in succeeded), "exactly the recorded trials ran"
    assert all(len(lines) == 1 for lines in ran.values()), "no trial ran twice"
    spans = [tuple(map(float, lines[0].split())) for lines in ran.values()]
    at_once = max(sum(a <= s < b for a, b in spans) for s, _ in spans)
    assert at_once <= 4, "parallelTrialCount holds across runners (up to a start-up overshoot)"


def test_two_experiments_at_once(storage_url, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    procs = []
    specs = []
    for name in ("alpha", "beta"):
        spec = script_experiment(name, TRIAL, maxTrialCount=8, parallelTrialCount=2)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        specs.append(spec)
        procs.append(_runner(path, storage_url, markers, tmp_path))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    for spec in specs:
        history = ExperimentStore(storage_url, parse_experiment(spec)).history()
        assert [t.condition for t in history] == ["Succeeded"] * 8
        assert all(t.name.startswith(spec["metadata"]["name"] + "-") for t in history)
    assert len(list(markers.iterdir())) == 16


def test_import_history_over_every_store_and_plain_postgresql_urls(storage_url, tmp_path):
    """store.import_history on SQLite and PostgreSQL; a plain ``postgresql://`` URL reaches psycopg 3
    (the postgres extra) through store.storage_url, for the Python API as for the CLI."""
    from hp_components.store import StoreConflict, import_history
    from hp_components.store import storage_url as checked_url
    from hp_components.trials import Trial

    url = storage_url.replace("postgresql+psycopg://", "postgresql://", 1)
    if url.startswith("postgresql://"):  # SQLAlchemy 2.1 defaults to psycopg 3 itself; 2.0 needs the rewrite
        assert checked_url(url) in (url, url.replace("postgresql://", "postgresql+psycopg://", 1))
    from hp_components.experiment import load_experiment

    exp = load_experiment(ROOT / "examples" / "random-digits.yaml")
    done = [Trial(name=f"run-{i}", assignments={"lr": "0.01", "alpha": f"0.00{i + 1}", "penalty": "l2"},
                  condition="Succeeded", objective_value=0.5 + i / 10, intermediate_values=[(0, 0.1), (1, 0.5 + i / 10)],
                  observation={"metrics": [{"name": "Validation-accuracy", "latest": str(0.5 + i / 10)}]})
            for i in range(2)]
    written = import_history(url, exp, done)
    assert [t.name for t in written] == ["random-digits-0000", "random-digits-0001"]
    stored = ExperimentStore(url, exp).history()
    assert [(t.condition, t.objective_value, t.intermediate_values) for t in stored] == \
        [(t.condition, t.objective_value, t.intermediate_values) for t in done]
    with pytest.raises(StoreConflict, match="already has trials"):
        import_history(url, exp, done)


def _mixed_history(url: str, basic_dict: dict) -> ExperimentStore:
    """A store with trials in every state: succeeded (with curves), failed, pruned, interrupted
    (rerun pending), running with its result half-written, plain running, and system attributes."""
    from dataclasses import replace

    from hp_components.store import RERUN_OF

    exp = parse_experiment({**basic_dict, "spec": {**basic_dict["spec"], "parallelTrialCount": 8}})
    store = ExperimentStore(url, exp)
    made = store.create(suggest(exp, [], 6))
    ok, failed, pruned, cut, half, running = made
    store.save(replace(ok, condition="Succeeded", objective_value=0.25, intermediate_values=[(0, 1.5), (3, float("inf"))],
                       observation={"metrics": [{"name": "loss", "latest": "0.25", "min": "0.2", "max": "1.5"}]},
                       completion_time="2026-01-01T00:00:00Z"))
    store.save(replace(failed, condition="Failed", reason="TrialFailed", message="exit 1"))
    store.save(replace(pruned, condition="EarlyStopped", objective_value=0.5, intermediate_values=[(0, 0.5)]))
    store.save(replace(cut, condition="Interrupted", reason="Ctrl-C"))
    store._write(store._trial_id(half), {"condition": "Succeeded", "objectiveValue": 0.1})  # state still RUNNING
    store.heartbeat([replace(running, intermediate_values=[(0, float("nan")), (1, -2.0)])])
    store.create([replace(suggest(exp, store.history(), 1)[0], system_attrs={RERUN_OF: cut.name})])
    return store


def test_bulk_history_read_equals_get_all_trials(storage_url, basic_dict, monkeypatch):
    """The contract of store.read_trials (the lane claim's read): on SQLite and PostgreSQL it gives what
    building the records from Optuna's get_all_trials gives, for trials in every state, with intermediate
    values, user and system attributes and owners; on an unknown schema it reads through get_all_trials."""
    from hp_components.store import KNOWN_SCHEMA, _to_trial, read_trials

    store = _mixed_history(storage_url, basic_dict)
    frozen = store.storage.get_all_trials(store.study_id, deepcopy=False)
    expected = [(_to_trial(ft, store.experiment.name), ft.user_attrs.get("owner") or {}) for ft in frozen]
    assert {ft.state.name for ft in frozen} == {"COMPLETE", "FAIL", "PRUNED", "RUNNING"}
    got = read_trials(store.storage, store.study_id, store.experiment.name)
    assert repr(got) == repr(expected)  # repr: nan == nan
    assert [t.condition for t, _ in got] == ["Succeeded", "Failed", "EarlyStopped", "Interrupted", "Running", "Created",
                                             "Created"]
    assert got[0][0].intermediate_values == [(0, 1.5), (3, float("inf"))] and got[0][1]["token"] == store.owner.token
    assert math.isnan(got[5][0].intermediate_values[0][1]) and got[6][0].system_attrs
    assert repr(store.history_with_owners()) == repr(expected)
    import hp_components.store as module

    def direct_read(*args):
        raise AssertionError("the direct read ran on a schema it does not know")

    monkeypatch.setattr(module, "KNOWN_SCHEMA", KNOWN_SCHEMA + ".another")  # as with another Optuna's schema
    monkeypatch.setattr(module, "_read_rows", direct_read)
    assert repr(read_trials(store.storage, store.study_id, store.experiment.name)) == repr(expected)


def test_bulk_history_read_knows_the_installed_optuna_schema(storage_url, basic_dict):
    """Pins the schema read_trials reads directly: Optuna's current schema revision and the columns of its
    trial tables as the database has them. A new Optuna schema fails this test (read_trials then falls
    back to get_all_trials at run time, as the store's revision is not KNOWN_SCHEMA)."""
    import sqlalchemy as sa

    from hp_components.store import KNOWN_SCHEMA

    store = ExperimentStore(storage_url, parse_experiment(basic_dict))
    assert store.storage.get_head_version() == KNOWN_SCHEMA == store.storage.get_current_version()
    inspect = sa.inspect(store.storage.engine)
    columns = {t: {c["name"] for c in inspect.get_columns(t)} for t in
               ("trials", "trial_user_attributes", "trial_system_attributes", "trial_values", "trial_intermediate_values")}
    assert columns == {
        "trials": {"trial_id", "number", "study_id", "state", "datetime_start", "datetime_complete"},
        "trial_user_attributes": {"trial_user_attribute_id", "trial_id", "key", "value_json"},
        "trial_system_attributes": {"trial_system_attribute_id", "trial_id", "key", "value_json"},
        "trial_values": {"trial_value_id", "trial_id", "objective", "value", "value_type"},
        "trial_intermediate_values": {"trial_intermediate_value_id", "trial_id", "step", "intermediate_value",
                                      "intermediate_value_type"},
    }


@pytest.fixture
def postgres_url():
    yield from postgres_database()


@pytest.fixture
def opens(monkeypatch):
    """Each RDBStorage constructed from now on, as its skip_table_creation: True the fast way, False the full one."""
    import optuna

    seen: list[bool] = []
    real = optuna.storages.RDBStorage.__init__

    def spy(self, *args, **kwargs):
        seen.append(bool(kwargs.get("skip_table_creation", False)))
        real(self, *args, **kwargs)

    monkeypatch.setattr(optuna.storages.RDBStorage, "__init__", spy)
    return seen


def test_a_database_with_the_known_schema_opens_without_optuna_s_checks(postgres_url, opens):
    """make_storage on PostgreSQL: an empty database is set up the full way (Optuna creates its tables
    and stamps its revision); once it has them at KNOWN_SCHEMA, a store opens without creating tables or
    checking the schema (_open_known_schema); a database at another revision is checked the full way again."""
    import sqlalchemy as sa

    from hp_components import store as module

    # the installed Optuna's schema, read from its migration files' names, is alembic's own head
    assert module._installed_schema() == module.KNOWN_SCHEMA
    assert module.make_storage("sqlite:///:memory:")._version_manager.get_head_version() == module.KNOWN_SCHEMA
    url = postgres_url
    opens.clear()
    first = module.make_storage(url)  # no tables: the fast open fails, the full one creates them
    assert opens == [True, False] and first.get_current_version() == module.KNOWN_SCHEMA
    opens.clear()
    assert module.make_storage(url).get_all_studies() == [] and opens == [True]
    with first.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'v3.0.0.d'"))
    opens.clear()
    with pytest.raises(RuntimeError, match="optuna storage upgrade"):  # Optuna's own check refuses it
        module.make_storage(url)
    assert opens == [True, False]


def test_an_unreachable_database_is_not_retried_by_the_fast_open(opens):
    """A server that refuses connections raises from make_storage's first open (an OperationalError, which
    the lane steps report as StoreUnreachable), not after the full open's six attempts."""
    import socket

    import sqlalchemy as sa

    from hp_components.store import make_storage

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(sa.exc.OperationalError, match="127.0.0.1"):
        make_storage(f"postgresql+psycopg://hp:hp@127.0.0.1:{port}/hp?connect_timeout=5")
    assert opens == [True]


def test_an_existing_sqlite_store_opens_without_optuna_s_checks(tmp_path, opens):
    """A new SQLite file starts as a copy of an empty store (no checks); one that exists opens the fast way
    too (a resume, a report); a damaged file goes the full way, which says what is wrong with it."""
    import sqlalchemy as sa

    from hp_components.store import make_storage

    url = f"sqlite:///{tmp_path}/hp.db"
    make_storage(url).engine.dispose()
    opens.clear()
    make_storage(url).engine.dispose()
    assert opens == [True]
    (tmp_path / "bad.db").write_bytes(b"this is no database\n" * 500)
    opens.clear()
    with pytest.raises(sa.exc.DatabaseError, match="not a database"):
        make_storage(f"sqlite:///{tmp_path}/bad.db")
    assert opens[:2] == [True, False]
