"""Argo Workflows: generated documents validate (schema + Argo's semantic checks), and the recursion
terminates and carries state when its steps run for real, as the YAML wires them."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

pytest.importorskip("hera")
from jsonschema import Draft7Validator  # noqa: E402

from hp_components.argo import CompileError, compile_experiment, read_status, submit, workflow, workflow_template  # noqa: E402
from hp_components.experiment import load_experiment, parse_experiment  # noqa: E402
from tests.argo_engine import Interpreter, semantic_problems  # noqa: E402
from tests.conftest import DATA, PY, ROOT, script_experiment  # noqa: E402

SCHEMA = json.loads((DATA / "argo-workflows-v4.1-schema.json").read_text())
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def schema_errors(doc: dict, kind: str) -> list[str]:
    validator = Draft7Validator({"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}", "definitions": SCHEMA["definitions"]})
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("path", [*EXAMPLES, DATA / "basic.yaml"], ids=lambda p: p.stem)
def test_every_example_validates(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the custom-algorithm example imports from examples/
    exp = load_experiment(path)
    for doc, kind in ((workflow_template(exp), "WorkflowTemplate"), (workflow(exp), "Workflow")):
        assert doc["kind"] == kind
        assert schema_errors(doc, kind) == []
        assert semantic_problems(doc) == []


def test_trial_template_carries_the_container(basic_dict):
    pod = basic_dict["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    c["resources"] = {"limits": {"nvidia.com/gpu": 2, "cpu": "4", "memory": "8Gi"}, "requests": {"cpu": "2"}}
    c["env"] = [{"name": "LR", "value": "${trialParameters.lr}"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    pod["nodeSelector"] = {"gpu": "a100"}
    pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    basic_dict["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 600
    doc = workflow_template(parse_experiment(basic_dict))
    assert schema_errors(doc, "WorkflowTemplate") == []
    trial = next(t for t in doc["spec"]["templates"] if t["name"] == "trial-pod")
    assert trial["container"]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert trial["container"]["env"][0] == {"name": "LR", "value": "{{inputs.parameters.lr}}"}
    assert trial["container"]["env"][1]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert trial["nodeSelector"] == {"gpu": "a100"} and trial["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert trial["activeDeadlineSeconds"] == "660"
    args = trial["container"]["args"]
    assert args[args.index("--timeout") + 1] == "600"
    assert trial["container"]["command"][:2] == ["python3", "-c"], "no shell: python3 runs the wrapper"
    assert args[args.index("--") + 1:][-1] == "{{inputs.parameters.tn}}"  # ${trialSpec.Name} via ${trialParameters.tn}
    loop = next(t for t in doc["spec"]["templates"] if t["name"] == "loop")
    assert loop["parallelism"] == 3
    assert loop["steps"][0][0]["withParam"] == "{{inputs.parameters.trials}}"
    assert loop["steps"][2][0]["when"] == "{{steps.collect.outputs.parameters.done}} == false"


TRIAL = """
import sys
x = float(sys.argv[1].split("=")[1])
if x < -1.5:
    sys.exit(3)
