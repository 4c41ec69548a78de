"""The Argo lane shape (``hp-tune compile --target argo --lanes``) run by the Argo interpreter
(tests/argo_engine.py) with real subprocess trials of uneven length against a real PostgreSQL store.

The store's password reaches the steps only through a Secret: the interpreter is given the
Secrets of the namespace and resolves ``env[].valueFrom.secretKeyRef`` the way the kubelet does
(pkg/kubelet/kubelet_pods.go ``makeEnvironmentVariables``: a missing Secret or key fails the
container's creation, CreateContainerConfigError, unless ``optional``), everything else is Argo's.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hp_components.argo import CompileError, Lanes, MAX_LANE_TRIALS, lanes_workflow
from hp_components.experiment import parse_experiment
from hp_components.store import ExperimentStore
from tests.argo_engine import ArgoError, Interpreter, semantic_problems
from tests.conftest import ROOT, script_experiment
from tests.lanes_store import postgres_database, split_password


@pytest.fixture
def pg_url():
    yield from postgres_database()


class KubeletEnv(Interpreter):
    """The interpreter, with the kubelet's Secret lookup for ``secretKeyRef`` env variables."""

    def __init__(self, *args, secrets: dict[str, dict[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.secrets = secrets

    def _container(self, t, params, artifacts, node, attempt, retried=False):
        env = (t.get("container") or {}).get("env")
        if not env:
            return super()._container(t, params, artifacts, node, attempt, retried)
        resolved = []
        for e in env:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref is None:
                resolved.append(e)
                continue
            secret = self.secrets.get(ref["name"])
            if secret is None or ref["key"] not in secret:
                if ref.get("optional"):
                    continue
                why = (f'secret "{ref["name"]}" not found' if secret is None
                       else f"couldn't find key {ref['key']} in Secret {self.namespace}/{ref['name']}")
                self._node(node, t["name"], "Pod", "Error", message=f"CreateContainerConfigError: {why}")
                return {"phase": "Error", "parameters": {}, "artifacts": {}, "message": why, "stderr": why}
            resolved.append({"name": e["name"], "value": secret[ref["key"]]})
        t = copy.deepcopy(t)
        t["container"]["env"] = resolved
        return super()._container(t, params, artifacts, node, attempt, retried)


TRIAL = """
import json, os, sys, time
x = float(sys.argv[1].split("=")[1])
start = time.time()
time.sleep(0.1 if x < 0 else 1.2)  # trials of uneven length
with open(os.environ["STAMPS"], "a") as f:
    f.write(json.dumps([start, time.time()]) + "\\n")
print(f"loss={(x - 0.3) ** 2}")
"""


def _spec(name: str, tmp_path: Path, **changes) -> dict:
    spec = script_experiment(name, TRIAL, **changes)
    container = spec["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "STAMPS", "value": str(tmp_path / "stamps.jsonl")}]
    container["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    return spec


def _peak(stamps: Path) -> int:
    rows = [json.loads(line) for line in stamps.read_text().splitlines()]
    events = sorted([(s, 1) for s, _ in rows] + [(e, -1) for _, e in rows])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_lanes_run_exactly_max_trials_and_a_dead_pod_is_recorded(pg_url, tmp_path):
    url, password = split_password(pg_url)
    spec = _spec("argolanes", tmp_path, maxTrialCount=8, parallelTrialCount=3, maxFailedTrialCount=8)
    exp = parse_experiment(spec)
    doc = lanes_workflow(exp, Lanes(url, "hp-db"))
    assert semantic_problems(doc) == []
    assert f":{password}@" not in json.dumps(doc) and "hp_lanes_" in json.dumps(doc), "the URL, never its password"
    dead = "argolanes-0001"  # this trial's pod dies every attempt (evicted): recorded Failed, the lane goes on
    engine = KubeletEnv(doc, tmp_path / "wf", secrets={"hp-db": {"password": password}},
                        faults=lambda t, p, a: "Failed: The node was low on resource: memory (Evicted)"
                        if t == "trial-pod" and p.get("hp-trial-name") == dead else None)
    (tmp_path / "wf").mkdir()
    result = engine.run()

    history = ExperimentStore(pg_url, exp).history()
    names = [t.name for t in history]
    assert len(names) == 8 and len(set(names)) == 8, "exactly maxTrialCount trials, no name twice"
    assert {t.name: (t.condition, t.reason) for t in history if t.condition != "Succeeded"} == {dead: ("Failed", "NoObservation")}
    pods = [n for n in engine.nodes if n["templateName"] == "trial-pod"]
    assert len(pods) == 7 + 3, "the dead trial's pod was retried twice, the others ran once"
    assert _peak(tmp_path / "stamps.jsonl") <= 3, "never more than parallelTrialCount trials at once"
    lanes = {n["inputs"]["parameters"][0]["value"] for n in engine.nodes if n["templateName"] == "lane-suggest"}
    assert lanes == {"0", "1", "2"}
    trials_per_lane = {lane: sum(1 for n in engine.nodes if n["templateName"] == "lane-record" and n["type"] == "Pod"
                                 and n["name"].startswith(f"wf[0].lanes({lane}:{lane})")) for lane in lanes}
    assert sum(trials_per_lane.values()) == 8
    assert max(trials_per_lane.values()) > min(trials_per_lane.values()), "short trials' lanes ran more of them"
    # one globalName, many writers (records, then the summary): a later differing value replaces the earlier (argo-workflows
    # f016ad89, same in v4.1.2: workflow/util/util.go `AddParamToGlobalScope`, from operator.go `addOutputsToGlobalScope`)
    status = json.loads(engine.globals["status"])
    assert status["reason"] == "ExperimentMaxTrialsReached" and status["trialsSucceeded"] == 7
    # while the lanes run, every record sets the global status and best so far (the summary the last ones)
    records = [n for n in engine.nodes if n["templateName"] == "lane-record" and n["type"] == "Pod"]
    progress = [json.loads({p["name"]: p["value"] for p in n["outputs"]["parameters"]}["status"]) for n in records]
    assert min(p["trialsSucceeded"] + p["trialsFailed"] for p in progress) < 8
    template = next(t for t in doc["spec"]["templates"] if t["name"] == "lane-record")
    assert {p["name"]: p.get("globalName") for p in template["outputs"]["parameters"]} == {"status": "status",
                                                                                         "best-trial": "best"}
    assert json.loads(result["parameters"]["best"]) and float(result["parameters"]["objective"]) >= 0
    assert engine.max_seen_depth == max(trials_per_lane.values()) + 3  # main, one level per iteration, trial, pod

    # hp-tune status --target argo reads the lanes' trials from the same `trial` nodes
    from hp_components.argo._cluster import summarize

    wf = {"metadata": {"name": "argolanes-x"}, "status": {"phase": "Succeeded", "nodes": {n["id"]: n for n in engine.nodes},
                                                         "outputs": {"parameters": [{"name": k, "value": v} for k, v in engine.globals.items()]}}}
    seen = summarize(wf)
    assert [t["name"] for t in seen["trials"]] == sorted(names)
    assert {t["name"]: t["phase"] for t in seen["trials"]}[dead] == "Failed"
    assert seen["status"]["reason"] == "ExperimentMaxTrialsReached" and seen["best"]["name"]


def test_lane_depth_the_kth_trial_pod_runs_at_depth_k_plus_3(pg_url, tmp_path):
    """Argo's operator.go executeTemplate refuses depth >= maxAllowedStackDepth (100): a lane's k trials
    need k + 4 (accepted); with one level fewer the workflow errors (refused). So MAX_LANE_TRIALS (90)
    leaves 6 levels for a templateRef caller, as the rounds do."""
    url, password = split_password(pg_url)
    secrets = {"hp-db": {"password": password}}

    def doc(name: str) -> dict:  # one experiment per run: the store keeps what a run left
        return lanes_workflow(parse_experiment(_spec(name, tmp_path, maxTrialCount=3, parallelTrialCount=1)),
                              Lanes(url, "hp-db"))

    with pytest.raises(ArgoError, match="Maximum recursion depth exceeded"):
        KubeletEnv(doc("argodepth-a"), tmp_path / "a", secrets=secrets, max_depth=3 + 3).run()
    ok = KubeletEnv(doc("argodepth-b"), tmp_path / "b", secrets=secrets, max_depth=3 + 4)
    ok.run()
    assert ok.max_seen_depth == 3 + 3
    assert MAX_LANE_TRIALS + 4 + 6 == 100


def test_a_missing_secret_fails_the_step_and_says_which(pg_url, tmp_path):
    url, _ = split_password(pg_url)
    doc = lanes_workflow(parse_experiment(_spec("argonosecret", tmp_path, maxTrialCount=2)), Lanes(url, "hp-db"))
    engine = KubeletEnv(doc, tmp_path, secrets={})
    with pytest.raises(ArgoError, match='secret "hp-db" not found'):
        engine.run()
    wrong = KubeletEnv(doc, tmp_path / "w", secrets={"hp-db": {"password": "wrong"}})
    with pytest.raises(ArgoError) as e:
        wrong.run()
    assert "cannot be reached from this step" in str(e.value) and "Secret hp-db/password" in str(e.value)


def test_compile_refuses_what_lanes_cannot_run(tmp_path):
    exp_file = tmp_path / "exp.yaml"
    exp_file.write_text(yaml.safe_dump(script_experiment("argobad", "print(1)")))

    def compile_(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hp_components.cli", "compile", str(exp_file), "-o",
                               str(tmp_path / "out.yaml"), *args], capture_output=True, text=True,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})

    cases = {("--target", "argo", "--lanes"): "--lanes: needs --storage",
             ("--target", "argo", "--lanes", "--storage", "postgresql://hp:pw@db/hp"): "--storage: holds a password",
             ("--target", "argo", "--lanes", "--storage", "sqlite:///x.db"): "--storage: sqlite:///x.db: lanes need a database server",
             ("--target", "argo", "--storage", "postgresql://hp@db/hp"): "--storage: is used only with --lanes",
             ("--target", "argo", "--lanes", "--storage", "postgresql://hp@db/hp", "--storage-secret", "Bad_Name"):
                 "--storage-secret: 'Bad_Name'"}  # KFP's lanes: tests/test_kfp_lanes.py
    for args, message in cases.items():
        r = compile_(*args)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    r = compile_("--target", "argo", "--lanes", "--storage", "postgresql+psycopg://hp@db:5432/hp", "--storage-secret", "hp-db:pw")
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load((tmp_path / "out.yaml").read_text())
    suggest = next(t for t in doc["spec"]["templates"] if t["name"] == "lane-suggest")
    assert {"name": "HP_STORAGE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "hp-db", "key": "pw"}}} in suggest["container"]["env"]
    args = suggest["container"]["args"]  # no trial deadline: a trial is lost once past the workflow's deadline
    assert args[args.index("--lost-after") + 1] == str(doc["spec"]["activeDeadlineSeconds"]) == str(7 * 86400)
    with pytest.raises(CompileError, match="spec.maxTrialCount"):
        lanes_workflow(parse_experiment(script_experiment("argobig", "print(1)", maxTrialCount=91 * 2, parallelTrialCount=2)),
                       Lanes("postgresql://hp@db/hp"))


def test_medianstop_rules_reach_the_trial_pods_of_a_lane(pg_url, tmp_path):
    """The early-stopping rule stays as in the rounds: each claim carries the rule of the history it saw
    (Katib: medianstop/service.py GetEarlyStoppingRules when the trial is created), the wrapper enforces it."""
    from tests.test_argo import median_experiment

    url, password = split_password(pg_url)
    spec = median_experiment("lanemedian")
    spec["spec"]["parallelTrialCount"] = 1  # one lane: the claims see 0, 1, 2, 3... finished trials, in order
    exp = parse_experiment(spec)
    doc = lanes_workflow(exp, Lanes(url, "hp-db"))
    assert semantic_problems(doc) == []
    lane = next(t for t in doc["spec"]["templates"] if t["name"] == "lane")
    assert {"name": "hp-stop-rule", "value": "{{item.hp-stop-rule}}"} in lane["steps"][1][0]["arguments"]["parameters"]
    KubeletEnv(doc, tmp_path, secrets={"hp-db": {"password": password}}).run()
    by_x = {t.assignments["x"]: t for t in ExperimentStore(pg_url, exp).history()}
    assert {x: t.condition for x, t in by_x.items()} == {
        "0.9": "Succeeded", "0.8": "Succeeded", "0.85": "Succeeded", "0.1": "EarlyStopped", "0.95": "Succeeded",
        "0.2": "EarlyStopped"}
    assert 2 <= len(by_x["0.1"].intermediate_values) < 8 and len(by_x["0.95"].intermediate_values) == 8


def test_a_lane_trial_is_lost_after_the_longest_it_can_run():
    """lane-suggest --lost-after: with a trial deadline, the longest one trial step runs with its retries
    (deadline + the pod's 60 s safety net + pendingTimeout + 300 s, per attempt) and the steps around it;
    never beyond the workflow's own deadline."""
    from hp_components.argo._compile import Options
    from hp_components.argo._lanes import lost_after

    spec = script_experiment("argolost", "print(1)", maxTrialCount=4, parallelTrialCount=2)
    spec["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 600
    exp = parse_experiment(spec)
    assert lost_after(exp, Options(retries=2, pending_timeout="10m")) == 3 * (600 + 60 + 600 + 300) + 600
    assert lost_after(exp, Options(retries=2, pending_timeout="10m", active_deadline_seconds=1000)) == 1000
