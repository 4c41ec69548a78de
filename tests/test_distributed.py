"""A PyTorchJob trial runs locally as one process per replica, with torch.distributed's rendezvous env."""

from __future__ import annotations

import pytest

from hp_components.experiment import parse_experiment
from hp_components.local import run_local
from tests.conftest import PY

DDP = """
import os, sys
import torch
import torch.distributed as dist
x = float(sys.argv[1].split("=")[1])
dist.init_process_group("gloo", init_method="env://")
rank, world = dist.get_rank(), dist.get_world_size()
t = torch.tensor([x * (rank + 1)])
dist.all_reduce(t)  # sum over ranks: x * (1 + 2 + ... + world)
if rank == 0:
    print(f"loss={t.item()}", flush=True)
    print(f"world={world}", flush=True)
if os.environ.get("FAIL_RANK") == str(rank):
    os._exit(7)  # at once: sys.exit with a live process group lets torch's teardown abort (SIGABRT) at times
dist.destroy_process_group()
"""


def pytorchjob(name: str, workers: int, env: list | None = None) -> dict:
    def replica(n: int) -> dict:
        return {"replicas": n, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [
            {"name": "pytorch", "image": "docker.io/pytorch/pytorch:2.4.0", "env": env or [],
             "command": [PY, "-c", DDP, "--x=${trialParameters.x}"]}]}}}

    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name}, "spec": {
        "objective": {"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["world"]},
        "algorithm": {"algorithmName": "grid"},
        "parallelTrialCount": 1, "maxTrialCount": 2, "maxFailedTrialCount": 2,
        "parameters": [{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["1.5", "2"]}}],
        "trialTemplate": {"primaryContainerName": "pytorch", "trialParameters": [{"name": "x", "reference": "x"}],
                          "trialSpec": {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
                                        "spec": {"pytorchReplicaSpecs": {"Master": replica(1), "Worker": replica(workers)}}}}}}


def test_two_process_gloo_trial_reports_a_metric(tmp_path):
    pytest.importorskip("torch")
    exp = parse_experiment(pytorchjob("ddp", workers=1))
    result = run_local(exp, storage=f"sqlite:///{tmp_path}/s.db", run_dir=tmp_path / "runs")
    assert [t.condition for t in result.history] == ["Succeeded", "Succeeded"], [t.message for t in result.history]
    for t in result.history:
        latest = {m["name"]: float(m["latest"]) for m in t.observation["metrics"]}
        assert latest["world"] == 2
        assert t.objective_value == pytest.approx(float(t.assignments["x"]) * 3)  # x*1 + x*2: both ranks took part
        assert (tmp_path / "runs" / "ddp" / t.name / "worker-1.log").exists()


def test_a_failing_worker_fails_the_trial(tmp_path):
    pytest.importorskip("torch")
    exp = parse_experiment(pytorchjob("ddpfail", workers=2, env=[{"name": "FAIL_RANK", "value": "2"}]))
    result = run_local(exp, storage=f"sqlite:///{tmp_path}/s.db", run_dir=tmp_path / "runs", kill_grace=10)
    t = result.history[0]
    assert t.condition == "Failed" and t.message == "PyTorchJob worker (rank 2) ended with exit code 7"
    assert result.status.reason == "ExperimentFailed"
