"""KFP lanes (``hp-tune compile --target kfp --lanes``): the kfp compiler for real, kfp.local running the
compiled lanes pipeline against a real PostgreSQL, and the backend rules the IR relies on.

kfp.local runs every task as a local process (tests/kfp_local_handler.py): the lanes ParallelFor, the
nested step sub-pipelines, the If guards on each step's input, the one-item trial loop, Collected, the
retries are kfp.local's own ``run_enhanced_dag``; every lane step is the real ``hp-tune step lane-*``
against the real store. Where the backend cannot run here, its rule is modelled from its source
(kubeflow/pipelines 7b70c7b95f68), with a case it accepts and one it refuses.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

kfp = pytest.importorskip("kfp")

from kfp import compiler, components  # noqa: E402

from hp_components.cli import main as cli_main  # noqa: E402
from hp_components.experiment import load_experiment  # noqa: E402
from hp_components.kfp import _backend  # noqa: E402
from hp_components.kfp._api import compile_experiment, experiment_pipeline  # noqa: E402
from hp_components.kfp._errors import UnsupportedExperiment  # noqa: E402
from hp_components.kfp._lanes import MAX_LANE_STEPS, PASSWORD_ENV, LaneStore, lane_steps  # noqa: E402
from hp_components.steps import WRAPPER_SOURCE  # noqa: E402
from hp_components.store import ExperimentStore  # noqa: E402
from tests import kfp_local_handler as handler  # noqa: E402
from tests.conftest import script_experiment  # noqa: E402
from tests.lanes_store import postgres_database, split_password  # noqa: E402

URL = "postgresql+psycopg://hp@db.example:5432/hp"
LOSS = "import sys; x = float(sys.argv[1].split('=')[1]); print(f'loss={(x - 0.5) ** 2}')"
# trials of uneven length (x seconds; 8 s for x = 2), and one whose training process dies (SIGKILL) at x == 9
UNEVEN = ("import os, signal, sys, time; x = float(sys.argv[1].split('=')[1]); "
          "os.kill(os.getpid(), signal.SIGKILL) if x == 9 else time.sleep(x * 4 if x > 1 else x); print(f'loss={(x - 0.5) ** 2}')")


def _exp(trials: int, parallel: int, script: str = LOSS, **spec: Any):
    return load_experiment(script_experiment("lanes", script, maxTrialCount=trials, parallelTrialCount=parallel, **spec))


def _ir(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    docs = list(yaml.safe_load_all(path.read_text()))
    return docs[0], (docs[1] if len(docs) > 1 else {})


@pytest.fixture
def pg() -> Iterator[str]:
    yield from postgres_database()


# --------------------------------------------------------------------------- compile: bad input, exit 2


@pytest.mark.parametrize("args, field, text", [
    (["--storage", "postgresql+psycopg://hp:s3cret@db:5432/hp"], "--storage", "holds a password"),
    (["--storage", "sqlite:///hp.db"], "--storage", "PostgreSQL or MySQL"),
    (["--storage", "not a url"], "--storage", "not a database URL"),
    (["--storage", URL, "--storage-secret", "Bad_Name"], "--storage-secret", "Secret name"),
    ([], "--storage", "--lanes needs"),
])
def test_compile_refuses_bad_lane_options_with_exit_2(tmp_path: Path, capsys, args: list[str], field: str,
                                                     text: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(script_experiment("lanes", LOSS)))
    code = cli_main(["compile", str(path), "--target", "kfp", "--lanes", *args, "-o", str(tmp_path / "p.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and field in err and text in err and "Traceback" not in err
    assert not (tmp_path / "p.yaml").exists()


def test_storage_without_lanes_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(script_experiment("lanes", LOSS)))
    assert cli_main(["compile", str(path), "--target", "kfp", "--storage", URL, "-o", str(tmp_path / "p.yaml")]) == 2
    assert "--storage: is for --lanes only" in capsys.readouterr().err


# --------------------------------------------------------------------------- the compiled pipeline


def test_cli_compiles_lanes_with_the_password_from_the_secret_only(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(script_experiment("lanes", LOSS, maxTrialCount=6, parallelTrialCount=2)))
    out = tmp_path / "p.yaml"
    assert cli_main(["compile", str(path), "--target", "kfp", "--lanes", "--storage", URL,
                     "--storage-secret", "hp-db:pw", "-o", str(out)]) == 0
    ir, platform = _ir(out)
    [lanes] = [t for t in ir["root"]["dag"]["tasks"].values() if "parameterIterator" in t]
    assert lanes["parameterIterator"]["items"]["raw"] == json.dumps(["0", "1"])
    assert lanes["iteratorPolicy"]["parallelismLimit"] == 2
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    # the three lane steps get the Secret; the trial (the user's container) does not
    assert sorted(executors) == ["exec-lane-record", "exec-lane-suggest", "exec-lane-summary"]
    for cfg in executors.values():
        assert pod_env_from_secret_as_env(cfg) == [
            {"name": PASSWORD_ENV, "valueFrom": {"secretKeyRef": {"key": "pw", "name": "hp-db"}}}]
    # 6 trials in 2 lanes: 5 steps per lane (one lane may run 5 while the other holds a slow trial)
    steps = [n for n in ir["components"] if "lane-step" in n]
    assert len(steps) == 5 == lane_steps(load_experiment(yaml.safe_load(path.read_text())))[0]
    assert "s3cret" not in out.read_text() and URL in out.read_text()


def pod_env_from_secret_as_env(config: dict[str, Any]) -> list[dict[str, Any]]:
    """What the backend's driver adds to the pod for a KubernetesExecutorConfig's ``secretAsEnv``
    (backend/src/v2/driver/k8s.go ``extendPodSpecPatch``): per keyToEnv an env var whose
    ``valueFrom.secretKeyRef`` is {key: secretKey, name: the Secret}; the name from
    ``secretNameParameter`` (a constant here) or ``secretName``, an error without either."""
    env = []
    for sae in config.get("secretAsEnv") or []:
        name = ((sae.get("secretNameParameter") or {}).get("runtimeValue") or {}).get("constant") or sae.get("secretName")
        if not name:
            raise ValueError("missing either SecretName or SecretNameParameter for secret environment variable "
                             "in executor config")
        for k in sae.get("keyToEnv") or []:
            env.append({"name": k["envVar"], "valueFrom": {"secretKeyRef": {"key": k["secretKey"], "name": name}}})
    return env


def test_the_secret_rule_accepts_a_named_secret_and_refuses_one_without_a_name() -> None:
    ok = {"secretAsEnv": [{"secretName": "s", "keyToEnv": [{"secretKey": "k", "envVar": "E"}]}]}
    assert pod_env_from_secret_as_env(ok) == [{"name": "E", "valueFrom": {"secretKeyRef": {"key": "k", "name": "s"}}}]
    with pytest.raises(ValueError, match="missing either SecretName"):
        pod_env_from_secret_as_env({"secretAsEnv": [{"keyToEnv": [{"secretKey": "k", "envVar": "E"}]}]})


def test_steps_per_lane_cover_the_worst_case_or_say_so() -> None:
    # full cover: a lane may run maxTrialCount - parallelTrialCount + 1 while the others hold one trial each
    assert lane_steps(_exp(12, 3)) == (10, True)
    # capped: still ceil(12 / 3) = 4 steps at least, so exactly maxTrialCount trials run
    assert lane_steps(_exp(12, 3), cap=5) == (5, False)
    assert lane_steps(_exp(12, 3), cap=1, limit=4) == (4, False)
    with pytest.raises(UnsupportedExperiment, match="spec.maxTrialCount: 12 trials in 3 lanes .* need 4 steps"):
        lane_steps(_exp(12, 3), cap=3)


def _suggest_lost_after(ir: dict[str, Any]) -> set[Any]:
    """The ``lost_after`` argument of every lane-suggest task anywhere in the IR (root and sub-DAGs)."""
    found: set[Any] = set()
    for comp in [ir["root"], *ir["components"].values()]:
        for task in comp.get("dag", {}).get("tasks", {}).values():
            params = task.get("inputs", {}).get("parameters", {})
            if "lost_after" in params:
                found.add(params["lost_after"]["runtimeValue"]["constant"])
    return found


def test_a_lane_trial_is_lost_after_the_longest_its_trial_step_runs(tmp_path: Path) -> None:
    """With a trial deadline every lane-suggest gets --lost-after: 3 attempts (RETRIES 2) of deadline + 60 s +
    1800 s to start + 300 s, the retries' backoff (30 s, doubling) and 600 s; without one, 0 (never lost:
    KFP has no run deadline to bound a trial by)."""
    from hp_components.kfp._lanes import lost_after

    spec = script_experiment("lanes", LOSS, maxTrialCount=4, parallelTrialCount=2)
    spec["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 600
    timed = load_experiment(spec)
    assert lost_after(timed) == 3 * (600 + 60 + 1800 + 300) + (30 + 60) + 600
    assert lost_after(timed, "1m") == 3 * (600 + 60 + 1800 + 300) + (60 + 120) + 600
    assert lost_after(_exp(4, 2)) is None
    compile_experiment(timed, tmp_path / "timed.yaml", lanes=True, storage=URL)
    assert _suggest_lost_after(_ir(tmp_path / "timed.yaml")[0]) == {lost_after(timed)}
    compile_experiment(_exp(4, 2), tmp_path / "untimed.yaml", lanes=True, storage=URL)
    assert _suggest_lost_after(_ir(tmp_path / "untimed.yaml")[0]) == {0}


def test_the_kfp_lane_claim_records_a_dead_pods_trial_lost_and_takes_its_slot(pg: str, monkeypatch) -> None:
    """A trial pod that fails after its retries ends its lane on KFP and leaves its trial Running. The
    lane-suggest step of another lane (kfp/_runtime.lane_claim, running the real hp-tune step) records it
    Failed (TrialLost) past --lost-after and claims the slot (without --lost-after it would wait:
tests/test_lanes.py test_a_trial_of_a_deleted_workflow_is_recorded_lost_and_frees_its_slot)."""
    from hp_components._lanes import lane_suggest
    from hp_components.kfp._runtime import lane_claim
    from tests.test_lanes import _backdate

    bare, password = split_password(pg)
    monkeypatch.setenv(PASSWORD_ENV, password)
    exp = _exp(3, 1)
    dead = lane_suggest(exp, pg, lane=0, run="run-1")
    _backdate(pg, exp, dead.item["name"], 601)
    items, name, done, reason = lane_claim(exp.to_json(), bare, {}, lane="1", run="run-1", depth=0, max_per_lane=3,
                                           lost_after=600)
    assert not done and name != dead.item["name"] and len(items) == 1
    stored = {t.name: t for t in ExperimentStore(pg, exp).history()}
    assert (stored[dead.item["name"]].condition, stored[dead.item["name"]].reason) == ("Failed", "TrialLost")
    assert stored[name].condition == "Running"


def test_depth_grows_two_levels_per_step_and_stays_under_argos_limit(tmp_path: Path) -> None:
    # D1 2 + lanes ParallelFor D3 3 + per step a sub-pipeline and its guard D2 2 + trial loop 3 + pod D4 2
    for trials, steps in ((3, 2), (6, 5)):
        compile_experiment(_exp(trials, 2), tmp_path / "p.yaml", lanes=True, storage=URL)
        ir, _ = _ir(tmp_path / "p.yaml")
        assert _backend.argo_depth(ir) == 2 + 3 + 2 * steps + 3 + 2
    assert 2 + 3 + 2 * MAX_LANE_STEPS + 3 + 2 < _backend.ARGO_MAX_DEPTH * _backend.WARN_FRACTION


def test_a_lanes_pipeline_too_big_or_too_deep_is_refused_naming_the_fields(tmp_path: Path, capsys) -> None:
    path = tmp_path / "exp.yaml"
    # 69 trials in 2 lanes: 35 steps per lane, past MAX_LANE_STEPS (depth)
    path.write_text(yaml.safe_dump(script_experiment("lanes", LOSS, maxTrialCount=69, parallelTrialCount=2)))
    assert cli_main(["compile", str(path), "--target", "kfp", "--lanes", "--storage", URL, "-o",
                     str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert "spec.maxTrialCount" in err and "spec.parallelTrialCount to at least 3" in err
    # 300 trials: the status nodes alone pass MAX_WORKFLOW_SIZE (L1), whatever the steps per lane
    path.write_text(yaml.safe_dump(script_experiment("lanes", LOSS, maxTrialCount=300, parallelTrialCount=30)))
    assert cli_main(["compile", str(path), "--target", "kfp", "--lanes", "--storage", URL, "-o",
                     str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert "spec.maxTrialCount" in err and "lower spec.maxTrialCount" in err and "Traceback" not in err


def test_fewer_steps_than_the_worst_case_warn_and_the_summary_reports_it(tmp_path: Path) -> None:
    # 60 trials in 6 lanes: a lane would need 55 steps for the worst case; it gets MAX_LANE_STEPS at most
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compile_experiment(_exp(60, 6), tmp_path / "p.yaml", lanes=True, storage=URL)
    said = [str(w.message) for w in caught if "LaneDepthReached" in str(w.message)]
    assert said and "exactly 60 trials still run" in said[0]
    ir, _ = _ir(tmp_path / "p.yaml")
    summary = ir["root"]["dag"]["tasks"]["lane-summary"]
    params = summary["inputs"]["parameters"]
    assert params["covered"]["runtimeValue"]["constant"] is False
    assert 10 <= params["steps_per_lane"]["runtimeValue"]["constant"] <= MAX_LANE_STEPS
    spec = _backend.workflow_spec_bytes(ir)
    raw, stored = _backend.workflow_status_bytes(ir, 60, 66)
    assert spec + min(raw, stored) < _backend.MAX_WORKFLOW_BYTES


def test_the_backend_model_finds_the_trial_in_the_innermost_loop(tmp_path: Path) -> None:
    compile_experiment(_exp(4, 2), tmp_path / "p.yaml", lanes=True, storage=URL)
    ir, _ = _ir(tmp_path / "p.yaml")
    assert _backend._trial_components(ir) == ["comp-lanes-trial"] * len(_backend._trial_components(ir))
    assert _backend.trial_executor_input_bytes(ir, {}) > 0


# --------------------------------------------------------------------------- kfp.local against PostgreSQL


def _run(tmp_path: Path, exp: Any, store: LaneStore, faults: set[str] = frozenset()) -> dict[str, Any]:
    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(experiment_pipeline(exp, retry_backoff="0s", lanes=store), str(path))
    comp = components.load_component_from_file(str(path))
    with handler.installed(str(tmp_path / "root")):
        handler.FAULTS.update(faults)
        task = comp()
    return {k: task.outputs[k] for k in ("status", "best_trial", "best_parameters", "best_objective")}


def test_lanes_run_under_kfp_local_with_uneven_trials_a_dying_one_and_an_evicted_pod(
        tmp_path: Path, pg: str, monkeypatch) -> None:
    bare, password = split_password(pg)
    monkeypatch.setenv(PASSWORD_ENV, password)  # what the Secret gives the step pods
    values = ["2", "0.1", "9", "0.3", "0.5"]  # lane of the 2 s trial falls behind; 9 kills itself
    exp = _exp(5, 2, UNEVEN, algorithm={"algorithmName": "grid"},
               parameters=[{"name": "x", "parameterType": "categorical", "feasibleSpace": {"list": values}}])
    out = _run(tmp_path, exp, LaneStore(bare, "hp-db"), faults={"--x=0.3"})  # that trial's pod is evicted once
    status = out["status"]
    assert status["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached"
    assert status["lanes"] == {"count": 2, "stepsPerLane": 4, "coversWorstCase": True}
    assert handler.EVICTED == ["--x=0.3"]  # retried, then recorded once
    trials = ExperimentStore(pg, exp).history_with_owners()
    names = [t.name for t, _ in trials]
    assert len(names) == 5 == len(set(names))  # exactly maxTrialCount, no name twice
    by_value = {t.assignments["x"]: t for t, _ in trials}
    assert sorted(by_value) == sorted(values) and all(t.finished for t in by_value.values())
    assert by_value["9"].condition == "Failed"  # the trial died; recorded, the lanes went on
    assert sum(t.condition == "Succeeded" for t in by_value.values()) == 4
    assert out["best_parameters"] == {"x": "0.5"} and out["best_objective"] == 0.0
    lanes = {}
    for t, owner in trials:
        lanes.setdefault(owner["host"].rsplit("/", 1)[1], []).append(t.assignments["x"])
    assert sorted(lanes) == ["0", "1"]
    slow = next(lane for lane, xs in lanes.items() if "2" in xs)
    assert len(lanes[slow]) < len(lanes[next(iter(set(lanes) - {slow}))])  # the fast lane refilled its slot
    trial_pods = handler.trial_commands()  # 5 trials, the evicted one twice; the wrapper is the artifact
    assert len(trial_pods) == 6 and all(Path(c[1]).read_text() == WRAPPER_SOURCE for c in trial_pods)


# --------------------------------------------------------------------------- pipelines/kfp-lanes-example.yaml


def test_compiled_lanes_example_is_fresh_and_holds_no_password(tmp_path: Path) -> None:
    """The checked-in example matches a fresh compile (KFP numbers nested components in no stable
    order, so executors, component names, the platform spec and the interface are compared)."""
    import re
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / "kfp-lanes-example.yaml"
    subprocess.run([sys.executable, str(ROOT / "pipelines" / "kfp_lanes_example.py"), "-o", str(out)], check=True,
                   capture_output=True, cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "HP_IMAGE"})

    def essence(path: Path) -> tuple:
        ir, platform = _ir(path)
        executors = sorted(json.dumps(e, sort_keys=True) for e in ir["deploymentSpec"]["executors"].values())
        names = sorted(re.sub(r"(-\d+)+$", "", k) for k in ir["components"])
        return executors, names, platform, ir["root"].get("outputDefinitions"), ir["pipelineInfo"]

    checked_in = ROOT / "pipelines" / "kfp-lanes-example.yaml"
    assert essence(out) == essence(checked_in), \
        "pipelines/kfp-lanes-example.yaml is stale: run python pipelines/kfp_lanes_example.py"
    ir, platform = _ir(checked_in)
    assert "katib-postgres" in checked_in.read_text() and ":5432/hp" in checked_in.read_text()
    import sqlalchemy

    urls = set(re.findall(r"postgresql\+psycopg://[^\s\"']+", checked_in.read_text()))
    assert urls and all(sqlalchemy.engine.make_url(u).password is None for u in urls)
    assert {c["secretAsEnv"][0]["secretName"] for c in
            platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()} == {"hp-db"}

