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
from typing import Callable

import pytest
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


# ---------------------------------------------------------------- a newcomer's mistakes (issue 16)

FAILING = """
import sys
x = float(sys.argv[1].split("=")[1])
print(f"loss={x * x}", flush=True)
if x > 0:
    raise SystemExit(f"x must be negative here, got {x}")
"""


def _no_postgres_drivers(tmp_path: Path) -> dict[str, str]:
    """An environment in which psycopg and psycopg2 cannot be imported (as without the postgres extra)."""
    site = tmp_path / "nodrivers"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('psycopg', 'psycopg2', 'psycopg_binary'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Block())\n")
    return {"PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}


def test_storage_without_its_driver_is_bad_input_naming_the_extra(tmp_path):
    path = write(tmp_path, script_experiment("nodriver", SLOW, maxTrialCount=1, parallelTrialCount=1))
    env = {**os.environ, "COLUMNS": "200", **_no_postgres_drivers(tmp_path)}
    res = subprocess.run([*HP_TUNE, "run", str(path), "--storage", "postgresql://me:secret@localhost/db"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "hp-components[postgres]" in res.stderr
    assert "secret" not in res.stderr  # the password is not echoed
    res = hp("run", str(path), "--storage", "mysql://me@localhost/db", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "mysql driver 'MySQLdb' is not installed" in res.stderr and "mysql+pymysql://" in res.stderr
    assert not (tmp_path / "hp-runs" / "nodriver").exists(), "nothing ran"
    # with the extra installed (psycopg 3, no psycopg2), postgresql:// goes through psycopg: no server
    # listens on port 1, so psycopg's own connection error comes back, not a missing psycopg2
    pytest.importorskip("psycopg")
    res = hp("run", str(path), "--storage", "postgresql://me:secret@127.0.0.1:1/db", cwd=tmp_path)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "psycopg.OperationalError" in res.stderr and "psycopg2" not in res.stderr, res.stderr


def test_bad_folders_are_refused_before_anything_runs(tmp_path):
    path = write(tmp_path, script_experiment("folders", SLOW, maxTrialCount=1, parallelTrialCount=1))
    (tmp_path / "afile").write_text("")
    db = f"sqlite:///{tmp_path}/s.db"
    for args, message in [(["--run-dir", "afile"], "--run-dir afile/folders: afile is a file, not a folder"),
                          (["-o", "afile"], "--output afile: is a file, not a folder"),
                          (["-o", "afile/out"], "--output afile/out: afile is a file, not a folder"),
                          (["--workdir", "/nonexistent"], "--workdir /nonexistent: no such folder"),
                          (["--workdir", "afile"], "--workdir afile: is a file, not a folder")]:
        res = hp("run", str(path), "--storage", db, *args, cwd=tmp_path)
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert not (tmp_path / "s.db").exists(), f"{args}: refused up front, before the store or a trial"


def _studies(db: Path) -> list[str]:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute("select study_name from studies")]
    finally:
        con.close()


def test_reading_commands_never_create_a_store_or_an_experiment(tmp_path):
    ran = write(tmp_path, script_experiment("ran", SLOW.replace("0.4", "0"), maxTrialCount=2))
    db = tmp_path / "s.db"
    assert hp("run", str(ran), "-q", "--storage", f"sqlite:///{db}", cwd=tmp_path).returncode == 0
    never = tmp_path / "never.yaml"
    never.write_text(yaml.safe_dump(script_experiment("never", SLOW, maxTrialCount=2)))
    res = hp("report", str(never), "--storage", f"sqlite:///{db}", "-f", "markdown", cwd=tmp_path)
    assert res.returncode == 2 and "Running" not in res.stdout
    assert "no experiment named 'never'" in res.stderr and "it holds ran" in res.stderr
    assert _studies(db) == ["ran"], "the report wrote no empty study"
    # a mistyped store: exit 2 naming the stores that exist, and no file appears
    for args in (["report", str(ran), "--storage", f"sqlite:///{tmp_path}/s2.db"],
                 ["status", "ran", "--target", "local", "--storage", f"sqlite:///{tmp_path}/s2.db"],
                 ["dashboard", "--storage", f"sqlite:///{tmp_path}/s2.db"],
                 ["report", str(ran), "--storage", f"sqlite:///{tmp_path}/typo/s.db"]):
        res = hp(*args, cwd=tmp_path)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert "no such file" in res.stderr and "Traceback" not in res.stderr
        assert not (tmp_path / "s2.db").exists() and not (tmp_path / "typo").exists()
    assert f"{tmp_path} holds s.db" in hp(*args[:-1], f"sqlite:///{tmp_path}/s2.db", cwd=tmp_path).stderr
    # the real store reads fine
    res = hp("status", "ran", "--target", "local", "--storage", f"sqlite:///{db}", cwd=tmp_path)
    assert res.returncode == 0 and json.loads(res.stdout)["phase"] == "Succeeded"


def test_failed_trials_say_why_in_the_terminal_and_the_report(tmp_path):
    spec = script_experiment("why", FAILING, maxTrialCount=4, parallelTrialCount=2,
                             algorithm={"algorithmName": "grid"},
                             params=[{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["-1", "2"]}}])
    res = hp("run", str(write(tmp_path, spec)), "-o", "out", "--storage", f"sqlite:///{tmp_path}/s.db", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    log = tmp_path / "hp-runs" / "why" / "why-0001" / "output.log"
    # the line as the trial finished (stderr) and the summary (stdout): the error text and the log
    assert "x must be negative here, got 2.0" in res.stderr and "hp-runs/why/why-0001/output.log" in res.stderr
    assert "why-0001 Failed (the training process ended with exit code 1); its output ends:" in res.stdout
    assert "x must be negative here, got 2.0" in res.stdout and str(log) in res.stdout
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<h2>Failed trials</h2>" in page and "x must be negative here, got 2.0" in page and str(log) in page
    rows = list(csv.DictReader((tmp_path / "out" / "trials.csv").open()))
    assert {r["name"]: r["log"] for r in rows}["why-0001"] == str(log)


def test_outputs_lists_every_file_it_writes_with_normal_permissions(tmp_path):
    spec = script_experiment("files", SLOW.replace("0.4", "0"), maxTrialCount=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "300"}
    res = subprocess.run([*HP_TUNE, "run", str(write(tmp_path, spec)), "-q", "-o", "out", "--storage",
                          f"sqlite:///{tmp_path}/s.db"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env=env, preexec_fn=lambda: os.umask(0o022))
    assert res.returncode == 0, res.stderr
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == ["report.html", "status.json", "trials.csv"]
    assert "wrote out/status.json, out/trials.csv, out/report.html" in res.stdout
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o644, f


def _pty_run(args: list[str], cwd: Path, until: Callable[[str], bool], timeout: float = 90) -> tuple[subprocess.Popen, str]:
    """``hp-tune`` on a pseudo-terminal (rich draws its live view only there); reads until ``until(output)``."""
    import pty
    import select

    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160", "LINES": "50", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([*HP_TUNE, *args], cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(seen.decode("utf-8", "replace")):
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
    proc.master = master  # type: ignore[attr-defined]
    return proc, seen.decode("utf-8", "replace")


def _pty_rest(proc: subprocess.Popen, timeout: float = 60) -> str:
    import select

    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(proc.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(proc.master)
    return seen.decode("utf-8", "replace")


def test_live_table_of_running_trials_then_ctrl_c_leaves_none_running(tmp_path):
    script = """
import sys, time
x = float(sys.argv[1].split("=")[1])
for step in range(100):
    print(f"loss={x * x + step}", flush=True)
    time.sleep(0.2)
"""
    spec = script_experiment("live", script, maxTrialCount=6, parallelTrialCount=3)
    path = write(tmp_path, spec)
    proc, seen = _pty_run(["run", str(path), "--storage", f"sqlite:///{tmp_path}/s.db"], tmp_path,
                          until=lambda s: "3 running" in s and "live-0002" in s and "0:00:02" in s)
    try:
        # a progress line with the right counts from the start, and a row per running trial with its
        # parameters, the latest objective value it reported and its time so far
        assert "0/6 done · 3 running" in seen, seen[-2000:]
        assert "running trial" in seen and "latest loss" in seen and "reports" in seen
        for name in ("live-0000", "live-0001", "live-0002"):
            assert name in seen
    finally:
        proc.send_signal(signal.SIGINT)
    rest = _pty_rest(proc)
    assert proc.wait(timeout=60) == 130
    final = rest[rest.rfind("live: 3 trials"):]
    assert "live: 3 trials" in rest, rest[-3000:]
    rows = [line for line in final.splitlines() if line.startswith("│ live-")]
    assert len(rows) == 3, final
    for row in rows:  # what this runner had running was cut short: none is listed as still running
        assert "Interrupted" in row and "Running" not in row, row


FAST = """
import sys
x = float(sys.argv[1].split("=")[1])
print(f"loss={x * x}", flush=True)
"""


def test_fresh_says_what_it_replaced_and_removes_the_old_trial_folders(tmp_path):
    path = write(tmp_path, script_experiment("again", FAST, maxTrialCount=3, parallelTrialCount=3))
    db = f"sqlite:///{tmp_path}/s.db"
    assert hp("run", str(path), "--storage", db, cwd=tmp_path).returncode == 0
    (tmp_path / "hp-runs" / "again" / "notes").mkdir()  # not a trial folder: kept
    old = sorted(p.name for p in (tmp_path / "hp-runs" / "again").glob("again-*"))
    assert old == ["again-0000", "again-0001", "again-0002"]
    path.write_text(yaml.safe_dump(script_experiment("again", FAST, maxTrialCount=1, parallelTrialCount=1)))
    res = hp("run", str(path), "--storage", db, "--fresh", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "the stored experiment 'again' (3 trial(s)) and 3 trial folder(s)" in res.stderr
    left = sorted(p.name for p in (tmp_path / "hp-runs" / "again").iterdir() if p.is_dir())
    assert left == ["again-0000", "notes"]  # the new run's one trial, and what was not ours
    first = hp("run", str(write(tmp_path, script_experiment("new", FAST, maxTrialCount=1, parallelTrialCount=1))), "--storage", db,
               "--fresh", cwd=tmp_path)
    assert first.returncode == 0 and "replaced" not in first.stderr  # nothing stored: nothing to say


def test_warm_start_says_how_many_trials_seed_the_search(tmp_path):
    db = f"sqlite:///{tmp_path}/s.db"
    old = write(tmp_path, script_experiment("old", FAST, maxTrialCount=3, parallelTrialCount=3))
    assert hp("run", str(old), "--storage", db, cwd=tmp_path).returncode == 0
    narrow = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-2", "max": "2"}}]
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump(script_experiment("new", FAST, params=narrow, maxTrialCount=1, parallelTrialCount=1)))
    res = hp("run", str(new), "--storage", db, "--warm-start", "old", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "warm start: 3 finished trial(s) of 'old' seed the search" in res.stderr


def _step_and_trial_images(target: str, compiled: Path) -> tuple[set[str], set[str]]:
    """(images of the hp-components steps, images of the trials) in a compiled KFP IR or Argo template."""
    docs = [d for d in yaml.safe_load_all(compiled.read_text()) if d]
    steps, trials = set(), set()
    if target == "kfp":
        for name, ex in docs[0]["deploymentSpec"]["executors"].items():
            (trials if name.endswith("-trial") else steps).add(ex["container"]["image"])
    else:
        for t in docs[0]["spec"]["templates"]:
            body = t.get("container") or t.get("script")
            if body:
                (trials if t["name"].startswith("trial") else steps).add(body["image"])
    return steps, trials


@pytest.mark.parametrize("target", ["kfp", "argo"])
def test_the_step_image_reaches_every_step_and_its_absence_is_said_loudly(tmp_path, target):
    path = tmp_path / "exp.yaml"
    path.write_text((ROOT / "examples" / "random-digits.yaml").read_text())
    out = tmp_path / "out.yaml"
    res = hp("compile", str(path), "--target", target, "-o", str(out), "--image", "registry.example/hp:7", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "not published" not in res.stderr
    steps, trials = _step_and_trial_images(target, out)
    assert steps == {"registry.example/hp:7"} and "registry.example/hp:7" not in trials and trials
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "HP_IMAGE": "registry.example/hp:8"}
    res = subprocess.run([*HP_TUNE, "compile", str(path), "--target", target, "-o", str(out)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0 and "not published" not in res.stderr, res.stderr
    assert _step_and_trial_images(target, out)[0] == {"registry.example/hp:8"}  # HP_IMAGE: the config default
    res = hp("compile", str(path), "--target", target, "-o", str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "ghcr.io/hp-components/hp-components:0.1.0, which is not published" in res.stderr
    assert "docker build" in res.stderr and "--image" in res.stderr and "HP_IMAGE" in res.stderr
