"""One contract for every metrics collector kind (``metrics.COLLECTORS``), as Optuna runs one suite over
every storage: prepare the command, feed the output, finish, observe. Then the File collector's own rule
(each trial its own file, as each Katib pod has its own) through the local runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hp_components.experiment import parse_experiment, trial_collector
from hp_components.local import RunnerError, run_local
from benchmarks.memory import measure
from hp_components.metrics import MAX_LINE, MAX_VALUES, COLLECTORS, Collector, FileCollector, LineSplitter, MetricsParser, collector
from tests.conftest import ROOT, script_experiment

LINES = ["epoch 1: loss=0.5 accuracy=0.7", "epoch 2: loss=0.25 accuracy=0.8"]


def _run(kind: str, tmp_path: Path, fmt: str = "TEXT") -> Collector:
    """Drive a collector the way the runner and the wrapper do, the trial writing its metrics."""
    path = str(tmp_path / "spec" / "metrics.log")
    c = collector(kind, ["loss", "accuracy"], file_path=path if kind == "File" else None, file_format=fmt)
    argv, env = c.prepare(["train", f"--out={path}"], {"LOG": path}, str(tmp_path))
    target = argv[1].split("=", 1)[1]
    if kind == "File":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w") as fh:
            for i, line in enumerate(LINES):
                fh.write((json.dumps({"loss": str(0.5 / (i + 1)), "accuracy": ["0.7", "0.8"][i]}) if fmt == "JSON"
                          else line) + "\n")
    for line in LINES:
        c.feed_output(line)
    assert c.finish() == ""
    return c


@pytest.mark.parametrize("kind, fmt", [("StdOut", "TEXT"), ("File", "TEXT"), ("File", "JSON")])
def test_every_collector_observes_the_same_metrics(kind, fmt, tmp_path):
    c = _run(kind, tmp_path, fmt)
    metrics = {m["name"]: m for m in c.observation()["metrics"]}
    assert metrics["loss"] == {"name": "loss", "min": "0.25", "max": "0.5", "latest": "0.25"}
    assert metrics["accuracy"]["latest"] == "0.8"


@pytest.mark.parametrize("kind", sorted(COLLECTORS))
def test_every_collector_says_what_it_missed(kind, tmp_path):
    c = collector(kind, ["loss"], file_path=str(tmp_path / "never-written.log") if kind == "File" else None)
    c.feed_output("loss=nan")
    note = c.finish()
    assert note and c.observation() == {"metrics": []}
    assert ("never-written.log" in note and "does not exist" in note) if kind == "File" else "not finite" in note


def test_an_unknown_kind_and_a_bad_filter_are_refused_by_name():
    with pytest.raises(ValueError, match="collector Prometheus is not supported here; use StdOut or File"):
        collector("Prometheus", ["loss"])
    with pytest.raises(ValueError, match="needs two groups"):
        collector("StdOut", ["loss"], filters=["(loss)=.*"])
    with pytest.raises(ValueError, match="the File collector needs the path"):
        collector("File", ["loss"])


def test_the_file_collector_moves_a_named_path_into_the_trials_folder(tmp_path):
    c = FileCollector(["loss"], file_path="/var/log/katib/metrics.log")
    argv, env = c.prepare(["python", "t.py", "--log=/var/log/katib/metrics.log"], {"A": "/var/log/katib/metrics.log"},
                          str(tmp_path))
    assert argv[2] == f"--log={tmp_path}/metrics.log" and env["A"] == f"{tmp_path}/metrics.log"
    assert c.path == f"{tmp_path}/metrics.log"
    # on a cluster (no trial folder) the pod has a file system of its own: nothing moves
    assert FileCollector(["loss"], file_path="/m.log").prepare(["x", "/m.log"], {}, None) == (["x", "/m.log"], {})


FILE_TRIAL = "import sys, time; time.sleep(0.3); open(sys.argv[1], 'w').write(f'loss={sys.argv[2][4:]}\\n')"


def _file_experiment(name: str, args: list[str], parallel: int) -> dict:
    spec = script_experiment(name, FILE_TRIAL, args=args, maxTrialCount=4, parallelTrialCount=parallel)
    spec["spec"]["metricsCollectorSpec"] = {
        "collector": {"kind": "File"},
        "source": {"fileSystemPath": {"kind": "File", "path": "/tmp/hp-shared-metrics-test.log"}}}
    return spec


def test_parallel_trials_each_get_their_own_metrics_file(tmp_path):
    spec = _file_experiment("ownfile", ["/tmp/hp-shared-metrics-test.log", "--x=${trialParameters.x}"], 4)
    result = run_local(parse_experiment(spec), storage=f"sqlite:///{tmp_path}/hp.db", run_dir=tmp_path / "runs")
    assert len(result.history) == 4
    for t in result.history:
        assert t.condition == "Succeeded"
        assert t.objective_value == pytest.approx(float(t.assignments["x"]))  # its own value, not a neighbour's


def test_a_file_path_the_command_does_not_name_is_refused_for_parallel_trials(tmp_path):
    """Katib runs a collector per pod (pkg/metricscollector/v1beta1/file-metricscollector): files are never
    shared. A path the command does not name cannot be moved, so parallel local trials would share it."""
    spec = _file_experiment("sharedfile", ["--x=${trialParameters.x}"], 2)
    with pytest.raises(RunnerError, match="fileSystemPath.path: '/tmp/hp-shared-metrics-test.log' is not named"):
        run_local(parse_experiment(spec), storage=f"sqlite:///{tmp_path}/hp.db", run_dir=tmp_path / "runs")
    assert isinstance(trial_collector(parse_experiment(spec)), FileCollector)


JSON_TRAINER = """
import json, sys, time
path, x = sys.argv[1], float(sys.argv[2].split('=')[1])
with open(path, 'w') as fh:
    for epoch in range(8):
        fh.write(json.dumps({'loss': str(x + 1 / (epoch + 1))}) + '\\n'); fh.flush(); time.sleep(0.3)
