"""Kubeflow training-job trials on Argo: a resource step creates the job, an observe step reads it.

The workflow is interpreted for real (tests/argo_engine.py): the resource step posts the
manifest to tests/k8s_fake.py's API server (which runs the job's pods as local processes) and
waits on Argo's label-selector conditions; the observe step runs ``hp-tune step launch
--observe-only`` against the same server; collect records the observation, round after round.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from hp_components.argo import compile_experiment, rbac, rbac_path, workflow, workflow_template
from hp_components.argo._errors import CompileError
from hp_components.experiment import parse_experiment
from hp_components.jobs import TRIAL_LABEL
from tests.argo_engine import Interpreter, selector_matches, semantic_problems
from tests.conftest import PY, ROOT
from tests.k8s_fake import FakeCluster
from tests.k8s_schemas import validate_manifest
from tests.test_argo import _Fake, fake_server, schema_errors  # noqa: F401 (fixture)
from tests.test_distributed import pytorchjob

NS = "argo-team"


def plain_pytorchjob(name: str, **spec: object) -> dict:
    """A PyTorchJob whose master prints a loss from x; the worker just exits (no torch needed)."""
    exp = pytorchjob(name, workers=1)
    replicas = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]
    code = "import sys; x = float(sys.argv[1].split('=')[1]); print(f'loss={(x - 1.8) ** 2}'); print('world=2')"
    replicas["Master"]["template"]["spec"]["containers"][0]["command"] = [PY, "-c", code, "--x=${trialParameters.x}"]
    replicas["Worker"]["template"]["spec"]["containers"][0]["command"] = [PY, "-c", "pass", "--x=${trialParameters.x}"]
    exp["spec"].update(spec)
    return exp


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    c = FakeCluster(tmp_path / "cluster")
    (tmp_path / "cluster").mkdir()
    monkeypatch.setenv("KUBECONFIG", str(c.kubeconfig(tmp_path / "kubeconfig", NS)))
    yield c
    c.close()


def test_job_trial_workflow_is_valid_and_shaped_as_resource_then_observe():
    exp = parse_experiment(plain_pytorchjob("argoptj"))
    for doc, kind in ((workflow_template(exp), "WorkflowTemplate"), (workflow(exp), "Workflow")):
        assert schema_errors(doc, kind) == [] and semantic_problems(doc) == []
        assert doc["spec"]["serviceAccountName"] == "argoptj-tune"
    templates = {t["name"]: t for t in workflow_template(exp)["spec"]["templates"]}
    res = templates["create-job"]["resource"]
    assert res["action"] == "create" and res["setOwnerReference"] is True
    assert (res["successCondition"], res["failureCondition"]) == ("status.completionTime", "status.replicaStatuses.Master.failed > 0")
    manifest = json.loads(res["manifest"])
    assert manifest["metadata"]["name"] == "{{inputs.parameters.hp-trial-name}}"
    rendered = json.loads(res["manifest"].replace("{{inputs.parameters.hp-trial-name}}", "t-1").replace("{{inputs.parameters.x}}", "2"))
    assert validate_manifest(rendered) == []
    for replica in manifest["spec"]["pytorchReplicaSpecs"].values():
        assert replica["template"]["metadata"]["labels"][TRIAL_LABEL] == "{{inputs.parameters.hp-trial-name}}"
    observe = templates["observe-job"]["container"]
    assert observe["args"][:2] == ["launch", "--observe-only"] and "--param" in observe["args"]
    assert "x={{inputs.parameters.x}}" in observe["args"]
    assert "resources" not in observe  # GPUs stay on the job's replicas
    assert [s[0]["name"] for s in templates["trial"]["steps"]] == ["create", "observe"]


def test_argo_condition_syntax_on_job_states():
    """The resource step's conditions mean what we say, on job objects the training operator writes."""
    running = {"status": {"replicaStatuses": {"Master": {"active": 1}}}}
    failed = {"status": {"replicaStatuses": {"Master": {"failed": 1}}, "completionTime": "2026-01-01T00:00:00Z"}}
    done = {"status": {"replicaStatuses": {"Master": {"succeeded": 1}}, "completionTime": "2026-01-01T00:00:00Z"}}
    success, failure = "status.completionTime", "status.replicaStatuses.Master.failed > 0"
    assert [selector_matches(success, j) for j in (running, failed, done)] == [False, True, True]
    assert [selector_matches(failure, j) for j in (running, failed, done)] == [False, True, False]


def test_rbac_is_written_alongside_and_covers_every_call(tmp_path):
    exp = parse_experiment(plain_pytorchjob("argorbac"))
    out = tmp_path / "wt.yaml"
    compile_experiment(exp, out)
    docs = list(yaml.safe_load_all(rbac_path(out).read_text()))
    assert [d["kind"] for d in docs] == ["ServiceAccount", "Role", "RoleBinding"]
    rules = {(r["apiGroups"][0], res): set(r["verbs"]) for r in docs[1]["rules"] for res in r["resources"]}
    assert {"create", "get", "delete"} <= rules[("kubeflow.org", "pytorchjobs")]
    assert {"list"} <= rules[("", "pods")] and {"get"} <= rules[("", "pods/log")]
    assert {"create", "patch"} <= rules[("argoproj.io", "workflowtaskresults")]
    assert docs[2]["subjects"][0]["name"] == yaml.safe_load(out.read_text())["spec"]["serviceAccountName"]
    assert rbac(exp) == docs
    job_out = tmp_path / "plain.yaml"
    compile_experiment(parse_experiment(yaml.safe_load(open("examples/random-digits.yaml"))), job_out)
    assert not rbac_path(job_out).exists()  # a batch/v1 Job trial runs as the workflow's own pod


