"""Persistent experiment state in Optuna's RDB storage (SQLite by default, PostgreSQL/MySQL by URL).

One Optuna study per experiment (same name), one Optuna trial per Katib trial, so
``optuna-dashboard sqlite:///hp-runs/hp-tune.db`` shows a running experiment. The Katib side of
a trial (condition, observation, assignments, who runs it) lives in the trial's user attributes::

    from hp_components.store import ExperimentStore
    store = ExperimentStore("sqlite:///hp-runs/hp-tune.db", exp)
    history = store.history()                  # list[Trial], in creation order
    [t] = store.create(suggest(exp, history, 1))
    t.condition, t.objective_value = "Succeeded", 0.93
    store.save(t)

What survives a crash: every state change is one committed transaction. A trial is created
(RUNNING, with its owner's host and pid) before its process starts; when its process ends, its
result is written in one transaction. A runner that finds RUNNING trials whose owner is dead
(same host: the pid is gone; other hosts: no heartbeat for ``STALE_AFTER`` seconds) marks them
``Interrupted`` and runs their parameters again under a new trial (never a trial a lane claimed:
see :data:`LANE_OWNER`), as it does for trials Ctrl-C cut short (an ``Interrupted`` trial is "rerun: pending" until the trial that reruns it is created, in the
same transaction). ``parallelTrialCount`` is checked inside each insert's transaction, so it holds
across runners on SQLite and PostgreSQL alike. SQLite runs in WAL mode with
``synchronous=NORMAL``: a commit survives the runner's crash (kill -9), but is flushed to disk at
checkpoints only, so a power loss or OS crash may lose the last ones (those trials run again).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import importlib
import json
import os
import random
import shutil
import socket
import sqlite3
import time
import uuid
import warnings
import weakref
from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator, Sequence

import optuna
import sqlalchemy
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite
import sqlalchemy.exc
from optuna.distributions import distribution_to_json
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState, create_trial

try:  # the RDB storage's own models and sessions: batched writes and a cheap change check
    from optuna.storages._rdb import models as _models
    from optuna.storages._rdb.storage import _create_scoped_session
except ImportError:  # another Optuna version: one call per attribute, and a full read to check
    _models = None

from hp_components.experiment import Experiment
from hp_components.space import SearchSpace
from hp_components.trials import FINISHED, Trial, trial_name

__all__ = ["ExperimentStore", "StoreConflict", "StoreFault", "DEFAULT_STORAGE", "LANE_OWNER", "STALE_AFTER", "RERUN_OF",
           "load_finished", "load_stored", "open_existing", "parse_storage", "read_trials", "storage_url", "store_fault",
           "import_history"]

DEFAULT_STORAGE = "sqlite:///hp-runs/hp-tune.db"
#: seconds without a heartbeat after which another host's running trial counts as interrupted
STALE_AFTER = 120.0
#: how the owner host of a trial a lane claimed starts (``lane:<run>/<lane>``): it has no heartbeat (its
#: trial runs in a pod no runner watches), so :meth:`ExperimentStore.recover` leaves it to the lanes
#: (``hp-tune step lane-suggest --lost-after``)
LANE_OWNER = "lane:"
_SPEC_KEY = "hp_components:experiment"
_WARM_KEY = "hp_components:warm_start"
#: user attribute of an ``Interrupted`` trial: "pending" until a new trial runs its parameters again
_RERUN_KEY = "rerun"
#: system attribute of such a new trial: the name of the interrupted trial it runs again
RERUN_OF = "hp_components:rerun_of"
# the parts of a spec that may change between runs of one experiment: the ones Katib's webhook lets
# an edit change (pkg/webhook/v1beta1/experiment/validator/validator.go, "only spec.parallelTrialCount,
# spec.maxTrialCount and spec.maxFailedTrialCount are editable"); resumePolicy is not among them
_EDITABLE = ("maxTrialCount", "maxFailedTrialCount", "parallelTrialCount")


class StoreConflict(ValueError):
    """The storage holds an experiment of this name with an incompatible spec."""


class StoreFault(RuntimeError):
    """The store failed at run time (full, read-only, damaged, unreachable): not a mistake in the input."""


_FAULT_HINTS = (
    ("full", "the disk holding it is full: free space, then run the same command to resume"),
    ("readonly", "it is read-only: make it writable (or use another --storage), then resume"),
    ("read-only", "it is read-only: make it writable (or use another --storage), then resume"),
    ("not a database", "it is damaged or not a SQLite database: restore it from a copy or use another --storage"),
    ("malformed", "it is damaged: restore it from a copy or use another --storage"),
    ("disk i/o", "the disk holding it failed to read or write"),
)


def store_fault(err: BaseException, url: str) -> StoreFault | None:
    """``err`` as a :class:`StoreFault` when it is the database failing at run time (SQLAlchemy's
    ``OperationalError``/``DatabaseError``, sqlite3's errors, Optuna's ``StorageInternalError`` with one
    of these as its cause); None for anything else (a malformed URL stays bad input)::

        fault = store_fault(exc, "sqlite:///hp.db")   # "the store sqlite:///hp.db failed: database or disk is full; ..."
    """
    if isinstance(err, StoreFault):
        return err
    cause: BaseException | None = err
    if isinstance(err, optuna.exceptions.StorageInternalError):
        cause = err.__cause__
    if not isinstance(cause, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.DatabaseError, sqlite3.Error)):
        return None
    original = getattr(cause, "orig", None) or cause
    kind = f"{type(original).__module__}.{type(original).__qualname__}"
    text = str(original).strip().splitlines()[0] if str(original).strip() else ""
    hint = next((h for key, h in _FAULT_HINTS if key in text.lower()), "it could not be read or written (down or unreachable?)")
    try:  # never echo a password
        shown = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        shown = "--storage"
    return StoreFault(f"the store {shown} failed: {kind}: {text}; {hint}")


class _NoSlot(Exception):
    """Raised inside an insert's transaction (rolling it back): parallelTrialCount trials run already."""


_STATE = {
    "Created": TrialState.RUNNING,
    "Running": TrialState.RUNNING,
    "Succeeded": TrialState.COMPLETE,
    "EarlyStopped": TrialState.PRUNED,
    "Failed": TrialState.FAIL,
    "MetricsUnavailable": TrialState.FAIL,
    "Killed": TrialState.FAIL,
    "Interrupted": TrialState.FAIL,
}


