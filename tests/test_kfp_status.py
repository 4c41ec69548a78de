"""``hp-tune status --target kfp RUN_ID --host URL`` against a fake KFP UI host (API + ML Metadata).

The fake implements the contract written down in hp_components/kfp/_status.py and _mlmd.py
(kubeflow/pipelines 7b70c7b), not recorded from a live server (none here):

* R1 ``GET /apis/v2beta1/runs/<id>`` (backend/api/v2beta1/run.proto ``Run``), with task details
  as the API server makes them from Argo nodes (api_converter.go ``toModelTasks``): display names
  are IR task keys (``<key>-driver``, ``executor`` for the pods), no artifacts, no values.
* R2 grpc-web ``POST /ml_metadata.MetadataStoreService/<Method>`` (the UI's proxy to the metadata
  Envoy): frames of flag + 4-byte length + protobuf, trailers ``grpc-status``. Its answers are
  encoded here by hand from the field numbers of third_party/ml-metadata/ml_metadata/proto/
  metadata_store.proto (``Value``: string_value 3, struct_value 4; ``Execution``: id 1,
  last_known_state 3, custom_properties 5, create_time_since_epoch 8; ``Context``: id 1, name 3)
  and metadata_store_service.proto (``GetContextByTypeAndNameRequest``: type_name 1,
  context_name 2; response context 1; ``GetExecutionsByContextRequest``: context_id 1, options 2
  (``ListOperationOptions``: max_result_size 1, next_page_token 3); response executions 1,
  next_page_token 2), independently of the client's descriptors; google.protobuf.Struct values
  are the real struct_pb2. The server pages 3 executions at a time.

The executions' values are real: loop items from the suggest runtime, observations written by the
real metrics wrapper running a real command, the next batch from the collect runtime.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

pytest.importorskip("kfp")

from google.protobuf import struct_pb2  # noqa: E402

from hp_components.cli import main as cli_main  # noqa: E402
from hp_components.experiment import load_experiment  # noqa: E402
from hp_components.kfp._fields import trial_fields  # noqa: E402
from hp_components.kfp._runtime import collect_round, suggest_items  # noqa: E402
from hp_components.steps import WRAPPER_SOURCE, wrapper_args  # noqa: E402
from tests.conftest import script_experiment  # noqa: E402

RUN_ID = "3f1c-run"
#: MLMD Execution.State numbers (metadata_store.proto: NEW 1, RUNNING 2, COMPLETE 3, FAILED 4)
RUNNING, COMPLETE = 2, 3


# --------------------------------------------------------------------------- protobuf by hand

def _varint(n: int) -> bytes:
    out = b""
    n &= (1 << 64) - 1
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _fields(data: bytes) -> dict[int, list[Any]]:
    """Top-level fields of a protobuf message (varints and length-delimited only)."""
    out: dict[int, list[Any]] = {}
    at = 0

    def varint() -> int:
        nonlocal at
        shift = value = 0
        while True:
            b = data[at]
            at += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value
    while at < len(data):
        key = varint()
        if key & 7 == 0:
            out.setdefault(key >> 3, []).append(varint())
        elif key & 7 == 2:
            size = varint()
            out.setdefault(key >> 3, []).append(data[at:at + size])
            at += size
        else:
            raise AssertionError(f"unexpected wire type in {data!r}")
    return out


def _value(v: Any) -> bytes:
    """ml_metadata.Value: a str as string_value (3), a dict as struct_value (4)."""
    if isinstance(v, str):
        return _field(3, v)
    s = struct_pb2.Struct()
    s.update(v)
    return _field(4, s.SerializeToString())


def _execution(e: dict[str, Any]) -> bytes:
    props = {"display_name": e["display_name"], "task_name": e["display_name"], "inputs": e["inputs"]}
    if e.get("outputs") is not None:
        props["outputs"] = e["outputs"]
    body = _field(1, e["id"]) + _field(3, e["state"]) + _field(8, 1_764_000_000_000 + e["id"])
    for k, v in props.items():  # map<string, Value> custom_properties = 5: entries {key 1, value 2}
        body += _field(5, _field(1, k) + _field(2, _value(v)))
    return body


def _frames(message: bytes, status: int = 0, text: str = "") -> bytes:
    trailer = f"grpc-status:{status}\r\ngrpc-message:{text}\r\n".encode()
    data = b"\x00" + len(message).to_bytes(4, "big") + message if status == 0 else b""
    return data + b"\x80" + len(trailer).to_bytes(4, "big") + trailer


# --------------------------------------------------------------------------- real values

def _observe(tmp: Path, exp: Any, loss: float | None, name: str) -> str:
    """What the real wrapper writes for a command printing ``loss`` (None: a failing command)."""
    wrapper = tmp / "metrics.py"
    wrapper.write_text(WRAPPER_SOURCE)
    out = tmp / f"obs-{name}.json"
    code = f"print('loss={loss}')" if loss is not None else "import sys; sys.exit(3)"
    subprocess.run([sys.executable, str(wrapper), *wrapper_args(exp), "--output", str(out), "--",
                    sys.executable, "-c", code], check=True, timeout=60)
    return out.read_text()


def _run_fixture(tmp: Path) -> dict[str, Any]:
    data = script_experiment("seed-bayesopt", "print('loss=1')", maxTrialCount=6, parallelTrialCount=2)
    exp = load_experiment(data)
    exp_json, config = exp.to_json(), {"fields": trial_fields(exp)}
    items, _ = suggest_items(exp_json, [], config)
    losses = {items[0]["hp_trial"]: 0.5, items[1]["hp_trial"]: 0.125}
    obs1 = [_observe(tmp, exp, losses[i["hp_trial"]], i["hp_trial"]) for i in items]
    round1 = collect_round(exp_json, [], items, obs1, config)
    nxt = round1["next_trials"]
    obs2 = _observe(tmp, exp, 0.0625, nxt[0]["hp_trial"])
    e: list[dict[str, Any]] = []

    def add(name: str, state: int, inputs: dict[str, Any], outputs: dict[str, Any] | None) -> None:
        e.append({"id": 100 + len(e), "display_name": name, "state": state, "inputs": inputs, "outputs": outputs})
    add("suggest", COMPLETE, {"experiment": exp_json, "config": config, "history": []},
        {"trials": items, "done": False})
    for item, ob in zip(items, obs1):
        add("trial", COMPLETE, {k: v for k, v in item.items() if k != "hp_item"}, {"observation": ob})
    add("collect", COMPLETE, {"experiment": exp_json, "config": config, "trials": items, "observations": obs1,
                              "done": False}, {"next_trials": nxt, "done": False})
    add("trial", COMPLETE, {k: v for k, v in nxt[0].items() if k != "hp_item"}, {"observation": obs2})
    add("trial", RUNNING, {k: v for k, v in nxt[1].items() if k != "hp_item"}, None)
    add("collect", RUNNING, {"experiment": exp_json, "config": config, "done": False}, None)  # not published yet
    ir_keys = {"seed-bayesopt-trial": "trial", "collect": "collect"}
    spec = {"root": {"dag": {"tasks": {"seed-bayesopt-round": {"taskInfo": {"name": "round-1"}}}}},
            "components": {"comp-c": {"dag": {"tasks": {k: {"taskInfo": {"name": v}} for k, v in ir_keys.items()}}}}}
    tasks = [{"run_id": RUN_ID, "task_id": f"t{i}", "display_name": name, "state": state}
             for i, (name, state) in enumerate([
                 ("seed-bayesopt-trial", "SUCCEEDED"), ("seed-bayesopt-trial-driver", "SUCCEEDED"),
                 ("executor", "SUCCEEDED"), ("seed-bayesopt-trial", "SUCCEEDED"), ("collect", "SUCCEEDED"),
                 ("seed-bayesopt-trial", "RUNNING"), ("seed-bayesopt-trial", "FAILED")])]
    run = {"run_id": RUN_ID, "experiment_id": "exp-1", "display_name": "seed-bayesopt", "state": "RUNNING",
           "created_at": "2026-12-01T10:00:00Z", "finished_at": "1970-01-01T00:00:00Z", "pipeline_spec": spec,
           "run_details": {"pipeline_context_id": "7", "pipeline_run_context_id": "8", "task_details": tasks}}
    return {"run": run, "executions": e, "items": items, "next": nxt, "losses": losses}


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run_fixture(tmp_path_factory.mktemp("obs"))


@pytest.fixture
def api(fixture_run: dict[str, Any]) -> Iterator[dict[str, Any]]:
    seen: dict[str, Any] = {"paths": [], "auth": [], "requests": [], "mlmd": True, "grpc_error": None}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            seen["paths"].append(self.path)
            seen["auth"].append(self.headers.get("Authorization"))
            if self.path == f"/apis/v2beta1/runs/{RUN_ID}":
                self._send(200, json.dumps(fixture_run["run"]).encode(), "application/json")
            else:
                self._send(404, b'{"error":"not found","code":5}', "application/json")

        def do_POST(self) -> None:  # noqa: N802
            seen["paths"].append(self.path)
            seen["auth"].append(self.headers.get("Authorization"))
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if not seen["mlmd"]:  # the API server itself: no /ml_metadata route
                return self._send(404, b"404 page not found", "text/plain")
            assert self.headers["Content-Type"] == "application/grpc-web+proto"
            assert body[0] == 0 and int.from_bytes(body[1:5], "big") == len(body) - 5
            req = _fields(body[5:])
            seen["requests"].append((self.path, req))
            if seen["grpc_error"]:
                return self._send(200, _frames(b"", *seen["grpc_error"]), "application/grpc-web+proto")
            if self.path == "/ml_metadata.MetadataStoreService/GetContextByTypeAndName":
                known = req[1] == [b"system.PipelineRun"] and req[2] == [RUN_ID.encode()]
                answer = _field(1, _field(1, 8) + _field(3, RUN_ID)) if known else b""
            elif self.path == "/ml_metadata.MetadataStoreService/GetExecutionsByContext":
                assert req[1] == [8]
                options = _fields(req[2][0])
                start = int(options.get(3, [b"0"])[0].decode())
                page = fixture_run["executions"][start:start + 3]
                answer = b"".join(_field(1, _execution(e)) for e in page)
                if start + 3 < len(fixture_run["executions"]):
                    answer += _field(2, str(start + 3))
            else:
                return self._send(200, _frames(b"", 12, "unimplemented"), "application/grpc-web+proto")
            self._send(200, _frames(answer), "application/grpc-web+proto")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen["host"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield seen
    server.shutdown()


def _status(api: dict[str, Any], capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    assert cli_main(["status", RUN_ID, "--target", "kfp", "--host", api["host"], *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_gives_the_best_trial_and_the_trials_so_far_from_ml_metadata(api, fixture_run, capsys) -> None:
    out = _status(api, capsys, "--token", "t0k")
    items, nxt, losses = fixture_run["items"], fixture_run["next"], fixture_run["losses"]
    assert api["paths"][0] == f"/apis/v2beta1/runs/{RUN_ID}" and set(api["auth"]) == {"Bearer t0k"}
    assert [p for p, _ in api["requests"]].count("/ml_metadata.MetadataStoreService/GetExecutionsByContext") == 3
    assert out["state"] == out["phase"] == "RUNNING" and out["done"] is False
    # the best of the collected round: the lower loss (minimize), with its parameter assignments
    best_item = min(items, key=lambda i: losses[i["hp_trial"]])
    assert out["best"] == {"name": best_item["hp_trial"], "objective": 0.125,
                           "parameters": {a["name"]: a["value"] for a in best_item["hp_item"]["parameterAssignments"]}}
    assert out["status"]["bestTrialName"] == best_item["hp_trial"] and out["status"]["trialsSucceeded"] == 2
    rows = {t["name"]: t for t in out["trials"]}
    assert list(rows) == [i["hp_trial"] for i in items + nxt]
    assert [rows[i["hp_trial"]]["objectiveValue"] for i in items] == [losses[i["hp_trial"]] for i in items]
    # the batch in flight: one trial finished (not collected yet), one running
    assert rows[nxt[0]["hp_trial"]]["condition"] == "Succeeded" and rows[nxt[0]["hp_trial"]]["objectiveValue"] == 0.0625
    assert rows[nxt[1]["hp_trial"]]["condition"] == "Running" and rows[nxt[1]["hp_trial"]]["objectiveValue"] is None
    assert rows[nxt[1]["hp_trial"]]["parameters"] == {a["name"]: a["value"] for a in nxt[1]["hp_item"]["parameterAssignments"]}
    assert out["trialCounts"] == {"started": 4, "finished": 3, "running": 1, "task_failed": 0}
    assert out["rounds_collected"] == 1 and "best_note" not in out


def test_without_ml_metadata_status_counts_trial_tasks_by_their_ir_keys(api, capsys) -> None:
    api["mlmd"] = False  # --host is the API server (no /ml_metadata proxy there)
    out = _status(api, capsys)
    assert out["best"] is None and "ml-pipeline-ui" in out["best_note"] and "HTTP 404" in out["best_note"]
    # Argo node names: the trial task key, not its driver or executor pod
    assert out["trialCounts"] == {"started": 4, "finished": 3, "running": 1, "task_failed": 1}
    assert [t["condition"] for t in out["trials"]] == ["SUCCEEDED", "SUCCEEDED", "RUNNING", "FAILED"]
    assert out["rounds_collected"] == 1


def test_a_grpc_error_from_ml_metadata_is_named_and_the_run_state_still_shown(api, capsys) -> None:
    api["grpc_error"] = (14, "upstream%20connect%20error")  # UNAVAILABLE, percent-encoded as grpc-web does
    out = _status(api, capsys)
    assert out["state"] == "RUNNING" and out["best"] is None
    assert "grpc-status 14: upstream connect error" in out["best_note"]


def test_a_run_unknown_to_ml_metadata_has_no_trials_yet(api, fixture_run, capsys, monkeypatch) -> None:
    monkeypatch.setitem(fixture_run["run"], "run_id", "other-run")  # MLMD has no context of that name
    out = _status(api, capsys)
    assert out["best"] is None and out["best_note"] == "no trial has been collected yet"
    assert out["trialCounts"]["started"] == 4  # counted from R1's task details


def test_status_of_an_unknown_run_names_it(api: dict[str, Any], capsys) -> None:
    assert cli_main(["status", "nope", "--target", "kfp", "--host", api["host"]]) != 0
    assert "run 'nope'" in capsys.readouterr().err


def test_status_needs_a_host(capsys) -> None:
    assert cli_main(["status", RUN_ID, "--target", "kfp"]) != 0
    assert "--host" in capsys.readouterr().err


def test_the_compiled_pipeline_names_the_tasks_status_reads(tmp_path: Path) -> None:
    """R2 matches executions by taskInfo.name (driver/container.go: ecfg.DisplayName); R1 by IR key."""
    from hp_components.kfp import compile_experiment

    exp = load_experiment(script_experiment("names", "print('loss=1')", maxTrialCount=4, parallelTrialCount=2))
    compile_experiment(exp, tmp_path / "p.yaml")
    ir = yaml.safe_load((tmp_path / "p.yaml").read_text())
    names = {t["taskInfo"]["name"] for c in [ir["root"], *ir["components"].values()]
             for t in ((c.get("dag") or {}).get("tasks") or {}).values()}
    assert {"suggest", "trial", "collect", "report"} <= names
    from hp_components.kfp._status import _task_keys

    assert _task_keys({"pipeline_spec": ir}, "trial") == {"names-trial"}


def test_a_finished_run_replays_every_round_and_skips_the_rounds_after_done(api, fixture_run, capsys, monkeypatch,
                                                                              tmp_path) -> None:
    from hp_components.experiment import load_experiment as load

    first = fixture_run["executions"][3]  # round 1's collect
    exp = load(json.loads(first["inputs"]["experiment"]))
    nxt = fixture_run["next"]
    obs2 = [fixture_run["executions"][4]["outputs"]["observation"], _observe(tmp_path, exp, None, "failing")]
    finished = [dict(e) for e in fixture_run["executions"][:-2]]
    # the failing command: the wrapper records it and exits 0, so its task completes (a retried pod
    # would keep the same execution: the driver creates it once, the launcher publishes it)
    finished.append({**fixture_run["executions"][5], "state": COMPLETE, "outputs": {"observation": obs2[1]}})
    finished.append({"id": 201, "display_name": "collect", "state": COMPLETE,
                     "inputs": {**first["inputs"], "trials": nxt, "observations": obs2},
                     "outputs": {"next_trials": [], "done": True}})
    finished.append({"id": 202, "display_name": "collect", "state": COMPLETE,  # a skipped round
                     "inputs": {**first["inputs"], "trials": [], "observations": [], "done": True},
                     "outputs": {"next_trials": [], "done": True}})
    finished.append({"id": 203, "display_name": "report", "state": COMPLETE,
                     "inputs": {"experiment": first["inputs"]["experiment"]}, "outputs": {"best_trial": nxt[0]["hp_trial"]}})
    monkeypatch.setitem(fixture_run, "executions", finished)
    monkeypatch.setitem(fixture_run["run"], "state", "SUCCEEDED")
    out = _status(api, capsys)
    assert out["done"] is True and out["report"] == "COMPLETE" and out["rounds_collected"] == 2
    assert out["best"]["name"] == nxt[0]["hp_trial"] and out["best"]["objective"] == 0.0625
    rows = {t["name"]: t for t in out["trials"]}
    assert len(out["trials"]) == 4 and rows[nxt[1]["hp_trial"]]["condition"] == "Failed"  # the failing command
    assert out["status"]["trialsSucceeded"] == 3 and out["status"]["trialsFailed"] == 1
    assert out["trialCounts"] == {"started": 4, "finished": 4, "running": 0, "task_failed": 0}


# --------------------------------------------------------------------------- a lanes run (--lanes)

@pytest.fixture
def lanes_run(tmp_path: Path, monkeypatch) -> Iterator[dict[str, Any]]:
    """A lanes run's executions with real values: claims by the real ``hp-tune step lane-suggest``
    (kfp/_runtime.lane_claim) against a real PostgreSQL, observations from the real wrapper, verdicts
    from the real ``lane-record``. Lane 0 ran one trial (recorded) and ended; lane 1's first trial pod
    failed after its retries (its lane ended, no record), its claim still Running in the store."""
    from hp_components.kfp._lanes import PASSWORD_ENV
    from hp_components.kfp._runtime import lane_claim, lane_record_trial
    from tests.lanes_store import postgres_database, split_password

    for url in postgres_database():
        bare, password = split_password(url)
        monkeypatch.setenv(PASSWORD_ENV, password)
        exp = load_experiment(script_experiment("lanes-status", "print('loss=1')", maxTrialCount=2, parallelTrialCount=2))
        exp_json, config = exp.to_json(), {"fields": trial_fields(exp)}
        base = {"experiment": exp_json, "config": config, "storage": bare, "run": RUN_ID, "max_per_lane": 2}
        e: list[dict[str, Any]] = []

        def add(name: str, state: int, inputs: dict[str, Any], outputs: dict[str, Any] | None) -> None:
            e.append({"id": 300 + len(e), "display_name": name, "state": state, "inputs": inputs, "outputs": outputs})

        claimed = {}
        for lane in ("0", "1"):
            items, name, done, _ = lane_claim(exp_json, bare, config, lane=lane, run=RUN_ID, depth=0, max_per_lane=2)
            claimed[lane] = items[0]
            add("suggest", COMPLETE, {**base, "lane": lane, "depth": 0}, {"trials": items, "name": name, "done": done})
        first = claimed["0"]
        obs = _observe(tmp_path, exp, 0.25, first["hp_trial"])
        add("trial", COMPLETE, {k: v for k, v in first.items() if k != "hp_item"}, {"observation": obs})
        verdict = lane_record_trial(exp_json, bare, first["hp_trial"], [obs])
        # a single unnamed return is the output parameter `Output` (kfp 2.17.3 and kubeflow/pipelines 7b70c7b9:
        # sdk/python/kfp/dsl/component_factory.py `get_name_to_specs`, SINGLE_OUTPUT_NAME; executor.py `write_executor_output`)
        add("record", COMPLETE, {"experiment": exp_json, "storage": bare, "name": first["hp_trial"], "observations": [obs]},
            {"Output": json.dumps(verdict)})
        _, _, done, reason = lane_claim(exp_json, bare, config, lane="0", run=RUN_ID, depth=1, max_per_lane=2)
        add("suggest", COMPLETE, {**base, "lane": "0", "depth": 1},
            {"trials": [], "name": "", "done": done})
        add("trial", 4, {k: v for k, v in claimed["1"].items() if k != "hp_item"}, None)  # FAILED after its retries
        yield {"executions": e, "claimed": claimed, "first_done": (done, reason), "url": url, "exp": exp}


def test_status_of_a_lanes_run_replays_its_claims_and_records(api, fixture_run, lanes_run, capsys, monkeypatch) -> None:
    """Through the fake UI host (R1, then R2's grpc-web pages): what hp-tune status prints."""
    from hp_components.store import ExperimentStore

    monkeypatch.setitem(fixture_run, "executions", lanes_run["executions"])
    out = _status(api, capsys)
    one, two = lanes_run["claimed"]["0"], lanes_run["claimed"]["1"]
    rows = {t["name"]: t for t in out["trials"]}
    assert list(rows) == [one["hp_trial"], two["hp_trial"]]
    assert (rows[one["hp_trial"]]["condition"], rows[one["hp_trial"]]["objectiveValue"]) == ("Succeeded", 0.25)
    assert rows[one["hp_trial"]]["parameters"] == {a["name"]: a["value"] for a in one["hp_item"]["parameterAssignments"]}
    # the pod that failed after its retries: its trial is Running in the store too, and says why
    assert (rows[two["hp_trial"]]["condition"], rows[two["hp_trial"]]["reason"]) == ("Running", "TrialPodFailed")
    stored = {t.name: t.condition for t in ExperimentStore(lanes_run["url"], lanes_run["exp"]).history()}
    assert stored == {one["hp_trial"]: "Succeeded", two["hp_trial"]: "Running"}
    assert out["best"] == {"name": one["hp_trial"], "objective": 0.25, "parameters": rows[one["hp_trial"]]["parameters"]}
    assert out["status"]["trialsSucceeded"] == 1 and out["status"]["trialsRunning"] == 1
    assert out["trialCounts"] == {"started": 2, "finished": 2, "running": 0, "task_failed": 1}
    assert out["lanes"] == {"trials_recorded": 1, "ended": 1} and lanes_run["first_done"][0] is True
    assert out["rounds_collected"] is None and "best_note" not in out


def test_a_lanes_record_that_found_its_trial_lost_keeps_it_lost(api, fixture_run, lanes_run, capsys, monkeypatch) -> None:
    """lane-record's verdict is the store's: a trial recorded TrialLost before its late record stays Failed."""
    executions = [dict(e) for e in lanes_run["executions"]]
    record = next(e for e in executions if e["display_name"] == "record")
    name = record["inputs"]["name"]
    record["outputs"] = {"Output": json.dumps({"name": name, "condition": "Failed", "reason": "TrialLost"})}
    monkeypatch.setitem(fixture_run, "executions", executions)
    out = _status(api, capsys)
    row = next(t for t in out["trials"] if t["name"] == name)
    assert (row["condition"], row["reason"], row["objectiveValue"]) == ("Failed", "TrialLost", None)
    assert out["best"] is None and out["status"]["trialsFailed"] == 1


def test_the_compiled_lanes_pipeline_names_the_tasks_status_reads(tmp_path: Path) -> None:
    from hp_components.kfp import compile_experiment

    exp = load_experiment(script_experiment("names", "print('loss=1')", maxTrialCount=4, parallelTrialCount=2))
    compile_experiment(exp, tmp_path / "p.yaml", lanes=True, storage="postgresql+psycopg://hp@db:5432/hp")
    ir = yaml.safe_load((tmp_path / "p.yaml").read_text())
    tasks = [t for c in [ir["root"], *ir["components"].values()] for t in ((c.get("dag") or {}).get("tasks") or {}).values()]
    names = {t["taskInfo"]["name"] for t in tasks}
    assert {"suggest", "lane-end", "record", "trial", "summary"} <= names
    suggest = next(t for t in tasks if t["taskInfo"]["name"] == "suggest")
    assert "storage" in suggest["inputs"]["parameters"]  # how status tells a lanes run from rounds