print(f"loss={(x - 0.3) ** 2}")
"""


def run_workflow(tmp_path: Path, spec: dict) -> tuple[Interpreter, dict]:
    doc = workflow(parse_experiment(spec))
    engine = Interpreter(doc, tmp_path)
    engine.run()
    return engine, doc


def _history(engine: Interpreter) -> list[dict]:
    collects = [n for n in engine.nodes if n["templateName"] == "collect"]
    last = sorted(engine.workdir.glob("pod-*/tmp/hp/history.json"))[-1]
    assert len(collects) >= 1
    return json.loads(last.read_text())


def test_recursion_runs_to_max_trials(tmp_path):
    spec = script_experiment("argoloop", TRIAL, maxTrialCount=7, parallelTrialCount=3, maxFailedTrialCount=7,
                             algorithm={"algorithmName": "tpe", "algorithmSettings": [{"name": "n_startup_trials", "value": "3"}]})
    engine, _ = run_workflow(tmp_path, spec)
    history = _history(engine)
    rounds = math.ceil(7 / 3)
    assert len([n for n in engine.nodes if n["templateName"] == "collect"]) == rounds
    assert len([n for n in engine.nodes if n["templateName"] == "trial-pod"]) == 7
    assert 1 < engine.max_running <= 3, "a round's trials run concurrently, at most parallelism at a time"
    assert engine.max_seen_depth == rounds + 3  # main, a loop per round, the trial, its pod: MAX_ROUNDS + 3 < 100
    assert len(history) == 7 and len({t["name"] for t in history}) == 7
    status = json.loads(engine.globals["status"])
    assert (status["condition"], status["reason"]) == ("Succeeded", "ExperimentMaxTrialsReached")
    assert engine.globals["done"] == "true"
    best = json.loads(engine.globals["best"])
    finished = [t for t in history if t["condition"] == "Succeeded"]
    assert best["objective"] == min(t["objectiveValue"] for t in finished)
    assert best["name"] == min(finished, key=lambda t: t["objectiveValue"])["name"]
    # each trial's observation carries its name, matching the assignments it ran with
    for t in finished:
        x = float(next(a["value"] for a in t["parameterAssignments"] if a["name"] == "x"))
        assert t["objectiveValue"] == pytest.approx((x - 0.3) ** 2)


def test_failures_are_recorded_and_stop_the_loop(tmp_path):
    params = [{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["-2", "-1.8", "0.5", "-1.9"]}}]
    spec = script_experiment("argofail", TRIAL, params=params, maxTrialCount=12, parallelTrialCount=2,
                             maxFailedTrialCount=2, algorithm={"algorithmName": "grid"})
    engine, _ = run_workflow(tmp_path, spec)
    status = json.loads(engine.globals["status"])
    assert (status["condition"], status["reason"]) == ("Failed", "ExperimentFailed")
    history = _history(engine)
    assert [t["condition"] for t in history] == ["Failed", "Failed"]
    assert history[0]["message"] == "the training process ended with exit code 3"
    assert len([n for n in engine.nodes if n["templateName"] == "collect"]) == 1, "no round after the limit"


def test_grid_end_stops_the_recursion(tmp_path):
    params = [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "2"}}]
    spec = script_experiment("argogrid", TRIAL, params=params, maxTrialCount=20, parallelTrialCount=2,
                             algorithm={"algorithmName": "grid"})
    engine, _ = run_workflow(tmp_path, spec)
    status = json.loads(engine.globals["status"])
    assert status["reason"] == "ExperimentSuggestionEndReached"
    assert len(_history(engine)) == 3


def test_goal_and_values_that_need_quoting(tmp_path):
    nasty = ["a b", "it's q", "$(touch /tmp/hp-argo-pwned)", "x;y", "<&>", "naïve"]
    script = "import sys\nv = sys.argv[1]\nprint('loss=' + str(len(v)))\nprint('echo=' + str(sys.argv[1:] == [v]))"
    params = [{"name": "v", "parameterType": "categorical", "feasibleSpace": {"list": nasty}}]
    spec = script_experiment("argoquote", script, params=params, args=["${trialParameters.v}"], maxTrialCount=6,
                             parallelTrialCount=6, algorithm={"algorithmName": "grid"},
                             objective={"type": "minimize", "objectiveMetricName": "loss", "goal": 3})
    engine, _ = run_workflow(tmp_path, spec)
    history = _history(engine)
    assert sorted(a["value"] for t in history for a in t["parameterAssignments"]) == sorted(nasty)
    assert json.loads(engine.globals["status"])["reason"] == "ExperimentGoalReached"
    assert not Path("/tmp/hp-argo-pwned").exists()


def test_status_size_per_round_is_bounded(tmp_path):
    spec = script_experiment("argosize", TRIAL, maxTrialCount=12, parallelTrialCount=3)
    engine, _ = run_workflow(tmp_path, spec)
    per_round = []
    nodes_by_round: dict[int, int] = {}
    for n in engine.nodes:
        depth = n["name"].count(".next")
        nodes_by_round[depth] = nodes_by_round.get(depth, 0) + len(json.dumps(n))
    per_round = [nodes_by_round[k] for k in sorted(nodes_by_round)]
    # later rounds cost the same as earlier ones: the history is an artifact, not a parameter
    assert max(per_round[1:-1]) < 1.3 * min(per_round[1:-1])
    assert max(per_round) < 20_000


@pytest.mark.parametrize("change,field", [
    ({"spec.trialTemplate.trialSpec": {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {}}},
     "spec.trialTemplate.trialSpec.kind"),
    ({"spec.maxTrialCount": None}, "spec.maxTrialCount"),
    ({"spec.maxTrialCount": 1000, "spec.parallelTrialCount": 3}, "spec.maxTrialCount"),
])
def test_compile_errors_name_the_field(basic_dict, change, field):
    for dotted, value in change.items():
        node = basic_dict
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    if "TrainJob" in json.dumps(basic_dict):
        basic_dict["spec"]["trialTemplate"]["trialSpec"]["spec"] = {"trainer": {"image": "x", "command": [
            "python3", "${trialParameters.lr}", "${trialParameters.n}", "${trialParameters.opt}", "${trialParameters.x}",
            "${trialParameters.tn}"]}}
    with pytest.raises(CompileError) as info:
        workflow_template(parse_experiment(basic_dict))
    assert info.value.field == field


def test_braces_and_bad_parameter_names_are_refused(basic_dict):
    c = basic_dict["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    c["command"].append("{{workflow.name}}")
    with pytest.raises(CompileError, match="'{{'"):
        workflow_template(parse_experiment(basic_dict))
    c["command"].pop()
    basic_dict["spec"]["trialTemplate"]["trialParameters"][0]["name"] = "learning.rate"
    c["command"][3] = "--lr=${trialParameters.learning.rate}"
    with pytest.raises(CompileError, match=r"trialParameters\[0\].name"):
        workflow_template(parse_experiment(basic_dict))


def test_cli_compile(tmp_path):
    from hp_components.cli import main

    assert main(["compile", str(DATA / "basic.yaml"), "--target", "argo", "-o", str(tmp_path / "t.yaml")]) == 0
    assert main(["compile", str(DATA / "basic.yaml"), "--target", "argo", "--kind", "workflow", "-o", str(tmp_path / "w.yaml")]) == 0
    assert yaml.safe_load((tmp_path / "t.yaml").read_text())["kind"] == "WorkflowTemplate"
    assert yaml.safe_load((tmp_path / "w.yaml").read_text())["metadata"]["generateName"] == "basic-"
    assert main(["compile", str(DATA / "basic.yaml"), "--target", "argo", "--kind", "cron", "-o", str(tmp_path / "x.yaml")]) == 2


def test_pipelines_are_fresh(tmp_path, monkeypatch):
    """pipelines/argo-*.yaml are the compiled examples; regenerate with: python -m hp_components.argo._pipelines"""
    monkeypatch.chdir(ROOT)
    from hp_components.argo._pipelines import expected

    for name, text in expected().items():
        path = ROOT / "pipelines" / name
        assert path.exists() and path.read_text() == text, f"{path} is stale: python -m hp_components.argo._pipelines"


# ----------------------------------------------------------------------------- the API contract

class _Fake(BaseHTTPRequestHandler):
    requests: list = []
    workflows: dict = {}

    def log_message(self, *args):  # quiet
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(("POST", self.path, body, self.headers.get("Authorization")))
        wf = body.get("workflow", body)
        wf = {**wf, "metadata": {**wf["metadata"], "name": wf["metadata"]["generateName"] + "abc12"}}
        self.workflows[wf["metadata"]["name"]] = wf
        self._send(200 if "workflow" in body else 201, wf)

    def do_GET(self):
        self.requests.append(("GET", self.path, None, self.headers.get("Authorization")))
        name = self.path.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
        if name not in self.workflows:
            return self._send(404, {"kind": "Status", "code": 404, "message": "not found", "reason": "NotFound"})
        self._send(200, self.workflows[name])


@pytest.fixture
def fake_server():
    _Fake.requests, _Fake.workflows = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _finished(wf: dict) -> dict:
    wf["status"] = {"phase": "Succeeded", "progress": "2/2", "outputs": {"parameters": [
        {"name": "done", "value": "true"}, {"name": "best", "value": json.dumps({"name": "basic-0001", "objective": 0.9, "parameters": {"lr": "0.01"}})},
        {"name": "status", "value": json.dumps({"condition": "Succeeded", "reason": "ExperimentMaxTrialsReached"})}]},
        "nodes": {"n1": {"id": "n1", "name": "basic-abc12.loop.trial(0)", "templateName": "trial", "type": "Pod", "phase": "Succeeded",
                         "inputs": {"parameters": [{"name": "hp-trial-name", "value": "basic-0001"}, {"name": "lr", "value": "0.01"}]},
                         "outputs": {"parameters": [{"name": "observation", "value": json.dumps({"condition": "Succeeded", "objectiveValue": 0.9})}]}}}}
    assert schema_errors(wf, "Workflow") == []
    return wf


def test_submit_and_status_through_the_kubernetes_api(fake_server, tmp_path, monkeypatch, basic_dict):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "t",
                                          "clusters": [{"name": "c", "cluster": {"server": fake_server}}],
                                          "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u", "namespace": "team"}}],
                                          "users": [{"name": "u", "user": {"token": "k8s-token"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    exp = parse_experiment(basic_dict)
    name = submit(exp)
    method, path, body, auth = _Fake.requests[0]
    assert (method, path) == ("POST", "/apis/argoproj.io/v1alpha1/namespaces/team/workflows")
    assert auth == "Bearer k8s-token"
    assert body["kind"] == "Workflow" and body["metadata"]["namespace"] == "team"
    assert schema_errors(body, "Workflow") == [] and semantic_problems(body) == []
    assert name == "basic-abc12"
    _finished(_Fake.workflows[name])
    st = read_status(name, namespace="team")
    assert _Fake.requests[-1][:2] == ("GET", "/apis/argoproj.io/v1alpha1/namespaces/team/workflows/basic-abc12")
    assert st["phase"] == "Succeeded" and st["done"] is True
    assert st["best"]["objective"] == 0.9 and st["status"]["reason"] == "ExperimentMaxTrialsReached"
    assert st["trials"] == [{"name": "basic-0001", "phase": "Succeeded", "condition": "Succeeded", "objectiveValue": 0.9,
                             "parameters": {"lr": "0.01"}}]


def test_submit_and_status_through_the_argo_server(fake_server, basic_dict):
    exp = parse_experiment(basic_dict)
    name = submit(exp, argo_server=fake_server, token="argo-token", namespace="ml")
    method, path, body, auth = _Fake.requests[0]
    assert (method, path) == ("POST", "/api/v1/workflows/ml")
    assert auth == "Bearer argo-token"
    assert schema_errors(body["workflow"], "Workflow") == []
    _finished(_Fake.workflows[name])
    st = read_status(name, argo_server=fake_server, token="argo-token", namespace="ml")
    assert _Fake.requests[-1][:2] == ("GET", f"/api/v1/workflows/ml/{name}")
    assert st["best"]["name"] == "basic-0001"


# ----------------------------------------------------------------------------- issue 12: Argo's own rules

def _full_pod(basic_dict: dict) -> dict:
    """A Katib experiment whose trial pod has a GPU, a PVC, /dev/shm, a pull secret, a service account and more."""
    pod = basic_dict["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]
    pod["metadata"] = {"annotations": {"sidecar.istio.io/inject": "false"}, "labels": {"team": "ml"}}
    spec = pod["spec"]
    c = spec["containers"][0]
    c["resources"] = {"limits": {"nvidia.com/gpu": 1, "memory": "16Gi"}}
    c["volumeMounts"] = [{"name": "data", "mountPath": "/data", "readOnly": True}, {"name": "dshm", "mountPath": "/dev/shm"}]
    c["securityContext"] = {"allowPrivilegeEscalation": False}
    c["envFrom"] = [{"secretRef": {"name": "wandb"}}]
    spec.update({
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "imagenet"}},
                    {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}],
        "imagePullSecrets": [{"name": "registry-cred"}],
        "serviceAccountName": "trainer",
        "securityContext": {"runAsUser": 1000, "fsGroup": 1000},
        "priorityClassName": "high",
        "initContainers": [{"name": "fetch", "image": "busybox", "command": ["true"], "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "nodeSelector": {"gpu": "a100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "runtimeClassName": "nvidia",
        "hostIPC": False,
    })
    spec["containers"].append({"name": "logger", "image": "fluent/fluent-bit", "volumeMounts": [{"name": "data", "mountPath": "/data"}]})
    return basic_dict


def test_every_pod_spec_field_reaches_the_trial_pod(basic_dict):
    doc = workflow_template(parse_experiment(_full_pod(basic_dict)))
    assert schema_errors(doc, "WorkflowTemplate") == [] and semantic_problems(doc) == []
    trial = next(t for t in doc["spec"]["templates"] if t["name"] == "trial-pod")
    c = trial["container"]
    assert c["resources"]["limits"] == {"nvidia.com/gpu": "1", "memory": "16Gi"}
    assert [v["name"] for v in c["volumeMounts"]] == ["data", "dshm"] and c["envFrom"][0]["secretRef"]["name"] == "wandb"
    assert c["securityContext"] == {"allowPrivilegeEscalation": False}
    assert trial["volumes"][0]["persistentVolumeClaim"]["claimName"] == "imagenet"
    assert trial["volumes"][1]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert trial["serviceAccountName"] == "trainer" and trial["priorityClassName"] == "high"
    assert trial["securityContext"] == {"runAsUser": 1000, "fsGroup": 1000}
    assert trial["initContainers"][0]["name"] == "fetch" and trial["sidecars"][0]["name"] == "logger"
    assert trial["nodeSelector"] == {"gpu": "a100"} and trial["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert trial["metadata"] == {"labels": {"team": "ml"}, "annotations": {"sidecar.istio.io/inject": "false"}}
    assert json.loads(trial["podSpecPatch"]) == {"hostIPC": False, "imagePullSecrets": [{"name": "registry-cred"}],
                                                 "runtimeClassName": "nvidia"}
    assert doc["spec"]["imagePullSecrets"] == [{"name": "registry-cred"}]
    from tests.test_argo_rules import tpl  # the same checks pass on the standalone Workflow
    wf = workflow(parse_experiment(basic_dict))
    assert schema_errors(wf, "Workflow") == [] and semantic_problems(wf) == [] and tpl(wf, "trial-pod")["volumes"] == trial["volumes"]


def test_a_mount_without_its_volume_is_caught(basic_dict):
    doc = workflow_template(parse_experiment(_full_pod(basic_dict)))
    trial = next(t for t in doc["spec"]["templates"] if t["name"] == "trial-pod")
    trial["volumes"] = trial["volumes"][:1]
    assert "templates.trial-pod: pod spec.containers[0].volumeMounts[1].name: Not found: 'dshm'" in semantic_problems(doc)


def test_workflow_level_safety_fields(basic_dict):
    doc = workflow(parse_experiment(basic_dict))
    spec = doc["spec"]
    assert spec["podGC"] == {"strategy": "OnPodSuccess"}
    assert spec["ttlStrategy"] == {"secondsAfterSuccess": 7 * 86400, "secondsAfterFailure": 14 * 86400}
    assert spec["activeDeadlineSeconds"] == 7 * 86400  # no trial deadline: 7 days
    pod, trial = (next(t for t in spec["templates"] if t["name"] == n) for n in ("trial-pod", "trial"))
    assert pod["pendingTimeout"] == "30m" and trial["retryStrategy"]["retryPolicy"] == "Always"
    assert "retryStrategy" not in pod, "a Retry node around the pod would never see it Pending"
    basic_dict["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 600
    from hp_components.argo import Options
    doc = workflow(parse_experiment(basic_dict), options=Options(retries=0, pending_timeout="10m"))
    trial = next(t for t in doc["spec"]["templates"] if t["name"] == "trial")
    assert "retryStrategy" not in trial and tpl_(doc, "trial-pod")["pendingTimeout"] == "10m"
    assert doc["spec"]["activeDeadlineSeconds"] == 4 * (600 + 60 + 600 + 300 + 600)  # 4 rounds, worst case


def test_nested_item_keys_are_gone_everywhere():
    for path in sorted((ROOT / "pipelines").glob("argo-*.yaml")):
        assert "{{item.parameters." not in path.read_text(), path


def test_quotes_in_values_are_refused_naming_the_field(basic_dict):
    basic_dict["spec"]["parameters"][2]["feasibleSpace"]["list"] = ["sgd", 'ad"am']
    with pytest.raises(CompileError) as info:
        workflow_template(parse_experiment(basic_dict))
    assert info.value.field == "spec.parameters[2].feasibleSpace.list"


def test_rounds_are_bounded_by_the_stack_depth(basic_dict):
    from hp_components.argo import MAX_ROUNDS

    basic_dict["spec"].update(maxTrialCount=3 * MAX_ROUNDS, parallelTrialCount=3)
    workflow_template(parse_experiment(basic_dict))
    basic_dict["spec"]["maxTrialCount"] += 1
    with pytest.raises(CompileError, match=r"spec.maxTrialCount: .* 91 rounds"):
        workflow_template(parse_experiment(basic_dict))


def _trials(engine: Interpreter) -> list[dict]:
    return _history(engine)


def test_a_round_where_every_pod_fails_is_recorded_and_the_loop_goes_on(tmp_path):
    spec = script_experiment("argoevict", TRIAL, maxTrialCount=6, parallelTrialCount=3, maxFailedTrialCount=4)
    doc = workflow(parse_experiment(spec))
    first = {f"argoevict-000{i}" for i in (0, 1, 2)}  # hp-tune's trial names, suggested in order
    evicted = lambda t, p, attempt: "Failed: The node was low on resource: memory (Evicted)" if p.get("hp-trial-name") in first else None  # noqa: E731
    engine = Interpreter(doc, tmp_path, faults=evicted)
    engine.run()
    history = _history(engine)
    assert [(t["condition"], t.get("reason")) for t in history[:3]] == [("Failed", "NoObservation")] * 3
    assert [t["condition"] for t in history[3:]] == ["Succeeded"] * 3
    assert len([n for n in engine.nodes if n["templateName"] == "trial-pod"]) == 3 * 3 + 3  # 2 retries each
    assert json.loads(engine.globals["status"])["reason"] == "ExperimentMaxTrialsReached"


def test_a_round_where_every_pod_fails_ends_on_max_failed(tmp_path):
    spec = script_experiment("argoevict2", TRIAL, maxTrialCount=12, parallelTrialCount=2, maxFailedTrialCount=2)
    engine = Interpreter(workflow(parse_experiment(spec)), tmp_path, faults=lambda t, p, a: "Error: pod deleted" if t == "trial-pod" else None)
    engine.run()
    assert [t["condition"] for t in _history(engine)] == ["Failed", "Failed"]
    assert json.loads(engine.globals["status"])["reason"] == "ExperimentFailed"
    assert len([n for n in engine.nodes if n["templateName"] == "collect"]) == 1


def test_an_infrastructure_failure_is_retried_a_training_failure_is_recorded(tmp_path):
    params = [{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["-2", "0.5"]}}]
    spec = script_experiment("argoretry", TRIAL, params=params, maxTrialCount=2, parallelTrialCount=2,
                             maxFailedTrialCount=2, algorithm={"algorithmName": "grid"})
    attempts: list = []

    def once(template, params, attempt):  # the x=0.5 pod loses its node the first time
        if template == "trial-pod" and params["x"] == "0.5":
            attempts.append(attempt)
            return "Error: pod deleted" if attempt == 0 else None
        return None

    engine = Interpreter(workflow(parse_experiment(spec)), tmp_path, faults=once)
    engine.run()
    by_x = {t["parameterAssignments"][0]["value"]: t for t in _history(engine)}
    assert attempts == [0, 1]
    assert by_x["0.5"]["condition"] == "Succeeded"
    assert by_x["-2"]["condition"] == "Failed" and by_x["-2"]["message"] == "the training process ended with exit code 3"  # not retried: the wrapper exits 0
    pods = [n for n in engine.nodes if n["templateName"] == "trial-pod"]
    assert len(pods) == 3


def test_a_pod_stuck_pending_fails_on_its_deadline(tmp_path):
    spec = script_experiment("argopending", TRIAL, maxTrialCount=2, parallelTrialCount=2, maxFailedTrialCount=2)
    doc = workflow(parse_experiment(spec))
    engine = Interpreter(doc, tmp_path, faults=lambda t, p, a: "Pending" if p.get("hp-trial-name") == "argopending-0000" else None)
    engine.run()
    assert [t["condition"] for t in _history(engine)] == ["Failed", "Succeeded"]
    from hp_components.argo import Options
    doc = workflow(parse_experiment(spec), options=Options(pending_timeout=""))
    with pytest.raises(RuntimeError, match="waits for ever"):
        Interpreter(doc, tmp_path / "no-deadline", faults=lambda t, p, a: "Pending" if t == "trial-pod" else None).run()


def test_the_entry_point_exposes_best_objective_status(tmp_path):
    spec = script_experiment("argoout", TRIAL, maxTrialCount=4, parallelTrialCount=2)
    engine, _ = run_workflow(tmp_path, spec)
    out = engine.outputs["parameters"]
    history = _history(engine)
    best = min((t for t in history if t["condition"] == "Succeeded"), key=lambda t: t["objectiveValue"])
    assert json.loads(out["best"]) == {"x": best["parameterAssignments"][0]["value"]}
    assert float(out["objective"]) == pytest.approx(best["objectiveValue"])
    assert json.loads(out["status"])["reason"] == "ExperimentMaxTrialsReached"


def test_status_reads_compressed_nodes_and_retry_nodes(tmp_path):
    import base64
    import gzip

    from hp_components.argo._cluster import summarize

    spec = script_experiment("argocomp", TRIAL, maxTrialCount=4, parallelTrialCount=2)
    engine = Interpreter(workflow(parse_experiment(spec)), tmp_path, faults=lambda t, p, a: "Error: x" if a == 0 and t == "trial-pod" else None)
    engine.run()
    nodes = {n["id"]: n for n in engine.nodes}
    wf = {"metadata": {"name": "argocomp-x"}, "status": {"phase": "Succeeded", "outputs": {"parameters": [
        {"name": k, "value": v} for k, v in engine.globals.items()]}}}
    plain = summarize({**wf, "status": {**wf["status"], "nodes": nodes}})
    assert [t["name"] for t in plain["trials"]] == [f"argocomp-000{i}" for i in range(4)]  # one per trial, not per attempt
    assert all(t["condition"] == "Succeeded" and t["phase"] == "Succeeded" for t in plain["trials"])
    packed = base64.b64encode(gzip.compress(json.dumps(nodes).encode())).decode()  # packer.go compressWorkflow
    compressed = summarize({**wf, "status": {**wf["status"], "compressedNodes": packed}})
    assert compressed["trials"] == plain["trials"] and compressed["trialsFrom"] == "compressedNodes"
    offloaded = summarize({**wf, "status": {**wf["status"], "offloadNodeStatusVersion": "fnv:1"}})
    assert offloaded["trials"] == [] and "--argo-server" in offloaded["trialsFrom"]
    assert offloaded["status"]["trialsSucceeded"] == 4 and offloaded["best"]["name"]  # the global outputs survive


def test_status_lists_job_trials():
    from hp_components.argo._cluster import summarize

    node = {"templateName": "trial", "type": "Steps", "phase": "Succeeded", "name": "wf[0].loop[0].trial(0:x)",
            "inputs": {"parameters": [{"name": "hp-trial-name", "value": "t-1"}, {"name": "x", "value": "2"}]},
            "outputs": {"parameters": [{"name": "observation", "value": '{"condition": "Succeeded", "objectiveValue": 0.04}'}]}}
    st = summarize({"status": {"nodes": {"a": node}}})
    assert st["trials"] == [{"name": "t-1", "phase": "Succeeded", "condition": "Succeeded", "objectiveValue": 0.04, "parameters": {"x": "2"}}]


def test_flat_items_and_aggregated_observations(basic_dict):
    """The step contract the Argo loop relies on: flat string items out, the fan-out's aggregate in."""
    from hp_components.steps import collect_step, fan_out_items, suggest_step

    exp = parse_experiment(basic_dict)
    batch = suggest_step(exp, [])
    items = fan_out_items(batch)
    assert all(set(i) == {"hp-trial-name", "lr", "n", "opt", "x", "tn"} and all(isinstance(v, str) for v in i.values())
               for i in items)
    first = batch[0]["name"]
    aggregate = [{"observation": json.dumps({"name": first, "condition": "Succeeded",
                                             "metrics": [{"name": "acc", "latest": "0.5", "min": "0.5", "max": "0.5"}]})}]
    out = collect_step(exp, [], batch, aggregate)
    conditions = {t["name"]: (t["condition"], t.get("reason")) for t in out["history"]}
    assert conditions[first][0] == "Succeeded"
    assert [conditions[t["name"]] for t in batch[1:]] == [("Failed", "NoObservation")] * 2