def test_pytorchjob_trials_run_round_after_round(tmp_path, cluster):
    spec = plain_pytorchjob("argoptjrun", maxTrialCount=3, parallelTrialCount=2)
    spec["spec"]["parameters"][0]["feasibleSpace"]["list"] = ["1.5", "2", "3"]
    doc = workflow(parse_experiment(spec))
    engine = Interpreter(doc, tmp_path / "wf", namespace=NS)
    (tmp_path / "wf").mkdir()
    engine.run()
    history = json.loads(sorted(engine.workdir.glob("pod-*/tmp/hp/history.json"))[-1].read_text())
    assert [t["condition"] for t in history] == ["Succeeded"] * 3
    for t in history:
        x = float(t["parameterAssignments"][0]["value"])
        assert t["objectiveValue"] == pytest.approx((x - 1.8) ** 2)
    assert json.loads(engine.globals["best"])["parameters"] == {"x": "2"}
    assert len(engine.resources) == 3 and all(r["metadata"]["ownerReferences"] for r in engine.resources)
    assert all(validate_manifest({k: v for k, v in r.items()}) == [] for r in
               ({**r, "metadata": {k: v for k, v in r["metadata"].items() if k != "ownerReferences"}} for r in engine.resources))
    assert sorted(d[1] for d in cluster.deleted) == sorted(t["name"] for t in history)  # observe deleted each job
    from hp_components.argo._cluster import summarize  # hp-tune status lists job trials (steps nodes)

    st = summarize({"status": {"nodes": {n["id"]: n for n in engine.nodes}}})
    assert sorted(t["name"] for t in st["trials"]) == sorted(t["name"] for t in history)
    assert all(t["condition"] == "Succeeded" and t["objectiveValue"] is not None for t in st["trials"])


def test_failed_master_is_a_failed_trial(tmp_path, cluster):
    spec = plain_pytorchjob("argoptjfail", maxTrialCount=2, parallelTrialCount=1, maxFailedTrialCount=1)
    replicas = spec["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]
    replicas["Master"]["template"]["spec"]["containers"][0]["command"] = [PY, "-c", "import sys; sys.exit(4)", "${trialParameters.x}"]
    engine = Interpreter(workflow(parse_experiment(spec)), tmp_path / "wf", namespace=NS)
    (tmp_path / "wf").mkdir()
    engine.run()
    history = json.loads(sorted(engine.workdir.glob("pod-*/tmp/hp/history.json"))[-1].read_text())
    assert history[0]["condition"] == "Failed" and history[0]["reason"] == "TrialFailed"
    assert "PyTorchJobFailed" in history[0]["message"]
    assert json.loads(engine.globals["status"])["reason"] == "ExperimentFailed"  # Katib: maxFailedTrialCount reached
    assert [n["phase"] for n in engine.nodes if n["templateName"] == "create-job"] == ["Failed"]  # Argo's view agrees


@pytest.mark.parametrize("change, field", [
    (lambda s: s["spec"]["parameters"][0].update(parameterType="categorical", feasibleSpace={"list": ['a"; rm -rf /', "b"]}),
     "spec.parameters[0].feasibleSpace.list"),
    (lambda s: s["spec"].update(metricsCollectorSpec={"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/m.log", "kind": "File"}}}),
     "spec.metricsCollectorSpec.collector.kind"),
    (lambda s: s["spec"]["trialTemplate"].update(successCondition="status.done", failureCondition="status.failed") or
     s["spec"]["trialTemplate"]["trialSpec"].update(apiVersion="argoproj.io/v1alpha1", kind="Workflow"), "spec.trialTemplate.trialSpec.kind"),
])
def test_what_cannot_run_is_refused_naming_the_field(change, field):
    spec = plain_pytorchjob("argobad")
    change(spec)
    with pytest.raises(CompileError) as err:
        workflow(parse_experiment(spec))
    assert err.value.field == field


def test_submit_says_which_service_account_job_trials_need(fake_server, tmp_path, monkeypatch):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "t",
                                          "clusters": [{"name": "c", "cluster": {"server": fake_server}}],
                                          "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u", "namespace": NS}}],
                                          "users": [{"name": "u", "user": {"token": "t"}}]}))
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(plain_pytorchjob("argosubmit")))
    done = subprocess.run([sys.executable, "-m", "hp_components.cli", "submit", str(path), "--target", "argo"],
                          env={**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("argosubmit-")  # stdout is the name only, for scripts
    assert "service account argosubmit-tune" in done.stderr and "kubectl apply -f wt-rbac.yaml" in done.stderr
    sent = _Fake.requests[0][2]
    assert sent["spec"]["serviceAccountName"] == "argosubmit-tune"
