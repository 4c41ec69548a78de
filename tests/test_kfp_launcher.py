"""KFP: distributed trials (PyTorchJob, TFJob, MPIJob, XGBoostJob) run through the launcher step.

The compiled pipeline's trial task is the launcher component (hp-components image, no GPU: the
user's resources stay on the job's replicas); its Python function runs for real against the fake
API server of tests/k8s_fake.py, which runs the job's pods as local processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

kfp = pytest.importorskip("kfp")

from hp_components.cli import main as cli_main  # noqa: E402
from hp_components.experiment import parse_experiment  # noqa: E402
from hp_components.kfp import UnsupportedExperiment, compile_experiment  # noqa: E402
from hp_components.kfp._components import step_components  # noqa: E402
from hp_components.kfp._pipeline import rounds  # noqa: E402
from hp_components.kfp._runtime import collect_round, launch_trial, suggest_items  # noqa: E402
from hp_components.kfp._trial import LAUNCHER_CPU, LAUNCHER_MEMORY, trial_fields  # noqa: E402
from hp_components.steps import DEFAULT_IMAGE  # noqa: E402
from tests.conftest import PY  # noqa: E402
from tests.k8s_fake import FakeCluster  # noqa: E402
from tests.test_kfp import _env, component_executor, leaf_components, load_ir  # noqa: E402

NS = "team"
GPU = {"limits": {"nvidia.com/gpu": 2, "cpu": "4"}, "requests": {"cpu": "2", "memory": "8Gi"}}
# the master prints the objective; a worker just exits 0
MASTER = "import sys; print('loss=' + str(float(sys.argv[1]) ** 2), flush=True)"


def distributed(name: str = "ddpkfp", kind: str = "PyTorchJob", *, master: str = MASTER, **spec: Any) -> dict[str, Any]:
    """A two-replica training job experiment (plain Python, no torch), the worker with a GPU limit."""
    def replica(code: str, resources: dict[str, Any] | None = None) -> dict[str, Any]:
        container = {"name": "pytorch", "image": "docker.io/pytorch/pytorch:2.4.0",
                     "command": [PY, "-c", code, "${trialParameters.x}"]}
        if resources:
            container["resources"] = resources
        return {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [container]}}}

    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name}, "spec": {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {"algorithmName": "grid"},
        "parallelTrialCount": 1, "maxTrialCount": 2, "maxFailedTrialCount": 2,
        "parameters": [{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["1.5", "2"]}}],
        "trialTemplate": {"primaryContainerName": "pytorch", "trialParameters": [{"name": "x", "reference": "x"}],
                          "trialSpec": {"apiVersion": "kubeflow.org/v1", "kind": kind, "spec": {"pytorchReplicaSpecs": {
                              "Master": replica(master), "Worker": replica("pass", GPU)}}}},
        **spec}}


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    c = FakeCluster(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(c.kubeconfig(tmp_path / "kubeconfig", NS)))
    yield c
    c.close()


def first_item(exp_dict: dict[str, Any]) -> dict[str, Any]:
    """The first loop item the compiled suggest step hands the trials (x = 1.5)."""
    exp = parse_experiment(exp_dict)
    items, _ = suggest_items(exp.to_json(), [], {"fields": trial_fields(exp)})
    return items[0]


def calls(cluster: FakeCluster) -> list[tuple[str, str]]:
    return [(m, p) for m, p, _ in cluster.requests]


# --------------------------------------------------------------------------- compiled structure


def test_pytorchjob_compiles_to_the_launcher_and_the_gpu_stays_on_the_replicas(tmp_path: Path) -> None:
    data = distributed()
    path, out = tmp_path / "ddp.yaml", tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli_main(["compile", str(path), "--target", "kfp", "-o", str(out)]) == 0
    ir = load_ir(out)
    launchers = leaf_components(ir, "launch")
    assert len(launchers) == 1 and rounds(parse_experiment(data)) == 2  # one round component, called twice
    assert not leaf_components(ir, "ddpkfp-trial")  # no container task in the user's image
    for comp in launchers:
        spec, container = component_executor(ir, comp)
        assert container["image"] == DEFAULT_IMAGE
        assert container["args"][-2:] == ["--function_to_execute", "launch"]
        res = container["resources"]
        assert "accelerator" not in res and "resourceCpuLimit" not in res and "resourceMemoryLimit" not in res
        assert (res["resourceCpuRequest"], res["resourceMemoryRequest"]) == (LAUNCHER_CPU, LAUNCHER_MEMORY)
        assert set(spec["inputDefinitions"]["parameters"]) == {"experiment", "trial"}
        assert list(spec["outputDefinitions"]["parameters"]) == ["observation"]
        label = spec["executorLabel"]  # nothing of the trialSpec's pod goes onto the launcher's pod
        assert label not in ((ir.get("platforms") or {}).get("kubernetes") or {}).get("deploymentSpec", {}).get("executors", {})
    # the launcher's tasks: uncached, fed the experiment input and the whole loop item, read by collect
    tasks = [t for c in ir["components"].values() for t in (c.get("dag") or {}).get("tasks", {}).values()
             if t["componentRef"]["name"] in launchers]
    assert len(tasks) == 1  # the launch task of the one round component
    for task in tasks:
        assert not task["cachingOptions"].get("enableCache")
        params = task["inputs"]["parameters"]
        assert params["experiment"] == {"componentInputParameter": "pipelinechannel--experiment"}
        assert params["trial"] == {"componentInputParameter": "pipelinechannel--trials-loop-item"}
    # the experiment the launcher receives still asks for the GPU, on the worker replica
    root = ir["root"]["inputDefinitions"]["parameters"]
    sent = json.loads(root["experiment"]["defaultValue"])["spec"]["trialTemplate"]["trialSpec"]
    assert sent["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["resources"] == GPU
    assert "trial_wrapper" not in root  # the launcher needs no metrics wrapper (it reads the job's log)
    kfp.components.load_component_from_file(str(out))  # the SDK reads it back


@pytest.mark.parametrize("kind", ["TFJob", "MPIJob", "XGBoostJob"])
def test_other_training_job_kinds_compile_to_the_launcher(kind: str, tmp_path: Path) -> None:
    data = distributed(kind=kind)
    spec = data["spec"]["trialTemplate"]["trialSpec"]["spec"]
    spec[{"TFJob": "tfReplicaSpecs", "MPIJob": "mpiReplicaSpecs", "XGBoostJob": "xgbReplicaSpecs"}[kind]] = \
        spec.pop("pytorchReplicaSpecs")
    data["spec"]["trialTemplate"]["primaryPodLabels"] = {"training.kubeflow.org/job-role": "master"}
    compile_experiment(parse_experiment(data), tmp_path / "p.yaml")
    assert len(leaf_components(load_ir(tmp_path / "p.yaml"), "launch")) == 1  # one round component


def test_kinds_and_collectors_the_launcher_cannot_run_are_refused(tmp_path: Path, capsys) -> None:
    data = distributed()
    data["spec"]["trialTemplate"]["trialSpec"] = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {
        "entrypoint": "main", "templates": [{"name": "main", "container": {
            "name": "pytorch", "image": "python:3.11", "command": [PY, "-c", MASTER, "${trialParameters.x}"]}}]}}
    data["spec"]["trialTemplate"].update(successCondition='status.conditions.#(type=="Completed")#|#(status=="True")#',
                                         failureCondition='status.conditions.#(type=="Failed")#|#(status=="True")#')
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli_main(["compile", str(path), "--target", "kfp", "-o", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err
    assert "spec.trialTemplate.trialSpec.kind" in err and "argoproj.io/v1alpha1/Workflow" in err
    assert not (tmp_path / "x.yaml").exists()

    data = distributed(metricsCollectorSpec={"collector": {"kind": "File"}, "source": {
        "fileSystemPath": {"path": "/tmp/m.log", "kind": "File", "format": "TEXT"}}})
    with pytest.raises(UnsupportedExperiment, match=r"^spec\.metricsCollectorSpec\.collector\.kind: .*use StdOut") as e:
        compile_experiment(parse_experiment(data), tmp_path / "y.yaml")
    assert e.value.field == "spec.metricsCollectorSpec.collector.kind"


# --------------------------------------------------------------------------- the launcher, run for real


def test_launcher_component_runs_the_job_and_deletes_it(cluster: FakeCluster) -> None:
    data = distributed()
    item = first_item(data)
    launcher = step_components(DEFAULT_IMAGE).launch
    out = launcher.python_func(experiment=parse_experiment(data).to_json(), trial=json.dumps(item))
    observation = json.loads(out.observation)
    assert observation["condition"] == "Succeeded" and observation["objectiveValue"] == 2.25, observation
    name = item["hp_trial"]
    jobs = f"/apis/kubeflow.org/v1/namespaces/{NS}/pytorchjobs"
    seen = calls(cluster)
    assert seen[0] == ("POST", jobs)  # the kubeconfig's namespace: the experiment names none
    assert ("GET", f"{jobs}/{name}") in seen and ("DELETE", f"{jobs}/{name}") in seen
    assert ("GET", f"/api/v1/namespaces/{NS}/pods/{name}-master-0/log") in seen
    assert cluster.deleted == [("pytorchjobs", name, "Background")] and not cluster.objects
    sent = cluster.requests_bodies[0]["spec"]["pytorchReplicaSpecs"]
    assert sent["Master"]["template"]["spec"]["containers"][0]["command"][-1] == "1.5"
    assert sent["Worker"]["template"]["spec"]["containers"][0]["resources"] == GPU  # the GPU is the job's
    # collect reads the observation like a container trial's
    out = collect_round(parse_experiment(data).to_json(), [], [item], [out.observation],
                        {"fields": trial_fields(parse_experiment(data))})
    record = out["history"][0]
    assert record["name"] == name and record["condition"] == "Succeeded" and record["objectiveValue"] == 2.25


def test_launcher_retains_the_job_and_uses_the_experiments_namespace(cluster: FakeCluster) -> None:
    data = distributed()
    data["metadata"]["namespace"] = "research"
    data["spec"]["trialTemplate"]["retain"] = True
    item = first_item(data)
    result = launch_trial(parse_experiment(data).to_json(), json.dumps(item), poll=0.05)
    assert result["condition"] == "Succeeded" and result["objectiveValue"] == 2.25
    assert calls(cluster)[0] == ("POST", "/apis/kubeflow.org/v1/namespaces/research/pytorchjobs")
    assert "DELETE" not in [m for m, _ in calls(cluster)] and cluster.deleted == []
    assert [k[3] for k in cluster.objects] == [item["hp_trial"]]


def test_a_failing_replica_is_a_recorded_failed_trial(cluster: FakeCluster) -> None:
    data = distributed(master="import sys; print('loss=1', flush=True); sys.exit(4)")
    result = launch_trial(parse_experiment(data).to_json(), first_item(data), poll=0.05)
    assert result["condition"] == "Failed" and (result["reason"], result["message"]) == ("TrialFailed", "PyTorchJobFailed: a replica failed")
    assert [m for m, _ in calls(cluster)].count("DELETE") == 1


def test_sigterm_to_the_compiled_launcher_step_deletes_the_job(cluster: FakeCluster, tmp_path: Path) -> None:
    """The launcher step's command from the compiled YAML, stopped the way a cancelled run stops it."""
    data = distributed(master="import time; time.sleep(60)")
    compile_experiment(parse_experiment(data), tmp_path / "p.yaml")
    ir = load_ir(tmp_path / "p.yaml")
    _, container = component_executor(ir, leaf_components(ir, "launch")[0])
    item = first_item(data)
    out = tmp_path / "observation"
    executor_input = {"inputs": {"parameterValues": {
        "experiment": ir["root"]["inputDefinitions"]["parameters"]["experiment"]["defaultValue"],
        "trial": json.dumps(item)}},
        "outputs": {"parameters": {"observation": {"outputFile": str(out)}},
                    "outputFile": str(tmp_path / "executor_output.json")}}
    argv = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["command"] + container["args"]]
    proc = subprocess.Popen(argv, cwd=tmp_path, env={**_env(), "PYTHONPATH": str(Path(__file__).parent.parent)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not any(name.startswith(item["hp_trial"]) for _, name in list(cluster.pods)):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[0]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)  # the whole step (sh and the Python executor under it)
    while not cluster.deleted and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert cluster.deleted == [("pytorchjobs", item["hp_trial"], "Background")]
    assert not cluster.objects


def test_the_whole_compiled_pipeline_runs_under_kfp_local(cluster: FakeCluster, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """suggest -> launcher -> collect -> ... -> report in kfp.local, the trials as jobs on the fake cluster."""
    from kfp import local

    from hp_components.kfp import experiment_pipeline

    monkeypatch.chdir(tmp_path)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    pipeline = experiment_pipeline(parse_experiment(distributed()))
    status = pipeline().outputs["status"]
    assert status["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached" and status["trialsSucceeded"] == 2
    assert status["currentOptimalTrial"]["observation"]["metrics"][0]["latest"] == "2.25"
    assert [p for _, _, p in cluster.deleted] == ["Background", "Background"]