@dataclass(frozen=True)
class Owner:
    """The runner that runs a trial."""

    host: str
    pid: int
    token: str

    @classmethod
    def me(cls) -> "Owner":
        return cls(socket.gethostname(), os.getpid(), uuid.uuid4().hex[:12])

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "token": self.token}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _comparable(spec: dict[str, Any]) -> str:
    inner = {k: v for k, v in spec.get("spec", {}).items() if k not in _EDITABLE}
    return json.dumps(inner, sort_keys=True)


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


_BACKEND_NAMES = {"postgresql": "PostgreSQL", "mysql": "MySQL", "sqlite": "SQLite"}


def parse_storage(storage: str, backends: Sequence[str] = (), need: str = "") -> sqlalchemy.engine.URL:
    """``storage`` parsed as a database URL, checked before anything connects: the one check of a
    ``--storage`` value (the local CLI, the lane steps, the lane compiler). With ``backends``, its
    database must be one of them (``need`` says what needs them). Raises :class:`StoreConflict` naming
    what to write (the password hidden; the caller names the field)::

        parse_storage("sqlite:///x.db", ("postgresql", "mysql"), "lanes on a cluster need a database server")
        # StoreConflict: sqlite:///x.db: lanes on a cluster need a database server (PostgreSQL or MySQL), not sqlite; ...
    """
    try:
        url = sqlalchemy.engine.make_url(storage)
    except sqlalchemy.exc.ArgumentError:
        raise StoreConflict(f"{storage}: not a database URL; write sqlite:///path/to.db, "
                            "postgresql://user:password@host/db or mysql+pymysql://user:password@host/db") from None
    if backends and url.get_backend_name() not in backends:
        names = " or ".join(_BACKEND_NAMES.get(b, b) for b in backends)
        example = {"postgresql": "postgresql+psycopg://user@host:5432/db", "mysql": "mysql+pymysql://user@host/db",
                   "sqlite": "sqlite:///path/to.db"}
        raise StoreConflict(f"{url.render_as_string(hide_password=True)}: {need or 'this needs'} ({names}), not "
                            f"{url.get_backend_name()}; write {' or '.join(example[b] for b in backends if b in example)}")
    return url


def storage_url(storage: str, backends: Sequence[str] = (), need: str = "") -> str:
    """``storage`` as the URL to connect with (:func:`parse_storage`, then): a database URL whose
    driver is installed. ``postgresql://`` goes through psycopg 3 (the ``postgres`` extra) when
    psycopg2, SQLAlchemy's default for it, is not installed. Raises :class:`StoreConflict` naming
    what to write or install (the password hidden)::

        storage_url("postgresql://hp:pw@db/hp")   # -> 'postgresql+psycopg://hp:pw@db/hp' (psycopg 3 only)
    """
    url = parse_storage(storage, backends, need)
    shown = url.render_as_string(hide_password=True)
    try:
        dialect = url.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        raise StoreConflict(f"{shown}: SQLAlchemy knows no database {url.drivername!r}; write sqlite:///..., "
                            "postgresql://... or mysql+pymysql://...") from None
    try:
        (getattr(dialect, "import_dbapi", None) or dialect.dbapi)()
    except ImportError as e:
        backend, module = url.get_backend_name(), getattr(e, "name", None) or str(e)
        explicit = url.drivername != backend  # postgresql+psycopg2://, mysql+pymysql://, ...
        if backend == "postgresql" and not explicit and _importable("psycopg"):
            return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        fix = {"postgresql": "pip install 'hp-components[postgres]' (psycopg 3; postgresql://... then uses it)",
               "mysql": "pip install PyMySQL and write mysql+pymysql://... (or pip install mysqlclient for mysql://)"}
        if explicit:
            fix = {backend: f"pip install the package that provides {module!r}, or name another driver in the URL"}
        raise StoreConflict(f"{shown}: the {backend} driver {module!r} is not installed: "
                            f"{fix.get(backend, f'pip install {module}')}") from None
    return storage


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage for ``url`` (through :func:`storage_url`); creates the folder of a SQLite file.

    A SQLite file that does not exist yet starts as a copy of an empty store (:func:`_new_sqlite_file`):
    Optuna creating its schema reads and stamps its alembic migrations, 0.1-0.3 s; the copy takes ~1 ms.
    """
    url = storage_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    copied = False
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        kwargs = {"connect_args": {"timeout": 60}}
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            if "?" not in path and not path.startswith("file:"):
                kwargs = {"creator": functools.partial(_sqlite_connection, path)}
                copied = _new_sqlite_file(path)
    if not copied:  # an existing store (a resume, a report, every lane step)
        known = _open_known_schema(url, kwargs)
        if known is not None:
            return known
    for attempt in range(6):
        try:
            # a copy of the empty store has Optuna's tables at this version's schema: nothing to create or check
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=copied,
                                              skip_table_creation=copied)
        except sqlalchemy.exc.DBAPIError:
            # two runners creating the schema at once: one wins, the other finds it on a retry
            if attempt == 5:
                raise
            time.sleep(0.2 + random.random() * 0.5)
    raise AssertionError("unreachable")


def _open_known_schema(url: str, kwargs: dict[str, Any]) -> optuna.storages.RDBStorage | None:
    """The storage of a database that has Optuna's tables at :data:`KNOWN_SCHEMA`, the installed Optuna's
    own schema, opened without creating its tables or checking its schema (Optuna's check loads every alembic
    migration script, ~30 ms, ~100 ms more for alembic's first import in a process, and creating the tables
    asks for each of them, ~20 ms: every lane step and every resume paid them); None when the database has no
    such tables, or another schema (the caller then opens it the full way, which creates or checks them). A
    server that cannot be reached raises as it does there (SQLite: every failure goes the full way).
    """
    if _models is None or _installed_schema() != KNOWN_SCHEMA:
        return None
    storage = None
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=True,
                                             skip_table_creation=True)
        with storage.engine.connect() as conn:
            version = conn.execute(_VERSION).scalar()
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
        if storage is not None:
            storage.engine.dispose()
        cause = e.__cause__ if isinstance(e, optuna.exceptions.StorageInternalError) else e
        if isinstance(cause, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)) \
                and not url.startswith("sqlite:"):  # SQLite's missing table is an OperationalError too
            raise cause from None  # not reached, or gone: as the full way would say
        return None  # no Optuna tables yet (or not all): created the full way
    if version == KNOWN_SCHEMA:
        _schema_versions[storage.engine] = version
        return storage
    storage.engine.dispose()
    return None


@functools.lru_cache(maxsize=None)
def _installed_schema() -> str:
    """The schema revision the installed Optuna writes: its newest alembic migration, by the file names
    (``v3.2.0.a_.py``; tests/test_store.py checks it against alembic's own head)."""
    folder = os.path.join(os.path.dirname(optuna.storages._rdb.__file__), "alembic", "versions")
    try:
        names = [n[:-3].rstrip("_") for n in os.listdir(folder) if n.startswith("v") and n.endswith(".py")]
    except OSError:
        return ""
    return max(names, key=lambda n: [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in n[1:].split(".")], default="")


def _new_sqlite_file(path: str) -> bool:
    """Create the SQLite file ``path`` as a copy of :func:`_empty_store`, unless it exists; whether it did.

    The copy appears whole or not at all (a hard link of a finished copy), and never replaces a file that
    another runner created meanwhile; False (Optuna then creates the schema) when there is no empty
    store or the file system has no hard links.
    """
    if os.path.exists(path):
        return False
    empty = _empty_store()
    if empty is None:
        return False
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        shutil.copyfile(empty, tmp)
        os.link(tmp, path)
    except OSError:  # FileExistsError: another runner created it first
        return False
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    return True


@functools.lru_cache(maxsize=None)
def _empty_store() -> str | None:
    """An empty SQLite store made by this Optuna version (its schema, version rows and alembic stamp), made
    once in ``$XDG_CACHE_HOME/hp-components`` (``~/.cache``); None when that folder cannot be written."""
    folder = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                          "hp-components")
    path = os.path.join(folder, f"empty-store-optuna-{optuna.__version__}-sqlalchemy-{sqlalchemy.__version__}.db")
    if os.path.isfile(path):
        return path
    tmp = os.path.join(folder, f".{uuid.uuid4().hex}.tmp")
    try:
        os.makedirs(folder, exist_ok=True)
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp}", engine_kwargs={
            "creator": functools.partial(_sqlite_connection, tmp)})  # in WAL mode, as a copy is opened
        storage.engine.dispose()
        connection = sqlite3.connect(tmp)
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all of it in the file itself
        connection.close()
        os.replace(tmp, path)
    except (OSError, sqlite3.Error, sqlalchemy.exc.SQLAlchemyError):
        return None
    finally:
        for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return path


