"""The lane steps (``hp-tune step lane-suggest|lane-record|lane-summary``) against a real PostgreSQL store.

Several lane processes loop suggest-one -> trial (a real subprocess of uneven length) -> record, all
through the real CLI, more lanes than ``parallelTrialCount``: exactly ``maxTrialCount`` trials, no
name twice, never more than ``parallelTrialCount`` trials running at once (from the trials' own
start/end stamps), a trial without an observation recorded Failed while its lane goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hp_components._lanes import lane_record, lane_suggest, with_password
from hp_components.experiment import parse_experiment
from hp_components.store import ExperimentStore
from tests.conftest import ROOT, script_experiment
from tests.lanes_store import postgres_database, split_password


@pytest.fixture
def pg_url():
    yield from postgres_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request, tmp_path):
    """SQLite (one machine: the claims lock a file next to it) and PostgreSQL (pg_advisory_lock)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/hp.db"
    else:
        yield from postgres_database()


def _cli(args: list[str], password: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "HP_STORAGE_PASSWORD": password, **env}
    return subprocess.run([sys.executable, "-m", "hp_components.cli", "step", *args], env=full,
                          capture_output=True, text=True, timeout=300)


LANE = r"""
import json, os, random, subprocess, sys, time
exp, url, lane, stamps, python = sys.argv[1:6]
hp = [python, "-m", "hp_components.cli", "step"]
depth, rnd = 0, random.Random(int(lane))
while True:
    out = subprocess.run(hp + ["lane-suggest", "--experiment", exp, "--storage", url, "--lane", lane,
                               "--run", "test", "--depth", str(depth), "--wait", "120"],
                         capture_output=True, text=True, check=True)
    claim = json.loads(out.stdout)
    if claim["done"]:
        print(claim["reason"])
        break
    depth += 1
    name = claim["trial"]["name"]
    start = time.time()
    time.sleep(rnd.choice([0.1, 0.3, 1.5]))  # trials of uneven length
    x = float(claim["trial"]["parameters"]["x"])
    obs = ("" if name.endswith("-0002") else  # this trial's pod dies: no observation
           json.dumps({"name": name, "condition": "Succeeded", "reason": "", "message": "",
                       "metrics": [{"name": "loss", "latest": str(x * x), "min": str(x * x), "max": str(x * x)}]}))
    with open(stamps, "a") as f:
        f.write(json.dumps([name, start, time.time()]) + "\n")
    subprocess.run(hp + ["lane-record", "--experiment", exp, "--storage", url, "--name", name,
                         "--observations", obs], check=True, capture_output=True, text=True)
"""