"""


def test_medianstop_stops_a_trial_from_its_metrics_file_while_it_runs(tmp_path):
    """Katib's median-stop-with-json-format example: the File collector tails the file while the trial
    runs (pkg/metricscollector/v1beta1/file-metricscollector, main.go watching the file) and the
    early-stopping rule ends a trial whose values are worse (pkg/earlystopping/v1beta1/medianstop)."""
    spec = script_experiment("filestop", JSON_TRAINER, args=["/tmp/hp-katib-metrics.json", "--x=${trialParameters.x}"],
                             params=[{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["0", "0.1", "5"]}}],
                             maxTrialCount=3, parallelTrialCount=1)
    spec["spec"]["algorithm"] = {"algorithmName": "grid"}
    spec["spec"]["metricsCollectorSpec"] = {
        "collector": {"kind": "File"},
        "source": {"fileSystemPath": {"kind": "File", "path": "/tmp/hp-katib-metrics.json", "format": "JSON"}}}
    spec["spec"]["earlyStopping"] = {"algorithmName": "medianstop", "algorithmSettings": [
        {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "2"}]}
    result = run_local(parse_experiment(spec), storage=f"sqlite:///{tmp_path}/hp.db", run_dir=tmp_path / "runs")
    by_x = {t.assignments["x"]: t for t in result.history}
    assert by_x["0"].condition == by_x["0.1"].condition == "Succeeded"
    assert len(by_x["0"].intermediate_values) == 8  # every line of the file became an intermediate value
    stopped = by_x["5"]
    assert stopped.condition == "EarlyStopped" and stopped.reason == "TrialEarlyStopped"
    assert 2 <= len(stopped.intermediate_values) < 8 and stopped.objective_value is not None


# --------------------------------------------------------------------------- output size (issue 15, point 5)


def test_a_file_collector_cuts_long_lines_and_keeps_the_last_unterminated_one(tmp_path):
    c = FileCollector(["loss"], file_path=str(tmp_path / "m.log"))
    (tmp_path / "m.log").write_bytes(b"x" * (3 * MAX_LINE) + b" loss=9\nloss=0.5\nloss=0.25")
    assert c.poll() == [("loss", 0.5)]  # the first line was cut before its value; the last is not complete yet
    assert c.finish() == "" and c.parser.values("loss") == [0.5, 0.25]


def test_the_line_splitter_cuts_at_max_line_and_holds_little():
    s = LineSplitter()
    out = [line for _ in range(100) for line in s.feed(b"y" * 50_000)] + s.feed(b"\nloss=1\nlos") + s.feed(b"s=2\n")
    assert [len(line) for line in out] == [MAX_LINE, 6, 6] and out[1:] == [b"loss=1", b"loss=2"]
    assert s.flush() == b""


def test_values_kept_per_metric_are_capped():
    p = MetricsParser(["loss"])
    for i in range(MAX_VALUES + 5):
        p.feed(f"loss={i}")
    assert len(p.values("loss")) == MAX_VALUES and p.values("loss")[-1] == MAX_VALUES + 4
    assert p.summary()["loss"] == {"min": 0.0, "max": MAX_VALUES + 4.0, "latest": MAX_VALUES + 4.0}


@pytest.mark.parametrize("target", ["runner", "wrapper"])
def test_memory_stays_flat_in_the_trials_output_size(target):
    """Peak RSS (VmHWM in /proc) of a real ``hp-tune run`` / wrapper process whose trial prints 1 MB, then
    32 MB of metric lines (``epoch=N loss=0.5``). Before the values were capped the runner grew ~25 MB per
    10 MB printed (benchmarks/results/memory.json); the bound below is generous and is not a timing."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc (Linux)")
    small = measure(ROOT, target, 1, "metric-lines")
    large = measure(ROOT, target, 32, "metric-lines")
    assert small["exit_code"] == large["exit_code"] == 0, (small, large)
    assert large["peak_rss_mib"] - small["peak_rss_mib"] < 40, (small, large)
