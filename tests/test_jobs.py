"""Job trials on a cluster (hp_components.jobs, ``hp-tune step launch``) against the API contract.

The API server is tests/k8s_fake.py: it runs every created job's pods as real local processes
and moves the job's status like the Job controller and the training operator do, so the
launcher's create -> wait -> collect -> delete runs for real, through the official kubernetes
client, over HTTP (docs/kubernetes-contract.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hp_components.experiment import parse_experiment
from hp_components.jobs import TRIAL_LABEL, JobTrialError, KubeJobs, launch, pod_templates, trial_manifest
from tests.conftest import PY
from tests.k8s_fake import FakeCluster
from tests.k8s_schemas import validate_manifest
from tests.test_distributed import pytorchjob

NS = "team"
KATIB_EXAMPLES = Path(__file__).parent / "data" / "katib-examples"
PRINT = "import sys; print('accuracy=0.5'); print('accuracy=' + sys.argv[1]); sys.exit(int(sys.argv[2]))"


def job_experiment(code: str = "0", **spec: object) -> dict:
    job = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"backoffLimit": 1, "template": {"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "training", "image": "python:3.11", "command": [PY, "-c", PRINT, "${trialParameters.lr}", code]}]}}}}
    job["spec"].update(spec)
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "jobexp"}, "spec": {
        "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
        "algorithm": {"algorithmName": "random"}, "parallelTrialCount": 1, "maxTrialCount": 2,
        "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.9"}}],
        "trialTemplate": {"primaryContainerName": "training", "trialParameters": [{"name": "lr", "reference": "lr"}],
                          "trialSpec": job}}}


def set_command(exp: dict, code: str) -> None:
    container = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [PY, "-c", code, "${trialParameters.lr}"]


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    c = FakeCluster(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(c.kubeconfig(tmp_path / "kubeconfig", NS)))
    yield c
    c.close()


def run(exp_dict: dict, name: str = "t-0001", values: dict | None = None, **kw) -> dict:
    return launch(parse_experiment(exp_dict), name, values or {"lr": "0.7"}, KubeJobs.from_environment(),
                  namespace=NS, poll=0.05, **kw)


def test_job_trial_runs_reports_and_is_deleted(cluster):
    result = run(job_experiment())
    assert result["condition"] == "Succeeded" and result["objectiveValue"] == 0.7
    assert {m["name"]: m["max"] for m in result["metrics"]} == {"accuracy": "0.7"}
    calls = [(m, p) for m, p, _ in cluster.requests]
    assert calls[0] == ("POST", f"/apis/batch/v1/namespaces/{NS}/jobs")
    assert ("GET", f"/apis/batch/v1/namespaces/{NS}/jobs/t-0001") in calls
    pods = [q for m, p, q in cluster.requests if p == f"/api/v1/namespaces/{NS}/pods"]
    assert pods and pods[0]["labelSelector"] == [f"{TRIAL_LABEL}=t-0001"]
    logs = [q for m, p, q in cluster.requests if p.endswith("/log")]
    assert logs == [{"container": ["training"]}]
    assert cluster.deleted == [("jobs", "t-0001", "Background")]  # pods go too, not orphaned


def test_the_job_created_has_the_rendered_values_and_labels(cluster):
    exp = parse_experiment(job_experiment())
    manifest = trial_manifest(exp, "t-0009", {"lr": "0.3"}, NS)
    assert manifest["metadata"]["name"] == "t-0009" and manifest["metadata"]["namespace"] == NS
    pod = manifest["spec"]["template"]
    assert pod["metadata"]["labels"] == {"hp-components/experiment": "jobexp", TRIAL_LABEL: "t-0009"}
    assert pod["spec"]["containers"][0]["command"][-2:] == ["0.3", "0"]
    assert exp.spec.trial_template.trial_spec["spec"]["template"].get("metadata") is None  # the experiment is untouched
    assert validate_manifest(manifest) == []


@pytest.mark.parametrize("path", sorted(KATIB_EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_katib_training_operator_examples_render_to_valid_jobs(path):
    data = yaml.safe_load(path.read_text())
    data["spec"].pop("metricsCollectorSpec", None)  # TensorFlowEvent is refused; the manifest is what counts here
    exp = parse_experiment(data)
    values = {tp.name: "1" for tp in exp.spec.trial_template.trial_parameters or []}
    manifest = trial_manifest(exp, "katib-0001", values, NS)
    assert validate_manifest(manifest) == []
    assert all(t["metadata"]["labels"][TRIAL_LABEL] == "katib-0001" for t in pod_templates(manifest))
    assert len(list(pod_templates(manifest))) == len(next(v for k, v in manifest["spec"].items() if k.endswith("ReplicaSpecs")))


def test_failed_job_is_a_failed_trial_with_the_jobs_reason(cluster):
    result = run(job_experiment(code="3"))
    assert result["condition"] == "Failed"
    assert result["reason"] == "TrialFailed" and result["message"].startswith("BackoffLimitExceeded")
    assert len([p for p in cluster.pods if p[1].startswith("t-0001")]) == 0  # deleted with the job
    assert result["metrics"]  # what it printed before failing is kept, as Katib does


def test_retain_keeps_the_job(cluster):
    exp = job_experiment()
    exp["spec"]["trialTemplate"]["retain"] = True
    assert run(exp)["condition"] == "Succeeded"
    assert cluster.deleted == [] and len(cluster.objects) == 1


def test_deadline_exceeded(cluster):
    exp = job_experiment(activeDeadlineSeconds=1)
    set_command(exp, "import time; time.sleep(60)")
    result = run(exp)
    assert result["condition"] == "Failed" and result["reason"] == "TrialFailed" and result["message"].startswith("DeadlineExceeded")


def test_no_objective_in_the_log_is_metrics_unavailable(cluster):
    exp = job_experiment()
    set_command(exp, "print('loss=1')")
    result = run(exp)
    assert result["condition"] == "MetricsUnavailable" and "'accuracy' was not reported (read from the log of pod t-0001-0)" in result["message"]


def test_observe_only_waits_for_a_job_created_elsewhere(cluster):
    exp = parse_experiment(job_experiment())
    jobs = KubeJobs.from_environment()
    assert jobs.create(trial_manifest(exp, "t-0002", {"lr": "0.8"}, NS), NS) is True
    assert jobs.create(trial_manifest(exp, "t-0002", {"lr": "0.8"}, NS), NS) is False  # a retried step adopts it
    result = launch(exp, "t-0002", {"lr": "0.8"}, jobs, namespace=NS, create=False, poll=0.05)
    assert result["objectiveValue"] == 0.8
    assert [m for m, p, _ in cluster.requests].count("POST") == 2


def test_a_job_deleted_underneath_is_a_failed_trial(cluster):
    exp = job_experiment()
    set_command(exp, "import time; time.sleep(60)")
    jobs = KubeJobs.from_environment()
    parsed = parse_experiment(exp)
    manifest = trial_manifest(parsed, "t-0003", {"lr": "0.8"}, NS)

    def sleep(_: float) -> None:
        jobs.delete(manifest, NS)

    result = launch(parsed, "t-0003", {"lr": "0.8"}, jobs, namespace=NS, sleep=sleep)
    assert result["condition"] == "Failed" and result["reason"].startswith("JobDeleted")


def test_pytorchjob_trial_runs_two_ranks_and_reads_the_masters_log(cluster):
    pytest.importorskip("torch")
    exp = pytorchjob("ddpk8s", workers=1)
    result = run(exp, values={"x": "1.5"})
    assert result["condition"] == "Succeeded", result
    assert result["objectiveValue"] == 4.5  # 1.5 * (1 + 2): both ranks took part in the all_reduce
    assert {m["name"]: m["latest"] for m in result["metrics"]}["world"] == "2.0"
    calls = [(m, p) for m, p, _ in cluster.requests]
    assert calls[0] == ("POST", f"/apis/kubeflow.org/v1/namespaces/{NS}/pytorchjobs")
    selector = next(q for m, p, q in cluster.requests if p.endswith("/pods"))["labelSelector"][0]
    assert selector == f"{TRIAL_LABEL}=t-0001,training.kubeflow.org/job-role=master"
    assert cluster.deleted == [("pytorchjobs", "t-0001", "Background")]
    sent = next(o for o in cluster.requests_bodies if o["kind"] == "PyTorchJob")
    assert validate_manifest(sent) == []


def test_a_failing_worker_fails_the_pytorchjob_trial(cluster):
    exp = pytorchjob("ddpk8sfail", workers=1)
    exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["command"] = \
        [PY, "-c", "import sys; sys.exit(5)", "${trialParameters.x}"]
    exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["command"] = \
        [PY, "-c", "import time; print('loss=1', flush=True); time.sleep(60)", "${trialParameters.x}"]
    result = run(exp, values={"x": "2"})
    assert result["condition"] == "Failed" and (result["reason"], result["message"]) == ("TrialFailed", "PyTorchJobFailed: a replica failed")


def test_file_collector_and_unknown_kinds_are_refused():
    exp = job_experiment()
    exp["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/tmp/m.log", "kind": "File"}}}
    with pytest.raises(JobTrialError, match="metricsCollectorSpec.collector.kind"):
        launch(parse_experiment(exp), "x", {}, KubeJobs(api=None), namespace=NS)


def test_cli_step_launch_and_sigterm_deletes_the_job(cluster, tmp_path):
    exp = job_experiment()
    (tmp_path / "exp.json").write_text(json.dumps(exp))
    out = tmp_path / "obs.json"
    cli = [sys.executable, "-m", "hp_components.cli", "step", "launch", "--experiment", str(tmp_path / "exp.json"),
           "--name", "t-0005", "--param", "lr=0.6", "--poll", "0.05", "--output", str(out)]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["objectiveValue"] == 0.6
    assert (("POST", f"/apis/batch/v1/namespaces/{NS}/jobs")) in [(m, p) for m, p, _ in cluster.requests]  # kubeconfig namespace

    set_command(exp, "import time; time.sleep(60)")
    (tmp_path / "exp.json").write_text(json.dumps(exp))
    cli[cli.index("t-0005")] = "t-0006"
    proc = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
    deadline = time.monotonic() + 60
    while not any(p[0] == NS and p[1].startswith("t-0006") for p in list(cluster.pods)) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert json.loads(out.read_text())["reason"] == "Killed"
    assert json.loads(out.read_text())["message"] == "the trial step was stopped"
    assert ("jobs", "t-0006", "Background") in cluster.deleted


def test_cli_bad_parameters_exit_2(tmp_path):
    (tmp_path / "exp.json").write_text(json.dumps(job_experiment()))
    done = subprocess.run([sys.executable, "-m", "hp_components.cli", "step", "launch", "--experiment", str(tmp_path / "exp.json"),
                           "--name", "x", "--param", "lr"], capture_output=True, text=True)
    assert done.returncode == 2 and "--param takes NAME=VALUE" in done.stderr