def tpl_(doc: dict, name: str) -> dict:
    return next(t for t in doc["spec"]["templates"] if t["name"] == name)


def test_status_after_compression(fake_server, basic_dict):
    """The controller compressed the node map (packer.go): status still lists the trials, and the
    object it reads validates against Argo's schema. (A real Argo Server hydrates the nodes before
    answering; the Kubernetes API answers the compressed object, which the summary reads the same way.)"""
    import base64
    import gzip

    name = submit(parse_experiment(basic_dict), argo_server=fake_server, token="t", namespace="ml")
    wf = _finished(_Fake.workflows[name])
    wf["status"]["compressedNodes"] = base64.b64encode(gzip.compress(json.dumps(wf["status"].pop("nodes")).encode())).decode()
    assert schema_errors(wf, "Workflow") == []
    st = read_status(name, argo_server=fake_server, token="t", namespace="ml")
    assert st["trialsFrom"] == "compressedNodes" and [t["name"] for t in st["trials"]] == ["basic-0001"]


# early stopping: the suggest/collect steps hand each trial its medianstop rule (an item key), the
# wrapper in the trial pod enforces it; Katib's flow: medianstop/service.py GetEarlyStoppingRules when
# the trial is created, the metrics collector's updateStopRules (file-metricscollector/main.go) in the pod
EPOCHS = """
import sys, time
x = float(sys.argv[1].split("=")[1])
for epoch in range(8):
    print(f"epoch {epoch}: acc={x * (epoch + 1) / 8:.4f}", flush=True)
    time.sleep(0.25)
"""