def open_existing(url: str, what: str = "--storage") -> optuna.storages.RDBStorage:
    """Optuna's RDB storage for ``url`` only when it already is an experiment store: for the reading
    commands (report, dashboard, status), which must never create a SQLite file, its folder or tables.

    Raises StoreConflict (its message starting with ``what`` and naming what does exist) otherwise::

        storage = open_existing("sqlite:///hp-runs/hp-tune.db")   # StoreConflict if no such store
        [s.study_name for s in storage.get_all_studies()]
    """
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):].split("?", 1)[0]
        if not path or path == ":memory:":
            raise StoreConflict(f"{what} {url}: an in-memory database holds no stored experiment")
        if not os.path.isfile(path):
            folder = os.path.dirname(os.path.abspath(path))
            if os.path.isdir(folder):
                found = sorted(f for f in os.listdir(folder) if f.endswith((".db", ".sqlite", ".sqlite3")))
                there = f"; {folder} holds {', '.join(found)}" if found else f"; {folder} holds no .db file"
            else:
                there = f"; the folder {folder} does not exist either"
            raise StoreConflict(f"{what} {url}: no such file {path}{there} (a store is made by hp-tune run)")
    engine = sqlalchemy.create_engine(url)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    # Optuna's RDB storage writes its version rows into a database that lacks them: refuse first
    if not {"studies", "trials", "version_info", "alembic_version"} <= tables:
        raise StoreConflict(f"{what} {url}: not an experiment store (it has no Optuna tables)")
    return make_storage(url)


