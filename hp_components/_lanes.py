"""Asynchronous trial lanes over a shared experiment store: the steps ``lane-suggest`` and ``lane-record``.

On a cluster, ``parallelTrialCount`` lanes each loop suggest-one -> trial -> record against one
experiment store (PostgreSQL, MySQL; SQLite for one machine), so a slot is refilled the moment
its trial ends instead of at the end of a round. Every claim happens under one lock per
experiment (PostgreSQL ``pg_advisory_lock``, MySQL ``GET_LOCK``, a file lock for SQLite): the
lane reads every trial (finished and running), checks ``maxTrialCount`` and
``parallelTrialCount``, asks the algorithm for one trial and creates it Running, all before the
next lane may look. That gives the local runner's several-runners-on-one-store guarantees
exactly: ``maxTrialCount`` trials, no name reused, never more than ``parallelTrialCount``
running. Built on :mod:`hp_components.store`'s public API only (``ExperimentStore``)::

    from hp_components._lanes import lane_suggest, lane_record
    claim = lane_suggest(exp, "postgresql+psycopg://hp@db/hp", lane=0, run="wf-uid")
    if not claim.done:
        obs = run_the_trial(claim.item)                # the engine's trial step (the wrapper)
        lane_record(exp, "postgresql+psycopg://hp@db/hp", claim.item["name"], [obs])

Credentials never travel in the URL of a compiled workflow: :func:`with_password` adds the password
from the environment (``HP_STORAGE_PASSWORD``, which the workflow maps from a Kubernetes Secret).
A store that cannot be reached raises :class:`StoreUnreachable`, naming the URL's host and the Secret.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time
import uuid
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence

from hp_components.drivers import LaneStore
from hp_components.experiment import Experiment
from hp_components.status import experiment_status, remaining_slots
from hp_components.steps import _as_dict, stop_rules_for, suggest_step, trial_from_observation
from hp_components.store import LANE_OWNER, ExperimentStore, Owner, storage_url
from hp_components.template import trial_parameters
from hp_components.trials import Trial

__all__ = ["LANE_BACKENDS", "PASSWORD_ENV", "SECRET_ENV", "Claim", "StoreUnreachable", "lane_record", "lane_suggest",
           "lane_summary", "open_store", "with_password"]

#: the environment variable the store's password comes from (mapped from a Kubernetes Secret), and the
#: one naming that Secret (``name/key``, for error messages only): the drivers' LaneStore sets them
PASSWORD_ENV, SECRET_ENV = LaneStore.PASSWORD_ENV, LaneStore.SECRET_ENV
#: the databases lanes run on (SQLite: lanes on one machine only), and what needs them (for messages)
LANE_BACKENDS, LANE_NEED = ("postgresql", "mysql", "sqlite"), "lanes need a database their steps share"
#: how long a lane waits for a free slot, or for an algorithm that holds back, before it ends
DEFAULT_WAIT = 3600.0
_POLL = 2.0


def _now() -> str:
    """The time now as Katib writes it (RFC 3339, UTC, seconds)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class StoreUnreachable(RuntimeError):
    """The experiment store cannot be reached from this step (a runtime fault, not bad input)."""


def _host(url: str) -> str:
    import sqlalchemy

    try:
        u = sqlalchemy.engine.make_url(url)
    except Exception:  # noqa: BLE001 - only for a message
        return "?"
    return f"{u.host or 'localhost'}{':' + str(u.port) if u.port else ''}" if u.host or u.port else (u.database or "?")


def with_password(url: str, environ: dict[str, str] | None = None) -> str:
    """``url`` with the password from ``HP_STORAGE_PASSWORD`` when it is set (the Secret's value), and a
    connect timeout for PostgreSQL; ``url`` checked first (:func:`hp_components.store.storage_url`,
    StoreConflict when it is not a URL of a database lanes run on).

    >>> with_password("postgresql+psycopg://hp@db:5432/hp", {"HP_STORAGE_PASSWORD": "s3cret"})
    'postgresql+psycopg://hp:s3cret@db:5432/hp?connect_timeout=15'
    """
    import sqlalchemy

    env = os.environ if environ is None else environ
    password = env.get(PASSWORD_ENV)
    url = storage_url(url, LANE_BACKENDS, LANE_NEED)
    u = sqlalchemy.engine.make_url(url)
    if u.get_backend_name() == "postgresql" and "connect_timeout" not in u.query:
        u = u.update_query_dict({"connect_timeout": "15"})  # an unreachable host fails the step, not hangs it
    if password:
        u = u.set(password=password)
    return u.render_as_string(hide_password=False) if u != sqlalchemy.engine.make_url(url) else url


def _unreachable(url: str, error: BaseException) -> StoreUnreachable:
    secret = os.environ.get(SECRET_ENV, "")
    where = (f"the password comes from Secret {secret} (env {PASSWORD_ENV})" if secret
             else f"no password in the environment ({PASSWORD_ENV} unset)")
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return StoreUnreachable(
        f"the experiment store at host {_host(url)} cannot be reached from this step ({first}); {where}. "
        "Check that the database is reachable from the cluster's pods, that the Secret exists in the "
        "workflow's namespace and holds the right password")


