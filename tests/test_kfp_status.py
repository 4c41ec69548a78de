"""``hp-tune status --target kfp RUN_ID --host URL`` against a fake KFP API server.

The answer below follows backend/api/v2beta1/run.proto (kubeflow/pipelines 7b70c7b): ``Run``
(run_id, display_name, state, created_at, finished_at, error, run_details) and
``RunDetails.task_details`` = ``PipelineTaskDetail`` (display_name, state, ...), as the REST
gateway writes them (proto field names, enums as strings). It is written by hand from the proto,
not recorded from a live server (none here); docs/kfp-contract.md says the same.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any, Iterator

import pytest

pytest.importorskip("kfp")

from hp_components.cli import main as cli_main  # noqa: E402

RUN = {
    "run_id": "3f1c-run", "experiment_id": "exp-1", "display_name": "seed-bayesopt", "state": "RUNNING",
    "created_at": "2026-12-01T10:00:00Z", "scheduled_at": "2026-12-01T10:00:00Z",
    "finished_at": "1970-01-01T00:00:00Z",
    "run_details": {"pipeline_context_id": "7", "pipeline_run_context_id": "8", "task_details": [
        {"run_id": "3f1c-run", "task_id": "1", "display_name": "suggest", "state": "SUCCEEDED"},
        {"run_id": "3f1c-run", "task_id": "2", "display_name": "round-1", "state": "SUCCEEDED"},
        {"run_id": "3f1c-run", "task_id": "3", "display_name": "trial", "state": "SUCCEEDED"},
        {"run_id": "3f1c-run", "task_id": "4", "display_name": "trial", "state": "SUCCEEDED"},
        {"run_id": "3f1c-run", "task_id": "5", "display_name": "collect", "state": "SUCCEEDED"},
        {"run_id": "3f1c-run", "task_id": "6", "display_name": "round-2", "state": "RUNNING"},
        {"run_id": "3f1c-run", "task_id": "7", "display_name": "trial", "state": "RUNNING"},
        {"run_id": "3f1c-run", "task_id": "8", "display_name": "trial", "state": "FAILED"},
    ]},
}


@pytest.fixture
def api() -> Iterator[dict[str, Any]]:
    seen: dict[str, Any] = {"paths": [], "auth": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            seen["paths"].append(self.path)
            seen["auth"].append(self.headers.get("Authorization"))
            if self.path == "/apis/v2beta1/runs/3f1c-run":
                code, body = 200, json.dumps(RUN).encode()
            else:
                code, body = 404, b'{"error":"not found","code":5}'
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen["host"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield seen
    server.shutdown()


def test_status_reads_the_run_state_and_trials_so_far(api: dict[str, Any], capsys) -> None:
    assert cli_main(["status", "3f1c-run", "--target", "kfp", "--host", api["host"], "--token", "t0k"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert api["paths"] == ["/apis/v2beta1/runs/3f1c-run"] and api["auth"] == ["Bearer t0k"]
    assert out["state"] == "RUNNING" and out["name"] == "seed-bayesopt"
    assert out["trialCounts"] == {"started": 4, "finished": 3, "running": 1, "task_failed": 1}
    assert [t["condition"] for t in out["trials"]] == ["SUCCEEDED", "SUCCEEDED", "RUNNING", "FAILED"]
    assert out["phase"] == "RUNNING" and out["done"] is False
    assert out["rounds_collected"] == 1 and out["report"] is None and out["best"] is None


def test_status_of_an_unknown_run_names_it(api: dict[str, Any], capsys) -> None:
    assert cli_main(["status", "nope", "--target", "kfp", "--host", api["host"]]) != 0
    assert "run 'nope'" in capsys.readouterr().err


def test_status_needs_a_host(capsys) -> None:
    assert cli_main(["status", "3f1c-run", "--target", "kfp"]) != 0
    assert "--host" in capsys.readouterr().err
