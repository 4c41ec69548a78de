"""A fake Kubernetes API server with a tiny job operator, for the job-trial contract.

It answers the calls docs/kubernetes-contract.md lists (create/get/delete a job through the
custom-objects paths, list pods by label selector, read a pod's log) and runs each created job
for real: every pod is a local process running its first container's command and args (so a
trial's training code really runs and really prints its metrics), and the job's status moves
the way the real controllers move it:

- ``batch/v1 Job``: ``status.active/succeeded/failed``; a failed pod is retried until
  ``backoffLimit`` (default 6) is passed, then condition ``Failed`` (BackoffLimitExceeded);
  a pod that succeeds gives condition ``Complete``; ``activeDeadlineSeconds`` kills the pod and
  fails the job with reason ``DeadlineExceeded``.
- Kubeflow training jobs (``kubeflow.org/v1``): one pod per replica, labelled like the training
  operator (``training.kubeflow.org/job-name``, ``replica-type``, ``replica-index``, ``job-role:
  master`` on the Master/Chief/Launcher replica); PyTorchJob pods get ``MASTER_ADDR``,
  ``MASTER_PORT``, ``WORLD_SIZE`` and ``RANK``; ``status.replicaStatuses`` counts pods; the job
  gets ``Succeeded`` when the master pod (or, without one, every pod) succeeds, ``Failed`` when any
  pod fails, with ``completionTime`` either way.

Every request is recorded in ``FakeCluster.requests`` as ``(method, path, query)``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

_MASTER_ROLES = ("master", "chief", "launcher")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message}


class _Pod:
    def __init__(self, cluster: "FakeCluster", ns: str, name: str, labels: dict[str, str], container: dict[str, Any],
                 env: dict[str, str]):
        self.ns, self.name, self.labels, self.created = ns, name, labels, _now()
        self.container = str(container.get("name", ""))
        self.log_path = cluster.workdir / f"{ns}-{name}.log"
        argv = [str(x) for x in (container.get("command") or []) + (container.get("args") or [])]
        env = {**os.environ, **{str(e["name"]): str(e.get("value", "")) for e in container.get("env") or []}, **env}
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=cluster.workdir)
        self.phase = "Running"

    def poll(self) -> str:
        code = self.proc.poll()
        if code is not None and self.phase == "Running":
            self.phase = "Succeeded" if code == 0 else "Failed"
            self.log.close()
        return self.phase

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.poll()

    def as_json(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": self.name, "namespace": self.ns, "labels": self.labels, "creationTimestamp": self.created},
                "status": {"phase": self.phase}}


class FakeCluster:
    """The fake API server; ``url`` to talk to it, ``kubeconfig(path)`` to point the client at it."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}  # (group/version, plural, ns, name)
        self.pods: dict[tuple[str, str], _Pod] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.deleted: list[tuple[str, str, str]] = []  # (plural, name, propagationPolicy)
        self.requests_bodies: list[dict[str, Any]] = []  # what was POSTed, as sent
        self.lock = threading.RLock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self.server.serve_forever, daemon=True),
                         threading.Thread(target=self._operate, daemon=True)]
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for pod in self.pods.values():
                pod.kill()

    def kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u", "namespace": namespace}}],
            "users": [{"name": "u", "user": {"token": "fake-token"}}]}))
        return path

    def wait_idle(self, timeout: float = 60) -> None:
        """Block until every pod has exited."""
        end = time.monotonic() + timeout
        while any(p.poll() == "Running" for p in list(self.pods.values())):
            if time.monotonic() > end:
                raise TimeoutError("pods still running")
            time.sleep(0.05)

    # -- the operator ----------------------------------------------------------------------
    def _start(self, obj: dict[str, Any]) -> None:
        ns, name, kind = obj["metadata"]["namespace"], obj["metadata"]["name"], obj["kind"]
        obj["status"] = {"startTime": _now()}
        if kind == "Job":
            obj["status"].update(active=0, succeeded=0, failed=0)
            self._job_pod(obj)
            return
        obj["status"]["conditions"] = [{"type": "Created", "status": "True", "reason": f"{kind}Created"},
                                       {"type": "Running", "status": "True", "reason": f"{kind}Running"}]
        specs = next(v for k, v in obj["spec"].items() if k.endswith("ReplicaSpecs"))
        world = sum(int(r.get("replicas", 1)) for r in specs.values())
        port, rank = _free_port(), 0
        for role, replica in sorted(specs.items(), key=lambda kv: kv[0].lower() not in _MASTER_ROLES):
            for index in range(int(replica.get("replicas", 1))):
                labels = {**((replica["template"].get("metadata") or {}).get("labels") or {}),
                          "training.kubeflow.org/job-name": name, "training.kubeflow.org/replica-type": role.lower(),
                          "training.kubeflow.org/replica-index": str(index)}
                if role.lower() in _MASTER_ROLES:
                    labels["training.kubeflow.org/job-role"] = "master"
                env = ({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world), "RANK": str(rank)}
                       if kind == "PyTorchJob" else {})
                pod = _Pod(self, ns, f"{name}-{role.lower()}-{index}", labels, replica["template"]["spec"]["containers"][0], env)
                pod.role = role  # type: ignore[attr-defined]
                self.pods[(ns, pod.name)] = pod
                rank += 1

    def _job_pod(self, obj: dict[str, Any]) -> None:
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        template = obj["spec"]["template"]
        attempt = obj["status"]["succeeded"] + obj["status"]["failed"]
        labels = {**((template.get("metadata") or {}).get("labels") or {}), "job-name": name, "batch.kubernetes.io/job-name": name}
        pod = _Pod(self, ns, f"{name}-{attempt}", labels, template["spec"]["containers"][0], {})
        self.pods[(ns, pod.name)] = pod
        obj["status"]["active"] = 1

    def _job_pods(self, obj: dict[str, Any]) -> list[_Pod]:
        name = obj["metadata"]["name"]
        return [p for (ns, _), p in self.pods.items() if ns == obj["metadata"]["namespace"]
                and name in (p.labels.get("job-name"), p.labels.get("training.kubeflow.org/job-name"))]

    def _finish(self, obj: dict[str, Any], kind: str, reason: str, message: str = "") -> None:
        obj["status"].setdefault("conditions", []).append(
            {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": _now()})
        if kind != "Failed" or obj["kind"] != "Job":  # a batch Job sets completionTime on success only
            obj["status"]["completionTime"] = _now()

    def _step(self, obj: dict[str, Any]) -> None:
        st = obj["status"]
        if any(c["type"] in ("Complete", "Succeeded", "Failed") and c["status"] == "True" for c in st.get("conditions", [])):
            return
        pods = self._job_pods(obj)
        phases = [p.poll() for p in pods]
        if obj["kind"] == "Job":
            limit = obj["spec"].get("activeDeadlineSeconds")
            started = datetime.strptime(st["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            if limit and (datetime.now(timezone.utc) - started).total_seconds() > limit + 1:
                for p in pods:
                    p.kill()
                st["active"] = 0
                return self._finish(obj, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
            if "Running" in phases:
                return
            st["active"], st["succeeded"], st["failed"] = 0, phases.count("Succeeded"), phases.count("Failed")
            if st["succeeded"]:
                return self._finish(obj, "Complete", "", "")
            if st["failed"] > int(obj["spec"].get("backoffLimit", 6)):
                return self._finish(obj, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
            return self._job_pod(obj)
        counts: dict[str, dict[str, int]] = {}
        for p, phase in zip(pods, phases):
            c = counts.setdefault(p.role, {})  # type: ignore[attr-defined]
            key = {"Running": "active", "Succeeded": "succeeded", "Failed": "failed"}[phase]
            c[key] = c.get(key, 0) + 1
        st["replicaStatuses"] = counts
        masters = [ph for p, ph in zip(pods, phases) if p.labels.get("training.kubeflow.org/job-role") == "master"]
        if "Failed" in phases:
            for p in pods:
                p.kill()
            return self._finish(obj, "Failed", f"{obj['kind']}Failed", "a replica failed")
        if (masters and all(ph == "Succeeded" for ph in masters)) or all(ph == "Succeeded" for ph in phases):
            for p in pods:
                p.kill()
            return self._finish(obj, "Succeeded", f"{obj['kind']}Succeeded", "the job succeeded")

    def _operate(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                for obj in list(self.objects.values()):
                    self._step(obj)
            time.sleep(0.05)

    # -- the HTTP side ---------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                cluster.requests.append((method, url.path, query))
                parts = url.path.strip("/").split("/")
                body = None
                if method == "POST":
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                    cluster.requests_bodies.append(body)
                with cluster.lock:
                    self._send(*cluster._answer(method, parts, query, body))

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                if self.headers.get("Content-Length"):
                    self.rfile.read(int(self.headers["Content-Length"]))
                self._route("DELETE")

        return Handler

    def _answer(self, method: str, parts: list[str], query: dict[str, list[str]], body: Any) -> tuple[Any, ...]:
        # /api/v1/namespaces/{ns}/pods[/{name}/log]
        if parts[:2] == ["api", "v1"] and len(parts) >= 5 and parts[4] == "pods":
            ns = parts[3]
            if len(parts) == 5 and method == "GET":
                wanted = dict(kv.split("=", 1) for kv in query.get("labelSelector", [""])[0].split(",") if kv)
                items = [p.as_json() for (pns, _), p in self.pods.items()
                         if pns == ns and all(p.labels.get(k) == v for k, v in wanted.items())]
                return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}
            pod = self.pods.get((ns, parts[5])) if len(parts) > 5 else None
            if pod is None:
                return 404, _status(404, "NotFound", "pod not found")
            if len(parts) == 7 and parts[6] == "log":
                if query.get("container", [pod.container])[0] != pod.container:
                    return 400, _status(400, "BadRequest", f"container {query['container'][0]} is not valid for pod {pod.name}")
                return 200, pod.log_path.read_text(errors="replace"), "text/plain"
            return 200, pod.as_json()
        # /apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}]
        if parts[0] != "apis" or len(parts) < 6 or parts[3] != "namespaces":
            return 404, _status(404, "NotFound", "no such path")
        gv, ns, plural = f"{parts[1]}/{parts[2]}", parts[4], parts[5]
        if method == "POST" and len(parts) == 6:
            name = body["metadata"]["name"]
            if (gv, plural, ns, name) in self.objects:
                return 409, _status(409, "AlreadyExists", f'{plural} "{name}" already exists')
            if body.get("apiVersion") != gv or f"{body.get('kind', '').lower()}s" != plural:
                return 400, _status(400, "BadRequest", f"{body.get('apiVersion')}/{body.get('kind')} posted to {gv}/{plural}")
            obj = json.loads(json.dumps(body))
            obj["metadata"].update(namespace=ns, uid=f"uid-{len(self.requests)}", creationTimestamp=_now())
            self.objects[(gv, plural, ns, name)] = obj
            self._start(obj)
            return 201, obj
        key = (gv, plural, ns, parts[6] if len(parts) > 6 else "")
        if key not in self.objects:
            return 404, _status(404, "NotFound", f'{plural} "{key[3]}" not found')
        if method == "GET":
            return 200, self.objects[key]
        if method == "DELETE":
            obj = self.objects.pop(key)
            policy = query.get("propagationPolicy", [""])[0]
            self.deleted.append((plural, key[3], policy))
            for pod in self._job_pods(obj) if policy in ("Background", "Foreground") else []:
                pod.kill()
                del self.pods[(pod.ns, pod.name)]
            return 200, _status(200, "Success", "deleted") | {"status": "Success"}
        return 405, _status(405, "MethodNotAllowed", method)
