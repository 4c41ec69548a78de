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


def test_semantic_checker_catches_what_argo_would(basic_dict):
    doc = workflow_template(parse_experiment(basic_dict))
    loop = next(t for t in doc["spec"]["templates"] if t["name"] == "loop")
    loop["steps"][1][0]["arguments"]["parameters"][0]["value"] = "{{steps.nope.outputs.parameters.observation}}"
    loop["steps"][2][0]["arguments"]["parameters"][0]["value"] = "{{steps.collect.outputs.parameters.missing}}"
    trial = next(t for t in doc["spec"]["templates"] if t["name"] == "trial")
    trial["inputs"]["parameters"].append({"name": "unsupplied"})
    problems = semantic_problems(doc)
    assert any("names no earlier step" in p for p in problems)
    assert any("declares no such output" in p for p in problems)
    assert any("inputs.parameters.unsupplied was not supplied" in p for p in problems)


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
    trial = next(t for t in doc["spec"]["templates"] if t["name"] == "trial")
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
    assert len([n for n in engine.nodes if n["templateName"] == "trial" and n["type"] == "Pod"]) == 7
    assert 1 < engine.max_running <= 3, "a round's trials run concurrently, at most parallelism at a time"
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
    assert history[0]["message"] == "exit code 3"
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