def open_store(url: str, experiment: Experiment, lane: str = "") -> ExperimentStore:
    """The experiment's store, its owner naming the lane; StoreUnreachable when it cannot be reached."""
    import sqlalchemy.exc

    owner = Owner(host=f"{LANE_OWNER}{lane}" if lane else Owner.me().host, pid=0, token=uuid.uuid4().hex[:12])
    try:
        return ExperimentStore(with_password(url), experiment, owner=owner)
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, OSError) as e:
        raise _unreachable(url, e) from None


@contextlib.contextmanager
def _claim_lock(store: ExperimentStore) -> Iterator[None]:
    """One lane at a time for this experiment: read, decide, create, then release."""
    import sqlalchemy

    engine = store.storage.engine
    key = zlib.crc32(f"hp-components:{store.experiment.name}".encode()) - (1 << 31)  # a signed 32-bit key
    if engine.name == "sqlite":
        import fcntl

        path = (engine.url.database or "hp.db") + ".lanes.lock"
        with open(path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return
    # PostgreSQL or MySQL (LANE_BACKENDS, checked by with_password): the claim's reads and writes on the
    # lock's connection (a session lock: it outlives their transactions)
    with store.one_connection() as conn:
        if engine.name == "postgresql":
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            unlock = "SELECT pg_advisory_unlock(:k)"
        else:
            conn.execute(sqlalchemy.text("SELECT GET_LOCK(:k, -1)"), {"k": str(key)})
            unlock = "SELECT RELEASE_LOCK(:k)"
        conn.commit()
        try:
            yield
        finally:
            conn.rollback()  # a statement that failed mid-claim leaves its transaction aborted
            conn.execute(sqlalchemy.text(unlock), {"k": key if engine.name == "postgresql" else str(key)})
            conn.commit()


@dataclass
class Claim:
    """What ``lane-suggest`` decided: a trial for this lane (``item``), or ``done`` with the reason."""

    done: bool
    reason: str = ""
    item: dict[str, Any] = field(default_factory=dict)


def _read(store: ExperimentStore, owner_host: str, lost_after: float | None = None) -> tuple[list[Trial], Trial | None]:
    """Every trial (one read), lane trials lost for ``lost_after`` seconds recorded Failed, and a Running
    one this lane claimed before (a retried suggest step)."""
    trials = store.history_with_owners()
    if lost_after is not None:
        trials = [(_lost(store, t, lost_after), owner) if t.active and str(owner.get("host", "")).startswith(LANE_OWNER)
                  else (t, owner) for t, owner in trials]
    mine = next((t for t, owner in trials if t.active and owner.get("host") == owner_host), None)
    return [t for t, _ in trials], mine


def _lost(store: ExperimentStore, trial: Trial, lost_after: float) -> Trial:
    """``trial`` recorded Failed (TrialLost) when it started more than ``lost_after`` seconds ago, else as is."""
    started = _seconds_since(trial.start_time)
    if started is None or started <= lost_after:
        return trial
    lost = replace(trial, condition="Failed", reason="TrialLost", completion_time=_now(),
                   message=f"Running for {started:.0f} s, longer than a lane trial can run ({lost_after:.0f} s): its "
                           "workflow is gone (deleted, or past its deadline)")
    return lost if store.save(lost) else trial


def _seconds_since(stamp: str | None) -> float | None:
    try:
        then = datetime.datetime.strptime(stamp or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return (datetime.datetime.now(datetime.timezone.utc) - then).total_seconds()


def _item(experiment: Experiment, history: Sequence[Trial], trial: Trial) -> dict[str, Any]:
    """A stored trial as the step contract's item (name, assignments, trial parameters, stop rules)."""
    item: dict[str, Any] = {"name": trial.name,
                            "parameterAssignments": [{"name": k, "value": v} for k, v in trial.assignments.items()],
                            "parameters": trial_parameters(experiment, trial)}
    rules = stop_rules_for(experiment, history)
    if rules is not None:
        item["stopRules"] = rules
    return item


def lane_suggest(experiment: Experiment, url: str, *, lane: int | str, run: str = "", depth: int = 0,
                 max_per_lane: int | None = None, wait: float = DEFAULT_WAIT, poll: float = _POLL,
                 sleep: Callable[[float], None] = time.sleep, store: ExperimentStore | None = None,
                 lost_after: float | None = None) -> Claim:
    """Claim one trial slot in the store and suggest one trial for lane ``lane`` of run ``run``.

    The suggestion sees every finished and running trial. Ends the lane (``done``) when the experiment
    is finished (goal, failures, the algorithm has nothing left), when ``maxTrialCount`` trials exist,
    when this lane ran ``max_per_lane`` trials (the engine's depth limit), or after ``wait`` seconds
    without a free slot. A retried step (same run and lane) gets its claimed trial back. ``store``:
    one already open (:func:`open_store` with ``lane=f"{run}/{lane}"``), else it is opened here.

    ``lost_after``: seconds after which a lane trial still Running (of any run) is lost, its workflow
    gone (deleted, or past its deadline): the claim records it ``Failed`` (reason ``TrialLost``), which
    frees its slot and counts towards ``maxFailedTrialCount``, as any failed trial. The compiler gives
    the longest a trial can run with its retries and steps (the workflow's deadline without a trial
    deadline). None: never (lane trials have no heartbeat).
    """
    owner = f"{LANE_OWNER}{run}/{lane}"
    store = store if store is not None else open_store(url, experiment, f"{run}/{lane}")
    waited = 0.0
    while True:
        try:
            with _claim_lock(store):
                claim = _decide(experiment, store, owner, depth, max_per_lane, lost_after)
        except StoreUnreachable:
            raise
        except Exception as e:  # noqa: BLE001 - a database error mid-claim: the store went away
            import sqlalchemy.exc

            if isinstance(e, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
                raise _unreachable(url, e) from None
            raise
        if claim is not None:
            return claim
        if waited >= wait:
            return Claim(True, "NoFreeSlot")
        sleep(poll)
        waited += poll


def _decide(experiment: Experiment, store: ExperimentStore, owner: str, depth: int,
            max_per_lane: int | None, lost_after: float | None = None) -> Claim | None:
    """Under the lock: a Claim, or None to wait (every slot busy, or the algorithm holds back)."""
    history, mine = _read(store, owner, lost_after)
    if mine is not None:
        return Claim(False, "Reclaimed", _item(experiment, history, mine))
    status = experiment_status(experiment, history)
    if status.done:
        return Claim(True, status.reason)
    if remaining_slots(experiment, history) == 0:
        return Claim(True, "ExperimentMaxTrialsReached")
    if max_per_lane is not None and depth >= max_per_lane:
        return Claim(True, "LaneDepthReached")
    active = sum(t.active for t in history)
    if active >= experiment.spec.parallel_trial_count:
        return None
    batch = suggest_step(experiment, history, 1)
    if not batch:
        if active:
            return None  # an algorithm that waits for running trials (hyperband's rung)
        return Claim(True, "ExperimentSuggestionEndReached")
    [item] = batch
    trial = Trial(name=item["name"], assignments={a["name"]: str(a["value"]) for a in item["parameterAssignments"]},
                  system_attrs=dict(item.get("systemAttrs", {})), condition="Running", start_time=_now())
    created = store.create([trial])
    if not created:
        return Claim(True, "ExperimentMaxTrialsReached")
    return Claim(False, "", {**item, "name": created[0].name})


def _observation_for(name: str, observations: Any) -> dict[str, Any] | None:
    """The observation of trial ``name`` among an engine's outputs (a list, a mapping, one JSON text)."""
    if isinstance(observations, dict) and "observation" not in observations and name in observations:
        return _as_dict(observations[name])
    items = observations if isinstance(observations, list) else [observations]
    for o in items:
        obs = _as_dict(o)
        if obs is not None and str(obs.get("name", name)) == name:
            return obs
    return None


def lane_record(experiment: Experiment, url: str, name: str, observations: Any,
                store: ExperimentStore | None = None) -> Trial:
    """Record the wrapper's observation of trial ``name`` (none: Failed ``NoObservation``); the lane goes on.

    Recording a trial already finished in the store (a retried step) changes nothing. ``store``: one
    already open (:func:`open_store`), else it is opened here.
    """
    store = store if store is not None else open_store(url, experiment)
    try:
        stored = {t.name: t for t in store.history()}
    except Exception as e:  # noqa: BLE001
        import sqlalchemy.exc

        if isinstance(e, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
            raise _unreachable(url, e) from None
        raise
    if name not in stored:
        raise ValueError(f"--name: no trial {name!r} in experiment {experiment.name!r} of the store")
    before = stored[name]
    if before.finished:
        return before
    item = {"name": name, "parameterAssignments": [{"name": k, "value": v} for k, v in before.assignments.items()],
            "systemAttrs": before.system_attrs}
    trial = replace(trial_from_observation(experiment, item, _observation_for(name, observations)),
                    start_time=before.start_time, completion_time=_now())
    store.save(trial)
    return trial


def lane_summary(experiment: Experiment, url: str, store: ExperimentStore | None = None) -> dict[str, Any]:
    """Katib's status and the best trial from the store (what the entry point outputs after the lanes);
    ``store``: one already open, else it is opened here."""
    store = store if store is not None else open_store(url, experiment)
    history = store.history()
    status = experiment_status(experiment, history, suggestion_done=not any(t.active for t in history))
    best = status.best
    return {"status": status.to_dict(), "done": status.done,
            "best": {"name": best.name if best else "", "parameters": dict(best.assignments) if best else {},
                     "objective": best.objective_value if best else None}}