def _sqlite_connection(path: str) -> sqlite3.Connection:
    """A connection to a SQLite file in WAL mode with ``synchronous=NORMAL``: a commit appends to the
    log without an fsync (see the module docstring); from the first one, so creating the schema is quick."""
    connection = sqlite3.connect(path, timeout=60, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


_UPSERT = {"sqlite": sqlalchemy.dialects.sqlite, "postgresql": sqlalchemy.dialects.postgresql}


if _models is not None:
    _COUNTS = sqlalchemy.select(
        sqlalchemy.func.count(_models.TrialModel.trial_id),
        sqlalchemy.func.sum(sqlalchemy.case((_models.TrialModel.state != TrialState.RUNNING, 1), else_=0)),
    ).where(_models.TrialModel.study_id == sqlalchemy.bindparam("study_id"))


@dataclass(frozen=True)
class _WriteStatements:
    """The statements of :meth:`ExperimentStore._insert` and :meth:`ExperimentStore._write_rows` over Optuna's
    tables, built once (:func:`_write_statements`), bound by name."""

    lock_study: Any
    claim_rerun: Any
    insert_trial: Any
    counts: Any
    set_number: Any
    insert_params: Any
    insert_user_attrs: Any
    insert_system_attrs: Any
    name_rerun: Any
    lock_trial: Any
    finish_trial: Any


@functools.lru_cache(maxsize=None)
def _write_statements() -> _WriteStatements:
    """A trial's insert: the study's row locked, a rerun claimed, the trial inserted, the RUNNING trials (but
    those ``ended``) and the trials before it counted in one scan, its number set, its parameters and
    attributes inserted, the rerun named. A trial's writes: its state read with its row locked, its final
    state and completion time set (``id``, ``final``, ``complete``)."""
    m, bind = _models, sqlalchemy.bindparam
    studies, trials = m.StudyModel.__table__, m.TrialModel.__table__
    ua = m.TrialUserAttributeModel.__table__
    rerun = sqlalchemy.and_(ua.c.trial_id == bind("rerun_of"), ua.c.key == _RERUN_KEY)
    running = sqlalchemy.and_(trials.c.state == TrialState.RUNNING, trials.c.trial_id.not_in(bind("ended", expanding=True)))
    count = lambda condition: sqlalchemy.func.coalesce(  # noqa: E731
        sqlalchemy.func.sum(sqlalchemy.case((condition, 1), else_=0)), 0)
    return _WriteStatements(
        lock_study=sqlalchemy.select(studies.c.study_id).where(studies.c.study_id == bind("study_id")).with_for_update(),
        claim_rerun=sqlalchemy.update(ua).where(rerun, ua.c.value_json == bind("pending")).values(value_json=bind("claimed")),
        insert_trial=sqlalchemy.insert(trials),
        counts=sqlalchemy.select(count(running), count(trials.c.trial_id < bind("trial_id"))).where(
            trials.c.study_id == bind("study_id")),
        set_number=sqlalchemy.update(trials).where(trials.c.trial_id == bind("id")).values(number=bind("n")),
        insert_params=sqlalchemy.insert(m.TrialParamModel.__table__),
        insert_user_attrs=sqlalchemy.insert(ua),
        insert_system_attrs=sqlalchemy.insert(m.TrialSystemAttributeModel.__table__),
        name_rerun=sqlalchemy.update(ua).where(rerun).values(value_json=bind("name")),
        lock_trial=sqlalchemy.select(trials.c.state).where(trials.c.trial_id == bind("trial_id")).with_for_update(),
        finish_trial=sqlalchemy.update(trials).where(trials.c.trial_id == bind("id")).values(
            state=bind("final"), datetime_complete=bind("complete")),
    )


def _upsert(conn: Any, dialect: str, model: Any, keys: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``model``'s table, updating those whose ``keys`` exist (one statement)."""
    if rows:
        conn.execute(_upsert_statement(dialect, model, keys, tuple(rows[0])), rows)


@functools.lru_cache(maxsize=None)
def _upsert_statement(dialect: str, model: Any, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    insert = _UPSERT[dialect].insert(model.__table__)
    return insert.on_conflict_do_update(index_elements=list(keys),
                                        set_={c: insert.excluded[c] for c in columns if c not in keys})


def _to_trial(ft: optuna.trial.FrozenTrial, experiment_name: str) -> Trial:
    """A stored Optuna trial as a trial record."""
    return _trial_of(experiment_name, ft.number, ft.state, ft.user_attrs, ft.system_attrs,
                     ft.value if ft.state == TrialState.COMPLETE else None, ft.intermediate_values)


def _trial_of(experiment_name: str, number: int, state: TrialState, ua: dict[str, Any], system_attrs: dict[str, Any],
              value: float | None, intermediate_values: dict[int, float]) -> Trial:
    """A trial record from the stored parts of an Optuna trial (``value``: a COMPLETE trial's objective)."""
    condition = ua.get("condition") or "Running"
    if state == TrialState.RUNNING and condition not in ("Created", "Running"):
        # the result's attributes were written but the runner died before the final state
        # (written last, in one transaction): not finished, so it reruns
        condition = "Running"
    elif state != TrialState.RUNNING and condition in ("Created", "Running"):
        condition = "Interrupted"
    return Trial(
        name=trial_name(experiment_name, number),
        assignments=dict(ua.get("assignments", {})),
        condition=condition,
        reason=ua.get("reason", ""),
        message=ua.get("message", ""),
        observation=ua.get("observation") or {"metrics": []},
        objective_value=value if state == TrialState.COMPLETE else ua.get("objectiveValue"),
        intermediate_values=sorted(intermediate_values.items()),
        system_attrs=dict(system_attrs),
        start_time=ua.get("startTime"),
        completion_time=ua.get("completionTime"),
    )


#: the Optuna RDB schema (its alembic revision) :func:`read_trials` reads directly; any other: get_all_trials
KNOWN_SCHEMA = "v3.2.0.a"


def read_trials(storage: optuna.storages.RDBStorage, study_id: int, experiment_name: str,
                conn: sqlalchemy.Connection | None = None) -> list[tuple[Trial, dict[str, Any]]]:
    """Every trial of a study as ``(trial record, owner)``, in creation order, in three plain queries
    (trials with their values, their user and system attributes, their intermediate values) over Optuna's
    tables through its models; the same result as building them from ``get_all_trials``, without its ORM objects, its
    parameters and their distributions (a trial record takes its assignments from its attributes).

    Reads the store's schema revision first (alembic's ``alembic_version`` table, once per engine);
    with another schema than :data:`KNOWN_SCHEMA`, or without Optuna's models, it reads through
    ``get_all_trials``::

        pairs = read_trials(store.storage, store.study_id, exp.name)   # [(Trial, {"host": ..}), ...]

    ``conn``: a connection to read on (its transaction then ends with the read), else one of the pool.
    """
    if _models is not None:
        with contextlib.nullcontext(conn) if conn is not None else storage.engine.connect() as c:
            try:
                version = _schema_versions.get(storage.engine)
                if version is None:
                    version = _schema_versions[storage.engine] = c.execute(_VERSION).scalar()
                if version == KNOWN_SCHEMA:
                    return _read_rows(c, study_id, experiment_name)
            finally:
                if conn is not None:
                    conn.rollback()  # a read only: what the store writes next on it begins afresh
    return [(_to_trial(ft, experiment_name), ft.user_attrs.get("owner") or {})
            for ft in storage.get_all_trials(study_id, deepcopy=False)]


#: an engine's schema revision as read once (a store's schema does not change under a running process)
_schema_versions: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_VERSION = sqlalchemy.text("SELECT version_num FROM alembic_version")
#: the user attributes a trial record is made of (:func:`_trial_of`), and its owner
_RECORD_KEYS = ("assignments", "condition", "reason", "message", "observation", "objectiveValue", "startTime",
                "completionTime", "owner")


@functools.lru_cache(maxsize=None)
def _read_statements() -> tuple[Any, Any, Any]:
    """:func:`_read_rows`' queries (built once): a study's trials with their value, their attributes, and
    their intermediate values, each selected by the study's id through a join on the trials table (the
    indexes Optuna's tables have: trials by study, attributes and values by trial), no id list bound."""
    m, study_id = _models, sqlalchemy.bindparam("study_id")
    trials, tv = m.TrialModel.__table__, m.TrialValueModel.__table__
    by_trial = sqlalchemy.select(trials.c.trial_id, trials.c.number, trials.c.state, tv.c.value, tv.c.value_type).outerjoin(
        tv, sqlalchemy.and_(tv.c.trial_id == trials.c.trial_id, tv.c.objective == 0)
    ).where(trials.c.study_id == study_id).order_by(trials.c.trial_id)
    ua, sa = m.TrialUserAttributeModel.__table__, m.TrialSystemAttributeModel.__table__
    attrs = sqlalchemy.union_all(
        sqlalchemy.select(sqlalchemy.literal(0).label("kind"), ua.c.trial_id, ua.c.key, ua.c.value_json)
        .join(trials, trials.c.trial_id == ua.c.trial_id).where(trials.c.study_id == study_id, ua.c.key.in_(_RECORD_KEYS)),
        sqlalchemy.select(sqlalchemy.literal(1).label("kind"), sa.c.trial_id, sa.c.key, sa.c.value_json)
        .join(trials, trials.c.trial_id == sa.c.trial_id).where(trials.c.study_id == study_id))
    ti = m.TrialIntermediateValueModel.__table__
    steps = sqlalchemy.select(ti.c.trial_id, ti.c.step, ti.c.intermediate_value, ti.c.intermediate_value_type).join(
        trials, trials.c.trial_id == ti.c.trial_id).where(trials.c.study_id == study_id)
    return by_trial, attrs, steps


def _read_rows(conn: sqlalchemy.Connection, study_id: int, experiment_name: str) -> list[tuple[Trial, dict[str, Any]]]:
    m, (by_trial, attrs, steps) = _models, _read_statements()
    found: tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]] = ({}, {})  # user, system attributes
    curves: dict[int, dict[int, float]] = {}
    key = {"study_id": study_id}
    rows = conn.execute(by_trial, key).all()
    for kind, trial_id, name, text in conn.execute(attrs, key).all():
        found[kind].setdefault(trial_id, {})[name] = json.loads(text)
    for trial_id, step, value, kind in conn.execute(steps, key).all():
        curves.setdefault(trial_id, {})[step] = m.TrialIntermediateValueModel.stored_repr_to_intermediate_value(
            value, kind)
    user, system = found
    out = []
    for trial_id, number, state, value, kind in rows:
        ua = user.get(trial_id, {})
        value = None if kind is None else m.TrialValueModel.stored_repr_to_value(value, kind)
        out.append((_trial_of(experiment_name, number, state, ua, system.get(trial_id, {}), value, curves.get(trial_id, {})),
                    ua.get("owner") or {}))
    return out


def load_stored(url: str, name: str, what: str = "--warm-start") -> tuple[dict[str, Any], list[Trial]]:
    """The stored spec and every trial of experiment ``name``.

    Raises StoreConflict (its message starting with ``what``) when the storage has no experiment of that name.
    """
    storage = make_storage(url)
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        raise StoreConflict(f"{what}: no experiment named {name!r} in {url}") from None
    spec = storage.get_study_user_attrs(study_id).get(_SPEC_KEY)
    if spec is None:
        raise StoreConflict(f"{what}: the study {name!r} in {url} was not made by hp-components")
    return spec, [trial for trial, _ in read_trials(storage, study_id, name)]


def load_finished(url: str, name: str) -> tuple[dict[str, Any], list[Trial]]:
    """The stored spec and the finished trials of experiment ``name`` (for a warm start)."""
    spec, trials = load_stored(url, name)
    return spec, [t for t in trials if t.condition in ("Succeeded", "EarlyStopped")]


class ExperimentStore:
    """One experiment's trials in an Optuna RDB storage; created on first use."""

    def __init__(self, url: str, experiment: Experiment, owner: Owner | None = None, fresh: bool = False):
        self.url = url
        self.experiment = experiment
        self.owner = owner or Owner.me()
        self.space = SearchSpace(experiment.spec.parameters)
        self.storage = make_storage(url)
        self._ids: dict[int, int] = {}  # trial number -> storage trial id
        self._conn: sqlalchemy.Connection | None = None  # the connection of one_connection(), while it lasts
        self._written: dict[int, dict[str, Any]] = {}  # trial id -> its attributes as this store last wrote them
        self._reported: dict[int, int] = {}  # trial id -> how many of its intermediate values this store wrote
        self._seen = (-1, -1)  # (trials, finished trials) the last sync saw, plus this store's own writes since
        #: with ``fresh``: how many trials the forgotten experiment had (None: nothing was stored)
        self.forgotten: int | None = None
        if fresh:
            try:
                old = self.storage.get_study_id_from_name(experiment.name)
            except KeyError:
                pass  # nothing stored yet
            else:
                self.forgotten = len(self.storage.get_all_trials(old, deepcopy=False))
                self.storage.delete_study(old)
        direction = (
            optuna.study.StudyDirection.MAXIMIZE
            if experiment.spec.objective.type == "maximize"
            else optuna.study.StudyDirection.MINIMIZE
        )
        spec = experiment.to_dict()
        #: the spec stored by the previous run of this experiment (None for a new one)
        self.previous_spec: dict[str, Any] | None = None
        try:  # an experiment stored already (a resume, every lane step) is looked up, not inserted and refused
            self.study_id, created = self.storage.get_study_id_from_name(experiment.name), False
        except KeyError:
            try:
                self.study_id, created = self.storage.create_new_study([direction], experiment.name), True
            except optuna.exceptions.DuplicatedStudyError:  # another runner created it a moment ago
                self.study_id, created = self.storage.get_study_id_from_name(experiment.name), False
        if created:
            # optuna-dashboard and Optuna's plots name the objective by it, not "Objective 0"; the API has
            # been "experimental" since Optuna 3.2, a warning the user of hp-tune can do nothing about
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.load_study(study_name=experiment.name, storage=self.storage).set_metric_names(
                    [experiment.spec.objective.objective_metric_name])
            self.storage.set_study_user_attr(self.study_id, _SPEC_KEY, spec)
        else:
            stored = self.storage.get_study_user_attrs(self.study_id).get(_SPEC_KEY)
            for _ in range(20):  # another runner may have created the study a moment ago
                if stored is not None:
                    break
                time.sleep(0.1)
                stored = self.storage.get_study_user_attrs(self.study_id).get(_SPEC_KEY)
            if stored is None:
                raise StoreConflict(
                    f"the storage {url} has an Optuna study named {experiment.name!r} that hp-components did not "
                    "create; rename the experiment (metadata.name) or use another --storage"
                ) from None
            if _comparable(stored) != _comparable(spec):
                raise StoreConflict(
                    f"experiment {experiment.name!r} already exists in {url} with a different spec; only "
                    f"{', '.join('spec.' + k for k in _EDITABLE)} may change when it resumes. Rename it "
                    "(metadata.name), use another --storage, or start over with --fresh"
                ) from None
            self.previous_spec = stored
            if stored != spec:
                self._check_trial_budget()

    def _check_trial_budget(self) -> None:
        """Katib's rule for a changed spec: ``maxTrialCount`` must exceed the trials already created.

        Katib's webhook (pkg/webhook/v1beta1/experiment/validator/validator.go) refuses an edit
        whose ``spec.maxTrialCount`` is <= ``status.trials``; trials recorded ``Interrupted`` (run
        again under a new name) do not count, as for the budget itself.
        """
        limit = self.experiment.spec.max_trial_count
        if limit is None:
            return
        created = sum(t.condition != "Interrupted" for t in self.history())
        if limit <= created:
            raise StoreConflict(
                f"spec.maxTrialCount: experiment {self.experiment.name!r} already has {created} trials; a changed "
                f"spec needs maxTrialCount greater than that (it is {limit}), as Katib requires. Raise it above "
                f"{created}, keep the stored spec unchanged, or start over with --fresh"
            )

    def warm_start_source(self) -> str | None:
        """The experiment this one was warm-started from, if any."""
        return self.storage.get_study_user_attrs(self.study_id).get(_WARM_KEY)

    def remember_warm_start(self, source: str) -> None:
        self.storage.set_study_user_attr(self.study_id, _WARM_KEY, source)

    def adopt_spec(self) -> None:
        """Store the current spec as the experiment's (after its changes were accepted)."""
        spec = self.experiment.to_dict()
        if self.previous_spec is not None and self.previous_spec != spec:
            self.storage.set_study_user_attr(self.study_id, _SPEC_KEY, spec)
            self.previous_spec = spec

    # ------------------------------------------------------------------ reading

    def _record(self, ft: optuna.trial.FrozenTrial) -> Trial:
        return _to_trial(ft, self.experiment.name)

    def history(self) -> list[Trial]:
        """Every trial of the experiment, in creation order."""
        return [trial for trial, _ in self.history_with_owners()]

    def history_with_owners(self) -> list[tuple[Trial, dict[str, Any]]]:
        """Every trial, in creation order, with the runner that created it (:meth:`Owner.to_dict`; {} if none)."""
        return read_trials(self.storage, self.study_id, self.experiment.name, self._conn)

    @contextlib.contextmanager
    def one_connection(self) -> Iterator[sqlalchemy.Connection]:
        """Every statement of this store on one database connection, yielded, until the block ends (each
        write still its own transaction): a lane's claim holds its lock on it while it reads, decides and
        creates, instead of opening a second connection (a PostgreSQL connection costs milliseconds). For a
        store one thread uses (a step's): Optuna's session factory is bound to the connection meanwhile::

            with store.one_connection() as conn:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(1)")); conn.commit()
                history = store.history()
                store.create(trials)
        """
        registry = self.storage.scoped_session
        with self.storage.engine.connect() as conn:
            registry.remove()
            registry.configure(bind=conn)  # Optuna's sessions (the writes) on it too
            self._conn = conn
            try:
                yield conn
            finally:
                self._conn = None
                registry.remove()
                registry.configure(bind=self.storage.engine)

    def _trial_id(self, trial: Trial) -> int:
        number = int(trial.name.rsplit("-", 1)[1])
        trial_id = self._ids.get(number)
        if trial_id is None:  # a trial's number -> id never changes: ask the database once
            trial_id = self._ids[number] = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        return trial_id

    def _counts(self) -> tuple[int, int] | None:
        """(trials, finished trials) of the experiment in one query (None without the RDB models)."""
        if _models is None:
            return None
        with _create_scoped_session(self.storage.scoped_session) as session:
            total, done = session.connection().execute(_COUNTS, {"study_id": self.study_id}).one()
        return int(total), int(done or 0)

    def sync(self, force: bool = False) -> list[Trial] | None:
        """The history, when it changed since the last sync other than by this store's own writes
        (another runner created or finished trials), or with ``force``; else None (one cheap query)."""
        if not force and self._counts() == self._seen:
            return None
        history = self.history()
        self._seen = (len(history), sum(not t.active for t in history))  # not active: no longer RUNNING
        return history

    # ------------------------------------------------------------------ writing

    def _wrote(self, trials: int = 0, finished: int = 0) -> None:
        self._seen = (self._seen[0] + trials, self._seen[1] + finished)

    def _write(self, trial_id: int, attrs: dict[str, Any], values_of: Trial | None = None,
               state: TrialState = TrialState.RUNNING, value: float | None = None) -> None:
        """Write user attributes, the intermediate values of ``values_of`` not written yet and (unless
        RUNNING) the final state of a trial in one transaction, the state last; UpdateFinishedTrialError
        (the trial is already finished) propagates with nothing written.

        With the RDB storage's models, plain statements and upserts (SQLite, PostgreSQL); else (another
        Optuna version or database) Optuna's public API, one call each: a runner dying in between
        leaves attributes without the final state (see ``_to_trial``).
        """
        reported = self._reported.get(trial_id, 0)
        steps = values_of.intermediate_values[reported:] if values_of else []
        if attrs or steps or state != TrialState.RUNNING:
            self._write_rows(trial_id, attrs, steps, state, value)
        self._reported[trial_id] = reported + len(steps)

    def _write_rows(self, trial_id: int, attrs: dict[str, Any], steps: list[tuple[int, float]],
                    state: TrialState, value: float | None) -> None:
        dialect = self.storage.engine.name
        if _models is None or dialect not in _UPSERT:
            for key, v in attrs.items():
                self.storage.set_trial_user_attr(trial_id, key, v)
            for step, v in steps:
                self.storage.set_trial_intermediate_value(trial_id, step, v)
            if state != TrialState.RUNNING:
                self.storage.set_trial_state_values(trial_id, state, [value] if value is not None else None)
            return
        m, q = _models, _write_statements()
        with _create_scoped_session(self.storage.scoped_session) as session:
            conn = session.connection()  # plain statements: none of the ORM's work per statement
            current = conn.execute(q.lock_trial, {"trial_id": trial_id}).scalar()
            if current is None:
                raise KeyError(f"no trial with id {trial_id}")
            self.storage.check_trial_is_updatable(trial_id, current)
            _upsert(conn, dialect, m.TrialUserAttributeModel, ("trial_id", "key"),
                    [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()])
            _upsert(conn, dialect, m.TrialIntermediateValueModel, ("trial_id", "step"), [
                dict(zip(("trial_id", "step", "intermediate_value", "intermediate_value_type"),
                         (trial_id, step, *m.TrialIntermediateValueModel.intermediate_value_to_stored_repr(v))))
                for step, v in steps])
            if state == TrialState.RUNNING:
                return
            if value is not None:
                stored, kind = m.TrialValueModel.value_to_stored_repr(value)
                _upsert(conn, dialect, m.TrialValueModel, ("trial_id", "objective"),
                        [{"trial_id": trial_id, "objective": 0, "value": stored, "value_type": kind}])
            conn.execute(q.finish_trial, {"id": trial_id, "final": state, "complete": datetime.datetime.now()})

    def _insert(self, params: dict[str, Any], user_attrs: dict[str, Any], system_attrs: dict[str, Any],
                rerun_of: int | None = None, ended: frozenset[int] = frozenset()) -> tuple[int, int] | None:
        """Insert a RUNNING trial in one transaction; returns its id and number.

        ``rerun_of``, the id of an ``Interrupted`` trial whose parameters this one runs again: claimed
        in the same transaction (its ``rerun`` attribute goes from "pending" to this trial's name by a
        conditional UPDATE, so of two runners only one gets it); None, inserting nothing, when another
        runner claimed it first. A runner dying before the commit leaves it pending.

        ``parallelTrialCount`` holds for every runner of the experiment: the new trial is counted with
        the RUNNING trials (but ``ended``, ids of trials whose processes ended and whose results are
        still to be written) inside the insert's transaction, after the insert took the write lock
        (SQLite: the database's, taken at the insert; PostgreSQL: the study row's), and rolled back,
        None, when there are more than the limit.

        With the RDB models, in six or seven plain statements built once (:func:`_write_statements`;
        Optuna's create_new_trial takes two per attribute and three per parameter, and the number a query
        of its own); else through Optuna's public API.
        """
        if _models is None:
            if rerun_of is not None:  # not atomic across runners: Optuna's API has no conditional write
                if self.storage.get_trial_user_attrs(rerun_of).get(_RERUN_KEY) != "pending":
                    return None
                self.storage.set_trial_user_attr(rerun_of, _RERUN_KEY, f"claimed by {self.owner.token}")
            template = create_trial(state=TrialState.RUNNING, params=params, distributions=self.space.distributions,
                                    user_attrs=user_attrs, system_attrs=system_attrs)
            trial_id = self.storage.create_new_trial(self.study_id, template_trial=template)
            return trial_id, self.storage.get_trial_number_from_id(trial_id)
        dists, q = self.space.distributions, _write_statements()
        with _create_scoped_session(self.storage.scoped_session) as session:
            conn = session.connection()  # plain statements: none of the ORM's work per statement
            if conn.execute(q.lock_study, {"study_id": self.study_id}).first() is None:  # numbering: one at a time
                raise KeyError(f"no study with id {self.study_id}")
            pending = {"rerun_of": rerun_of, "pending": json.dumps("pending"), "claimed": json.dumps("")}
            if rerun_of is not None and conn.execute(q.claim_rerun, pending).rowcount != 1:
                return None
            trial_id = conn.execute(q.insert_trial, {"study_id": self.study_id, "state": TrialState.RUNNING,
                                                     "datetime_start": datetime.datetime.now()}).inserted_primary_key[0]
            running, number = conn.execute(q.counts, {"study_id": self.study_id, "trial_id": trial_id,
                                                      "ended": list(ended)}).one()
            if running > self.experiment.spec.parallel_trial_count:
                raise _NoSlot  # rolls the insert (and a rerun's claim) back
            conn.execute(q.set_number, {"id": trial_id, "n": number})
            conn.execute(q.insert_params, [
                {"trial_id": trial_id, "param_name": k, "param_value": dists[k].to_internal_repr(v),
                 "distribution_json": distribution_to_json(dists[k])} for k, v in params.items()])
            for statement, attrs in ((q.insert_user_attrs, user_attrs), (q.insert_system_attrs, system_attrs)):
                if attrs:
                    conn.execute(statement, [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
                                             for k, v in attrs.items()])
            if rerun_of is not None:
                conn.execute(q.name_rerun, {"rerun_of": rerun_of, "name": json.dumps(trial_name(self.experiment.name, number))})
        return trial_id, number

    def create(self, trials: Iterable[Trial], ended: Iterable[str] = ()) -> list[Trial]:
        """Create trials as RUNNING, owned by this runner; returns them named by their store number.

        Each keeps its condition and start time (a runner creates a trial ``Running`` as it starts it).
        A trial left out of the result was not created: ``parallelTrialCount`` trials were running
        already, counting other runners' and not ``ended`` (names of this runner's trials that ended,
        their results not yet written), or another runner reruns that interrupted trial.

        With ``maxTrialCount``, a trial whose number falls beyond the budget (another runner of the
        same experiment took the last slots at the same moment) is recorded ``Interrupted``
        (reason ``OverBudget``) and left out of the result: it never runs.
        """
        out = self._create(trials, frozenset(self._trial_id(Trial(name=n, assignments={})) for n in ended))
        limit = self.experiment.spec.max_trial_count
        if limit is None or not out:
            return out
        if all(int(t.name.rsplit("-", 1)[1]) < limit for t in out):
            return out  # at most `number` trials come before trial `number`: within the budget whatever they are
        counted = [t.name for t in self.history() if t.condition != "Interrupted"]
        allowed = set(counted[:limit])
        for t in out:
            if t.name not in allowed:
                self._write(self._trial_id(t), {"condition": "Interrupted", "reason": "OverBudget",
                                                "message": "another runner took the last trial slots first"},
                            state=TrialState.FAIL)
                self._wrote(finished=1)
        return [t for t in out if t.name in allowed]

    def _create(self, trials: Iterable[Trial], ended: frozenset[int]) -> list[Trial]:
        out = []
        for t in trials:
            original = t.system_attrs.get(RERUN_OF)
            try:
                inserted = self._insert(self.space.internal(t.assignments), {
                    "assignments": t.assignments,
                    "condition": t.condition,
                    "startTime": t.start_time,
                    "owner": self.owner.to_dict(),
                    "heartbeat": time.time(),
                }, t.system_attrs, None if original is None else self._trial_id(Trial(name=original, assignments={})),
                    ended)
            except _NoSlot:
                break  # every slot is taken (by another runner's trials): none of the rest fits either
            if inserted is None:
                continue  # another runner runs this interrupted trial again
            trial_id, number = inserted
            self._ids[number] = trial_id
            self._wrote(trials=1)
            # what reading the trial back gives for attributes never written (see _to_trial)
            self._written[trial_id] = {"condition": t.condition, "reason": "", "message": "",
                                       "observation": {"metrics": []}, "objectiveValue": None,
                                       "startTime": t.start_time, "completionTime": None}
            out.append(replace(t, name=trial_name(self.experiment.name, number), assignments=dict(t.assignments),
                               system_attrs=dict(t.system_attrs)))
        return out

    def save(self, trial: Trial) -> bool:
        """Write a trial's condition, observation, intermediate values not written yet and (when it
        finished) its final state, in one transaction.

        Returns False when the trial was already finished in the store (another runner took it
        over as interrupted); the store keeps what it has.
        """
        try:
            self._save(trial)
        except UpdateFinishedTrialError:
            return False
        return True

    def _save(self, trial: Trial) -> None:
        trial_id = self._trial_id(trial)
        attrs = {
            "condition": trial.condition,
            "reason": trial.reason,
            "message": trial.message,
            "observation": trial.observation,
            "objectiveValue": trial.objective_value,
            "startTime": trial.start_time,
            "completionTime": trial.completion_time,
        }
        if trial.condition == "Interrupted" and trial.reason != "OverBudget":
            attrs[_RERUN_KEY] = "pending"  # cut short (Ctrl-C): its parameters run again on resume
        known = self._written.get(trial_id)
        if known is not None:  # a trial this store created: only what changed since it last wrote it
            attrs = {k: v for k, v in attrs.items() if k not in known or known[k] != v}
        state = _STATE[trial.condition]
        self._write(trial_id, attrs, trial, state, trial.objective_value if state == TrialState.COMPLETE else None)
        if known is not None:
            known.update(json.loads(json.dumps(attrs)))  # a copy, as stored
        if state != TrialState.RUNNING:
            self._wrote(finished=1)

    def heartbeat(self, trials: Iterable[Trial]) -> None:
        """Renew running trials' heartbeat, and write their intermediate values not written yet."""
        now = time.time()
        for t in trials:
            self._write(self._trial_id(t), {"heartbeat": now}, t)

    def recover(self) -> list[Trial]:
        """Mark RUNNING trials whose runner is gone ``Interrupted``; return every ``Interrupted`` trial
        whose parameters have not run again yet (these, and those Ctrl-C cut short), oldest first.
        Trials a lane claimed (owner :data:`LANE_OWNER`) are the lanes' to judge, never taken over here.

        A trial returned is claimed only when :meth:`create` makes the trial that runs it again (with
        :data:`RERUN_OF` in its system attributes): one that never got a slot stays pending."""
        me = socket.gethostname()
        now = time.time()
        for ft in self.storage.get_all_trials(self.study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            owner = ft.user_attrs.get("owner") or {}
            if str(owner.get("host", "")).startswith(LANE_OWNER):
                continue  # a lane's trial: no heartbeat; a lane judges it lost (after its longest run)
            if owner.get("host") == me:
                dead = owner.get("pid") != os.getpid() and not _pid_alive(int(owner.get("pid", 0)))
                dead = dead or (owner.get("pid") == os.getpid() and owner.get("token") != self.owner.token)
            else:
                dead = now - float(ft.user_attrs.get("heartbeat", 0)) > STALE_AFTER
            if not dead:
                continue
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, ft.number)
            try:
                self._write(trial_id, {"condition": "Interrupted", "reason": "RunnerLost", _RERUN_KEY: "pending"},
                            state=TrialState.FAIL)
            except UpdateFinishedTrialError:
                continue  # another runner claimed it first
            self._wrote(finished=1)
        return [self._record(ft) for ft in self.storage.get_all_trials(self.study_id, deepcopy=False, states=(TrialState.FAIL,))
                if ft.user_attrs.get(_RERUN_KEY) == "pending"]


def import_history(url: str, experiment: Experiment, history: Iterable[Trial], *, fresh: bool = False) -> list[Trial]:
    """Record a pipeline run's finished trials (its history) as ``experiment`` in the store at ``url``,
    so that ``hp-tune report``, ``hp-tune dashboard`` and ``--warm-start`` read a KFP or Argo run as
    they read a local one. Each trial keeps its order, parameters, outcome, metrics and intermediate
    values (the curves), and is named by its store number as a local run names it. ::

        import_history("sqlite:///hp-runs/hp-tune.db", exp, load_history(open("history.json").read()))

    Raises :class:`StoreConflict` when ``experiment`` is stored already with trials (``fresh=True``
    replaces it) or with another spec, and for a trial that has not finished.
    """
    trials = list(history)
    for trial in trials:
        if trial.condition not in FINISHED:
            raise StoreConflict(f"trial {trial.name!r} is {trial.condition or 'without a condition'}: a history to "
                                f"import holds finished trials only ({', '.join(sorted(FINISHED))})")
    store = ExperimentStore(url, experiment, fresh=fresh)
    if store.history():
        raise StoreConflict(f"experiment {experiment.name!r} already has trials in {url}; importing would mix two "
                            "runs. Import it under another metadata.name, use another --storage, or replace it "
                            "with --fresh")
    out = []
    for trial in trials:
        created = store.create([replace(trial, condition="Running", completion_time=None)])
        if not created:
            raise StoreConflict(f"{experiment.name!r}: the store refused trial {trial.name!r} (another runner of "
                                "this experiment is running on it); stop it and import again")
        done = replace(trial, name=created[0].name)
        store.save(done)
        out.append(done)
    return out