def test_lanes_share_the_store_exactly(pg_url, tmp_path):
    url, password = split_password(pg_url)
    spec = script_experiment("lanes", "print('unused')", maxTrialCount=9, parallelTrialCount=3)
    exp_file = tmp_path / "exp.yaml"
    exp_file.write_text(yaml.safe_dump(spec))
    stamps = tmp_path / "stamps.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HP_STORAGE_PASSWORD": password}
    lanes = [subprocess.Popen([sys.executable, "-c", LANE, str(exp_file), url, str(i), str(stamps), sys.executable],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(5)]  # two lanes more than parallelTrialCount: they must wait for a slot
    ends = []
    for p in lanes:
        out, errors = p.communicate(timeout=600)
        assert p.returncode == 0, errors
        ends.append(out.strip())
    assert set(ends) == {"ExperimentMaxTrialsReached"}

    history = ExperimentStore(pg_url, parse_experiment(spec)).history()
    names = [t.name for t in history]
    assert len(names) == 9 and len(set(names)) == 9
    assert all(t.finished for t in history)
    failed = [t for t in history if t.condition == "Failed"]
    assert [(t.name, t.reason) for t in failed] == [("lanes-0002", "NoObservation")]
    assert sum(t.condition == "Succeeded" for t in history) == 8
    rows = [json.loads(line) for line in stamps.read_text().splitlines()]
    assert sorted(r[0] for r in rows) == sorted(names)
    events = sorted([(s, 1) for _, s, _ in rows] + [(e, -1) for _, _, e in rows], key=lambda ev: (ev[0], ev[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak <= 3, "never more than parallelTrialCount trials at once"


def test_claims_see_running_trials_and_refuse_past_the_limits(any_url):
    pg_url = any_url
    exp = parse_experiment(script_experiment("claims", "print(1)", maxTrialCount=3, parallelTrialCount=2))
    a = lane_suggest(exp, pg_url, lane=0, run="r")
    b = lane_suggest(exp, pg_url, lane=1, run="r")
    assert not a.done and not b.done and a.item["name"] != b.item["name"]
    # a third lane finds both slots busy and, after its wait, ends without a trial
    waits: list[float] = []
    c = lane_suggest(exp, pg_url, lane=2, run="r", wait=1.0, poll=0.5, sleep=waits.append)
    assert (c.done, c.reason, waits) == (True, "NoFreeSlot", [0.5, 0.5])
    # a retried suggest step of lane 0 gets its own claim back, not a new trial
    assert lane_suggest(exp, pg_url, lane=0, run="r").item["name"] == a.item["name"]
    lane_record(exp, pg_url, a.item["name"], [])  # its pod died: recorded Failed, the lane goes on
    lane_record(exp, pg_url, a.item["name"], [{"observation": json.dumps({"name": a.item["name"], "condition": "Succeeded"})}])
    stored = {t.name: t for t in ExperimentStore(pg_url, exp).history()}
    assert (stored[a.item["name"]].condition, stored[a.item["name"]].reason) == ("Failed", "NoObservation")
    d = lane_suggest(exp, pg_url, lane=0, run="r")
    assert not d.done and d.item["name"] not in (a.item["name"], b.item["name"])
    assert lane_suggest(exp, pg_url, lane=2, run="r").reason == "ExperimentMaxTrialsReached"
    assert lane_suggest(exp, pg_url, lane=0, run="r", depth=5, max_per_lane=5).reason == "Reclaimed"


def _advisory_locks(url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as c:
        held = c.execute(sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")).scalar()
    engine.dispose()
    return held


def test_a_claim_runs_on_one_connection_and_always_unlocks(pg_url, monkeypatch):
    """On PostgreSQL a claim takes its lock, reads, decides and creates on one connection of its store
    (ExperimentStore.one_connection: no second connection opened while the lock is held), and unlocks it
    when a statement fails mid-claim (the aborted transaction rolled back first): no advisory lock is
    left to stop the next lane."""
    import sqlalchemy as sa

    import hp_components._lanes as lanes
    from hp_components._lanes import open_store

    exp = parse_experiment(script_experiment("onecon", "print(1)", maxTrialCount=4, parallelTrialCount=2))
    lane_record(exp, pg_url, lane_suggest(exp, pg_url, lane=0, run="r").item["name"], [])  # a trial to read
    store = open_store(pg_url, exp, "r/1")
    checkouts: list[object] = []
    sa.event.listen(store.storage.engine.pool, "checkout", lambda dbapi, record, proxy: checkouts.append(dbapi))
    claim = lane_suggest(exp, pg_url, lane=1, run="r", store=store)
    assert not claim.done and len(checkouts) == 1
    assert [t.condition for t in ExperimentStore(pg_url, exp).history()] == ["Failed", "Running"]  # committed
    assert _advisory_locks(pg_url) == 0

    def failing(experiment, history, count):
        store._conn.execute(sa.text("SELECT no_such_column FROM trials"))  # aborts the transaction

    monkeypatch.setattr(lanes, "suggest_step", failing)
    with pytest.raises(sa.exc.ProgrammingError):
        lane_suggest(exp, pg_url, lane=2, run="r", store=store)
    assert _advisory_locks(pg_url) == 0
    monkeypatch.undo()
    assert not lane_suggest(exp, pg_url, lane=2, run="r").done  # the next lane claims at once


def _backdate(url: str, exp, name: str, seconds: float, heartbeat: bool = False) -> None:
    """Make trial ``name`` look as if it started (and last beat) ``seconds`` ago."""
    import datetime

    store = ExperimentStore(with_password(url), exp)
    then = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    attrs = {"startTime": then.strftime("%Y-%m-%dT%H:%M:%SZ"), **({"heartbeat": time.time() - seconds} if heartbeat else {})}
    store._write(store._trial_id(next(t for t in store.history() if t.name == name)), attrs)


def test_a_local_runner_leaves_lane_trials_to_the_lanes(any_url):
    """Lane trials have no heartbeat: a local runner's recover (what hp-tune run does at start and while
    it waits) takes over another host's trial silent for 120 s, but never a lane's (owner lane:...)."""
    exp = parse_experiment(script_experiment("mixed", "print(1)", maxTrialCount=4, parallelTrialCount=3))
    claim = lane_suggest(exp, any_url, lane=0, run="wf")
    from hp_components.suggest import suggest

    local = ExperimentStore(with_password(any_url), exp)
    [theirs] = local.create(suggest(exp, local.history(), 1))  # a local runner's trial, on another host
    _backdate(any_url, exp, claim.item["name"], 1000, heartbeat=True)
    other = ExperimentStore(with_password(any_url), exp)
    other._write(other._trial_id(theirs), {"heartbeat": time.time() - 1000, "owner": {"host": "gone", "pid": 1, "token": "t"}})
    assert [t.name for t in other.recover()] == [theirs.name]  # the silent local runner's trial: taken over
    conditions = {t.name: t.condition for t in other.history()}
    assert conditions[claim.item["name"]] == "Running" and conditions[theirs.name] == "Interrupted"


def test_a_trial_of_a_deleted_workflow_is_recorded_lost_and_frees_its_slot(any_url):
    """A workflow deleted mid-trial leaves its trial Running, holding a slot. A lane of another run
    records it Failed (TrialLost) once it has run longer than a lane trial can (--lost-after), then
    claims the slot; before that it waits. The lost trial counts as failed; its late record changes nothing."""
    exp = parse_experiment(script_experiment("lost", "print(1)", maxTrialCount=3, parallelTrialCount=1))
    old = lane_suggest(exp, any_url, lane=0, run="deleted-wf")
    assert lane_suggest(exp, any_url, lane=0, run="new-wf", wait=0.0, lost_after=600).reason == "NoFreeSlot"
    _backdate(any_url, exp, old.item["name"], 601)
    new = lane_suggest(exp, any_url, lane=0, run="new-wf", wait=0.0, lost_after=600)
    assert not new.done and new.item["name"] != old.item["name"]
    stored = {t.name: t for t in ExperimentStore(with_password(any_url), exp).history()}
    lost = stored[old.item["name"]]
    assert (lost.condition, lost.reason, lost.completion_time is not None) == ("Failed", "TrialLost", True)
    assert "longer than a lane trial can run (600 s)" in lost.message and stored[new.item["name"]].condition == "Running"
    assert lane_record(exp, any_url, old.item["name"], [{"observation": json.dumps({"name": old.item["name"],
                                                                                   "condition": "Succeeded"})}]).reason == "TrialLost"
    _backdate(any_url, exp, new.item["name"], 601)  # without --lost-after nothing is ever judged lost
    assert lane_suggest(exp, any_url, lane=1, run="new-wf", wait=0.0).reason == "NoFreeSlot"


def test_report_shows_a_lane_run_while_it_runs(pg_url, tmp_path):
    spec = script_experiment("watch", "print(1)", maxTrialCount=4, parallelTrialCount=2)
    exp = parse_experiment(spec)
    a = lane_suggest(exp, pg_url, lane=0)
    b = lane_suggest(exp, pg_url, lane=1)
    obs = {"name": a.item["name"], "condition": "Succeeded", "metrics": [{"name": "loss", "latest": "0.25", "min": "0.25", "max": "0.25"}]}
    lane_record(exp, pg_url, a.item["name"], json.dumps(obs))
    exp_file = tmp_path / "exp.yaml"
    exp_file.write_text(yaml.safe_dump(spec))
    r = subprocess.run([sys.executable, "-m", "hp_components.cli", "report", str(exp_file), "--storage", pg_url, "-f", "markdown"],
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert a.item["name"] in r.stdout and b.item["name"] in r.stdout and "Running" in r.stdout and "0.25" in r.stdout


def test_goal_reached_ends_every_lane(pg_url):
    spec = script_experiment("goal", "print(1)", maxTrialCount=10, parallelTrialCount=2)
    spec["spec"]["objective"]["goal"] = 0.5
    exp = parse_experiment(spec)
    a = lane_suggest(exp, pg_url, lane=0)
    obs = {"name": a.item["name"], "condition": "Succeeded", "metrics": [{"name": "loss", "latest": "0.1", "min": "0.1", "max": "0.1"}]}
    assert lane_record(exp, pg_url, a.item["name"], [{"observation": json.dumps(obs)}]).condition == "Succeeded"
    claim = lane_suggest(exp, pg_url, lane=1)
    assert (claim.done, claim.reason) == (True, "ExperimentGoalReached")


def test_the_password_comes_from_the_environment_only():
    assert with_password("postgresql+psycopg://hp@db:5432/hp", {"HP_STORAGE_PASSWORD": "pw"}) == \
        "postgresql+psycopg://hp:pw@db:5432/hp?connect_timeout=15"
    assert with_password("sqlite:////tmp/x.db", {}) == "sqlite:////tmp/x.db"


def test_one_storage_check_for_the_local_cli_the_lane_steps_and_the_lane_compiler(tmp_path):
    """store.parse_storage is the one --storage check: the local CLI, the lane steps (exit 2, no traceback)
    and the lane compiler (CompileError naming --storage) give its message for the same bad URLs."""
    from hp_components.argo import Lanes
    from hp_components.argo._errors import CompileError
    from hp_components.store import StoreConflict, parse_storage

    exp_file = tmp_path / "exp.yaml"
    exp_file.write_text(yaml.safe_dump(script_experiment("urlcheck", "print(1)")))
    for bad, lanes_too in (("not a url", True), ("oracle://u@h/db", True), ("sqlite:///x.db", False)):
        if lanes_too:
            with pytest.raises(StoreConflict) as checked:
                parse_storage(bad, ("postgresql", "mysql", "sqlite"), "lanes need a database their steps share")
            r = _cli(["lane-suggest", "--experiment", str(exp_file), "--storage", bad, "--lane", "0"], "")
            assert r.returncode == 2 and f"--storage {checked.value}" in r.stderr and "Traceback" not in r.stderr, r.stderr
        with pytest.raises(StoreConflict) as checked:
            parse_storage(bad, ("postgresql", "mysql"), "lanes need a database server the cluster's pods reach")
        with pytest.raises(CompileError) as refused:
            Lanes(bad, "hp-db")
        assert str(checked.value) in str(refused.value) and "--storage" in str(refused.value)
    assert "(PostgreSQL or MySQL), not sqlite; write postgresql+psycopg://" in str(checked.value)
    with pytest.raises(StoreConflict, match="oracle://u@h/db: .*not oracle"):
        with_password("oracle://u@h/db", {})


def test_a_wrong_password_fails_the_step_naming_host_and_secret(pg_url, tmp_path):
    url, _ = split_password(pg_url)
    exp_file = tmp_path / "exp.yaml"
    exp_file.write_text(yaml.safe_dump(script_experiment("unreach", "print(1)")))
    r = _cli(["lane-suggest", "--experiment", str(exp_file), "--storage", url, "--lane", "0"], "wrong",
             HP_STORAGE_SECRET="hp-db/password")
    host = url.split("@", 1)[1].split("/", 1)[0]
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert f"at host {host}" in r.stderr and "Secret hp-db/password" in r.stderr


def test_an_unreachable_store_is_a_runtime_fault(tmp_path):
    exp_file = tmp_path / "exp.yaml"
    exp_file.write_text(yaml.safe_dump(script_experiment("unreach", "print(1)")))
    r = _cli(["lane-record", "--experiment", str(exp_file), "--storage", "postgresql+psycopg://hp@127.0.0.1:9/hp",
              "--name", "unreach-0000"], "", HP_STORAGE_SECRET="hp-db/password")
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
    assert "at host 127.0.0.1:9" in r.stderr and "Secret hp-db/password" in r.stderr


def test_bad_arguments_exit_2(tmp_path):
    r = _cli(["lane-suggest", "--experiment", "{}", "--storage", "postgresql://h/db", "--lane", "0"], "")
    assert r.returncode == 2 and "--experiment" in r.stderr and "Traceback" not in r.stderr
    exp_file = tmp_path / "exp.yaml"
    exp_file.write_text(yaml.safe_dump(script_experiment("bad", "print(1)")))
    r = _cli(["lane-suggest", "--experiment", str(exp_file), "--storage", "not a url", "--lane", "0"], "")
    assert r.returncode == 2 and "--storage" in r.stderr and "Traceback" not in r.stderr
    r = _cli(["lane-suggest", "--experiment", str(exp_file), "--storage", "sqlite:///x.db"], "")
    assert r.returncode == 2 and "--lane" in r.stderr