MEDIAN = {"algorithmName": "medianstop", "algorithmSettings": [
    {"name": "min_trials_required", "value": "3"}, {"name": "start_step", "value": "2"}]}


def median_experiment(name: str) -> dict:
    params = [{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["0.9", "0.8", "0.85", "0.1", "0.95", "0.2"]}}]
    return script_experiment(name, EPOCHS, params=params, maxTrialCount=6, parallelTrialCount=3,
                             algorithm={"algorithmName": "grid"}, earlyStopping=MEDIAN,
                             objective={"type": "maximize", "objectiveMetricName": "acc"})


def test_medianstop_stops_poor_trials_in_their_pods(tmp_path):
    engine, doc = run_workflow(tmp_path, median_experiment("argomedian"))
    loop = next(t for t in doc["spec"]["templates"] if t["name"] == "loop")
    assert {"name": "hp-stop-rule", "value": "{{item.hp-stop-rule}}"} in loop["steps"][0][0]["arguments"]["parameters"]
    by_x = {t["parameterAssignments"][0]["value"]: t for t in _history(engine)}
    assert len(by_x) == 6
    for x in ("0.9", "0.8", "0.85", "0.95"):  # the first round ran without a rule; 0.95 beats the median
        assert by_x[x]["condition"] == "Succeeded" and len(by_x[x]["intermediateValues"]) == 8
    # the rule: the median of the first-2-report means of 0.9, 0.8, 0.85 (the 0.85 trial's, as printed)
    printed = {x: [float(f"{float(x) * k / 8:.4f}") for k in range(1, 9)] for x in by_x}
    rule = f"acc;{(printed['0.85'][0] + printed['0.85'][1]) / 2!r};less;2"
    for x in ("0.1", "0.2"):
        t = by_x[x]
        assert (t["condition"], t["reason"]) == ("EarlyStopped", "TrialEarlyStopped")
        assert f"is less than {rule.split(';')[1]} at report 2" in t["message"]
        values = [v for _, v in t["intermediateValues"]]
        assert 2 <= len(values) < 8 and values == printed[x][:len(values)]
        assert t["objectiveValue"] == max(values)
    status = json.loads(engine.globals["status"])
    assert (status["condition"], status["trialsEarlyStopped"]) == ("Succeeded", 2)
    pods = [n for n in engine.nodes if n["templateName"] == "trial-pod"]
    rules = sorted(p["inputs"]["parameters"][1]["value"] for p in pods)
    assert rules == ["", "", ""] + [rule] * 3, "round 1 has no rule yet, round 2 gets one"


def test_early_stopping_refuses_an_objective_name_argo_would_escape():
    # operator.go processItem / item.go Item.String: an item's string value is its JSON text without
    # the outer quotes, so a '"' in the rule's metric name would reach the wrapper as '\"'
    ok = median_experiment("argoname")
    doc = workflow(parse_experiment(ok))
    assert schema_errors(doc, "Workflow") == [] and semantic_problems(doc) == []
    bad = median_experiment("argoname")
    bad["spec"]["objective"]["objectiveMetricName"] = 'acc"1'
    with pytest.raises(CompileError, match="spec.objective.objectiveMetricName"):
        workflow(parse_experiment(bad))
    del bad["spec"]["earlyStopping"]  # without a rule the name never travels in an item
    workflow(parse_experiment(bad))
