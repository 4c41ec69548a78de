"""Tests for hp_components/metrics.py: Katib-style metrics parsing and the trial wrapper.

The module is loaded from its file (it is shipped as a standalone script), and the
trial wrapper is exercised with real child processes.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE_PATH = ROOT / "hp_components" / "metrics.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_hp_metrics_under_test", MODULE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


m = _load()
MetricsParser = m.MetricsParser
PY = sys.executable


def py(code: str) -> list[str]:
    """argv running ``code`` in a fresh Python."""
    return [PY, "-c", textwrap.dedent(code)]


def metric(observation: dict, name: str) -> dict:
    (found,) = [x for x in observation["metrics"] if x["name"] == name]
    return found


# --------------------------------------------------------------------------- TEXT parsing


def test_default_filter_katib_style_lines() -> None:
    p = MetricsParser(["Validation-accuracy", "loss", "accuracy"])
    assert p.feed("epoch 1: Validation-accuracy=0.91 loss=0.3") == [("Validation-accuracy", 0.91), ("loss", 0.3)]
    assert p.feed("accuracy = 0.5") == [("accuracy", 0.5)]
    assert p.feed("loss=1e-3") == [("loss", 0.001)]
    assert p.feed("loss=-2.5E+2") == [("loss", -250.0)]
    assert p.feed("accuracy=.98") == [("accuracy", 0.98)]
    assert p.values("loss") == [0.3, 0.001, -250.0]
    assert p.values("accuracy") == [0.5, 0.98]


def test_default_filter_is_katibs() -> None:
    assert m.DEFAULT_FILTER == r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"


def test_names_with_dash_and_pipe_and_exact_name_match() -> None:
    p = MetricsParser(["train|loss", "val-acc", "acc"])
    found = p.feed("train|loss=0.25 val-acc=0.75 top5-acc=0.99 acc_top1=0.1 acc=0.5")
    assert found == [("train|loss", 0.25), ("val-acc", 0.75), ("acc", 0.5)]


def test_line_without_a_metric_name_is_not_considered() -> None:
    p = MetricsParser(["accuracy"])
    assert p.feed("lr=0.1 momentum=0.9") == []
    assert p.summary() == {}


def test_all_matches_on_a_line_count_and_names_are_stripped() -> None:
    p = MetricsParser(["loss"], filters=[r"(\s*\w+\s*):\s*([\d.]+)"])
    assert p.feed("loss : 1.5, loss: 2.5, other: 3") == [("loss", 1.5), ("loss", 2.5)]


def test_custom_filter_katib_example() -> None:
    flt = r"{metricName: ([\w|-]+), metricValue:((-?\d+)(\.\d+)?)}"
    p = MetricsParser(["accuracy", "loss"], filters=[flt])
    line = "{metricName: accuracy, metricValue:0.8} {metricName: loss, metricValue:-3}"
    assert p.feed(line) == [("accuracy", 0.8), ("loss", -3.0)]
    assert p.feed("accuracy=0.99") == []  # the default filter is not used with custom filters


def test_several_filters_all_apply() -> None:
    p = MetricsParser(["acc"], filters=[r"(acc)=(\d+\.\d+)", r"(acc): (\d+\.\d+)"])
    assert p.feed("acc=0.1 acc: 0.2") == [("acc", 0.1), ("acc", 0.2)]


@pytest.mark.parametrize("bad", ["([a-z]+", r"(\w+)=\d+", "(?P<x>a)(?P<x>b)"])
def test_invalid_filter_is_value_error_naming_it(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        MetricsParser(["a"], filters=[bad])
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"metric_names": []}, "metric_names"),
        ({"metric_names": ["ok", " "]}, "metric name"),
        ({"metric_names": ["a"], "file_format": "XML"}, "format"),
        ({"metric_names": ["a"], "file_format": "JSON", "filters": ["(a)=(b)"]}, "JSON"),
    ],
)
def test_invalid_parser_arguments(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        MetricsParser(**kwargs)


def test_format_is_case_insensitive() -> None:
    assert MetricsParser(["a"], file_format="json").file_format == "JSON"
    assert MetricsParser(["a"], file_format="Text").file_format == "TEXT"


def test_timestamps_are_kept_with_the_value() -> None:
    p = MetricsParser(["accuracy"])
    p.feed("2024-05-01T10:00:00.123Z accuracy=0.9")
    p.feed("2024-05-01T12:00:00+02:00 accuracy=0.8")
    p.feed("accuracy=0.7")
    p.feed("2024-13-01T10:00:00Z accuracy=0.6")  # not a valid time: no timestamp
    p.feed("2024-05-01 10:00:00 accuracy=0.5")  # not RFC 3339: no timestamp
    assert p.values("accuracy") == [0.9, 0.8, 0.7, 0.6, 0.5]
    assert p.timestamps("accuracy") == ["2024-05-01T10:00:00.123Z", "2024-05-01T12:00:00+02:00", None, None, None]


def test_latest_follows_timestamps_like_katib() -> None:
    p = MetricsParser(["acc"])
    p.feed("2024-05-01T10:00:05Z acc=0.5")
    p.feed("2024-05-01T10:00:01Z acc=0.7")  # older: not the latest
    p.feed("acc=0.9")  # no timestamp counts as year 1: not the latest either
    assert p.summary()["acc"] == {"min": 0.5, "max": 0.9, "latest": 0.5}
    p.feed("2024-05-01T10:00:05Z acc=0.6")  # same time: the later line wins
    assert p.summary()["acc"]["latest"] == 0.6


def test_latest_without_timestamps_is_the_last_value() -> None:
    p = MetricsParser(["loss"])
    p.feed_text("loss=3\nloss=1\nloss=2\n")
    assert p.summary() == {"loss": {"min": 1.0, "max": 3.0, "latest": 2.0}}


# --------------------------------------------------------------------------- JSON parsing


def test_json_lines_numbers_strings_and_timestamps() -> None:
    p = MetricsParser(["acc", "loss"], file_format="JSON")
    assert p.feed('{"acc": 0.5, "loss": "1.25", "epoch": 1}') == [("acc", 0.5), ("loss", 1.25)]
    assert p.feed('{"loss": 2, "acc": " 0.75 ", "timestamp": "2024-05-01T10:00:00Z"}') == [("acc", 0.75), ("loss", 2.0)]
    assert p.feed('{"acc": 0.8, "timestamp": 1714557600.5}') == [("acc", 0.8)]
    assert p.feed('{"acc": 0.1, "timestamp": 1714557600}') == [("acc", 0.1)]
    assert p.feed('{"acc": 0.2, "timestamp": "yesterday"}') == [("acc", 0.2)]
    assert p.timestamps("acc") == [
        None, "2024-05-01T10:00:00Z", "2024-05-01T10:00:00.5Z", "2024-05-01T10:00:00Z", None,
    ]
    assert p.summary()["acc"]["latest"] == 0.8  # newest timestamp wins
    assert p.skipped_lines == 0


def test_json_bad_and_non_object_lines_are_skipped_and_counted() -> None:
    p = MetricsParser(["acc"], file_format="JSON")
    lines = ['{"acc": 0.5', "acc=0.3", "[1, 2]", "0.5", '"acc"', "null", "", "   ", '{"acc": 0.9}', "[" * 100_000]
    for line in lines:
        p.feed(line)
    assert p.values("acc") == [0.9]
    assert p.skipped_lines == 7  # empty lines are not counted


def test_json_ignores_non_finite_and_non_numeric_values() -> None:
    p = MetricsParser(["acc"], file_format="JSON")
    for value in ["NaN", "Infinity", "-Infinity", "1e999", '"nan"', '"inf"', "true", "null", '"abc"', "[1]", "{}",
                  '"0x10"', '"1_0"', "1" * 5000]:
        assert p.feed('{"acc": %s}' % value) == [], value
    assert p.values("acc") == []
    assert p.ignored_values == 14
    assert p.feed('{"acc": "-1.5e-3"}') == [("acc", -0.0015)]


def test_json_feed_text_and_bytes() -> None:
    p = MetricsParser(["acc"], file_format="JSON")
    p.feed_text(b'{"acc": 1}\r\n\n{"acc": 2}\n{bad\n')
    assert p.values("acc") == [1.0, 2.0]
    assert p.skipped_lines == 1


# --------------------------------------------------------------------------- robustness


def test_non_finite_and_garbage_values_are_ignored() -> None:
    p = MetricsParser(["loss"], filters=[m.DEFAULT_FILTER, r"(loss):(\S+)"])
    for line in ["loss=nan", "loss=inf", "loss=-", "loss=abc", "loss:NaN", "loss:inf", "loss:1e999", "loss:1_000",
                 "loss:0.5.5", "loss:\u0661"]:
        assert p.feed(line) == [], line
    assert p.values("loss") == []
    assert p.summary() == {} and p.observation() == {"metrics": []}
    assert p.ignored_values > 0


def test_binary_junk_and_invalid_utf8_never_crash() -> None:
    p = MetricsParser(["loss"])
    assert p.feed(b"\xff\xfe\x00loss=0.5\x80\xc3") == [("loss", 0.5)]
    p.feed_text(bytes(range(256)) * 50)
    p.feed(b"")
    p.feed("")
    assert p.feed(None) == []  # type: ignore[arg-type]
    assert p.values("loss") == [0.5]


def test_huge_lines_are_capped_and_fast() -> None:
    p = MetricsParser(["loss"])
    start = time.monotonic()
    assert p.feed("loss=0.1 " + "x" * 1_000_000) == [("loss", 0.1)]
    assert p.feed("a" * 1_000_000 + " loss=0.2") == []  # beyond the cap: not seen
    assert p.feed("loss " + "a" * (m.MAX_LINE - 5)) == []  # a long word run: linear, not quadratic
    assert p.feed(("ab|-" * 20_000) + "=1 loss=3") == []
    assert p.feed(b"loss=0.3 " + b"\x00" * 2_000_000) == [("loss", 0.3)]
    assert time.monotonic() - start < 2


def test_default_filter_matches_python_findall_semantics() -> None:
    import random
    import re

    regex = re.compile(m.DEFAULT_FILTER, re.ASCII)
    rng = random.Random(7)
    alphabet = "ab_|-= 1.5eE+-\t=x9"
    for _ in range(5000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        expected = [(x.group(1), x.group(2)) for x in regex.finditer(s)]
        assert list(m._default_matches(s)) == expected, s


# --------------------------------------------------------------------------- observation


def test_summary_min_max_latest() -> None:
    p = MetricsParser(["acc", "loss", "never"])
    p.feed_text("acc=0.5 loss=2\nacc=0.9 loss=1\nacc=0.7 loss=1.5\n")
    assert p.summary() == {
        "acc": {"min": 0.5, "max": 0.9, "latest": 0.7},
        "loss": {"min": 1.0, "max": 2.0, "latest": 1.5},
    }


def test_observation_shape_and_round_trip() -> None:
    p = MetricsParser(["a", "b", "never"])
    tricky = [0.1 + 0.2, 1 / 3, 1e-300, 123456789.123456789, -2.5e17, 5e-324]
    for v in tricky:
        p.feed(f"a={v!r}")
    p.feed("b=7")
    obs = p.observation()
    assert set(obs) == {"metrics"}
    assert [x["name"] for x in obs["metrics"]] == ["a", "b"]  # never reported: left out
    for entry in obs["metrics"]:
        assert set(entry) == {"name", "min", "max", "latest"}
        assert all(isinstance(entry[k], str) for k in entry)
    a = metric(obs, "a")
    assert float(a["min"]) == min(tricky) and float(a["max"]) == max(tricky) and float(a["latest"]) == tricky[-1]
    assert metric(obs, "b") == {"name": "b", "min": "7.0", "max": "7.0", "latest": "7.0"}
    assert json.loads(json.dumps(obs)) == obs


def test_objective_value() -> None:
    obs = {"metrics": [{"name": "acc", "min": "0.1", "max": "0.9", "latest": "0.5"},
                       {"name": "bad", "min": "unavailable", "max": "unavailable", "latest": "unavailable"}]}
    assert m.objective_value(obs, "acc", "min") == 0.1
    assert m.objective_value(obs, "acc", "max") == 0.9
    assert m.objective_value(obs, "acc", "latest") == 0.5
    assert m.objective_value(obs, "acc", "MAX") == 0.9
    assert m.objective_value(obs, "missing", "max") is None
    assert m.objective_value(obs, "bad", "max") is None
    assert m.objective_value({"metrics": []}, "acc", "max") is None
    assert m.objective_value({}, "acc", "max") is None
    with pytest.raises(ValueError, match="strategy"):
        m.objective_value(obs, "acc", "mean")


# --------------------------------------------------------------------------- run_trial


def test_run_trial_succeeded_streams_output(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = """
        import sys
        print("epoch 1: accuracy=0.8 loss=0.5")
        print("to stderr", file=sys.stderr)
        print("epoch 2: accuracy=0.9 loss=0.4")
        sys.stdout.write("accuracy=0.85")  # last line without a newline
    """
    log = tmp_path / "logs" / "trial.log"
    result = m.run_trial(py(code), objective="accuracy", metrics=["loss"], strategies={"accuracy": "max"},
                         log_path=str(log))
    assert result["condition"] == "Succeeded"
    assert result["reason"] == "TrialSucceeded"
    assert result["exitCode"] == 0
    assert result["objectiveValue"] == 0.9
    assert result["metrics"] == [
        {"name": "accuracy", "min": "0.8", "max": "0.9", "latest": "0.85"},
        {"name": "loss", "min": "0.4", "max": "0.5", "latest": "0.4"},
    ]
    out = capfd.readouterr().out
    assert "epoch 1: accuracy=0.8" in out and "to stderr" in out
    assert "to stderr" in log.read_text() and log.read_text().endswith("accuracy=0.85")


def test_run_trial_default_strategy_is_latest() -> None:
    result = m.run_trial(py("print('acc=3'); print('acc=1'); print('acc=2')"), objective="acc", metrics=[])
    assert result["objectiveValue"] == 2.0


def test_run_trial_failed_exit_code() -> None:
    result = m.run_trial(py("print('accuracy=0.9'); raise SystemExit(3)"), objective="accuracy", metrics=[])
    assert result["condition"] == "Failed"
    assert result["exitCode"] == 3
    assert (result["reason"], result["message"]) == ("TrialFailed", "the training process ended with exit code 3")
    assert result["objectiveValue"] == 0.9  # metrics reported before the failure are kept


def test_run_trial_killed_by_signal() -> None:
    result = m.run_trial(py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), objective="a", metrics=[])
    assert result["condition"] == "Failed"
    assert result["exitCode"] == 128 + signal.SIGKILL
    assert result["reason"] == "TrialFailed" and "SIGKILL" in result["message"]


def test_run_trial_metrics_unavailable() -> None:
    result = m.run_trial(py("print('nothing to see'); print('loss=0.1')"), objective="accuracy", metrics=["loss"])
    assert result["condition"] == "MetricsUnavailable"
    assert result["reason"].startswith("MetricsUnavailable")
    assert "'accuracy'" in result["message"]
    assert result["exitCode"] == 0
    assert result["objectiveValue"] is None
    assert [x["name"] for x in result["metrics"]] == ["loss"]


def test_run_trial_nan_objective_is_metrics_unavailable() -> None:
    result = m.run_trial(py("print('loss=nan')"), objective="loss", metrics=[])
    assert result["condition"] == "MetricsUnavailable"
    assert "not finite" in result["message"]


def test_run_trial_timeout_is_deadline_exceeded_and_quick() -> None:
    code = "import time; print('accuracy=0.3'); time.sleep(30)"
    start = time.monotonic()
    result = m.run_trial(py(code), objective="accuracy", metrics=[], timeout=0.5)
    assert time.monotonic() - start < 5
    assert result["condition"] == "Failed"
    assert result["reason"] == "DeadlineExceeded"
    assert result["objectiveValue"] == 0.3  # unbuffered child: the value printed before the kill is kept


def test_run_trial_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    code = f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(30)
    """
    start = time.monotonic()
    result = m.run_trial(py(code), objective="a", metrics=[], timeout=1.0)
    assert time.monotonic() - start < 6
    assert result["reason"] == "DeadlineExceeded"
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 3
    while _alive(grandchild) and time.monotonic() < deadline:  # SIGKILL is delivered asynchronously
        time.sleep(0.02)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_run_trial_does_not_wait_forever_for_background_children(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(m, "_DRAIN_GRACE", 0.3)
    code = """
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # inherits our stdout
        print("acc=1")
    """
    start = time.monotonic()
    result = m.run_trial(py(code), objective="acc", metrics=[])
    assert time.monotonic() - start < 5
    assert result["condition"] == "Succeeded"


def test_run_trial_command_not_found() -> None:
    result = m.run_trial(["hp-no-such-command-xyz", "--flag"], objective="a", metrics=[])
    assert result["condition"] == "Failed"
    assert "hp-no-such-command-xyz" in result["message"]
    assert result["exitCode"] is None
    assert result["objectiveValue"] is None and result["metrics"] == []


def test_run_trial_command_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "train.sh"
    script.write_text("echo a=1\n")
    result = m.run_trial([str(script)], objective="a", metrics=[])
    assert result["condition"] == "Failed" and str(script) in result["message"]


def test_run_trial_argument_reaches_child_verbatim(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    nasty = f"""a b 'c' "d" ; echo hi; $(touch {marker}) `touch {marker}` | & > x"""
    out = tmp_path / "argv.json"
    code = f"import json, sys; json.dump(sys.argv[1:], open({str(out)!r}, 'w')); print('a=1')"
    result = m.run_trial([PY, "-c", code, nasty, "*"], objective="a", metrics=[])
    assert result["condition"] == "Succeeded"
    assert json.loads(out.read_text()) == [nasty, "*"]
    assert not marker.exists()


def test_run_trial_file_collector_text(tmp_path: Path) -> None:
    path = tmp_path / "metrics.log"
    code = f"""
        print("acc=0.99 is printed but not collected")
        with open({str(path)!r}, "w") as f:
            f.write("2024-05-01T10:00:00Z acc=0.5 loss=2\\n")
            f.write("2024-05-01T10:00:01Z acc=0.7 loss=1\\n")
    """
    result = m.run_trial(py(code), objective="acc", metrics=["loss"], file_path=str(path),
                         strategies={"acc": "max", "loss": "min"})
    assert result["condition"] == "Succeeded"
    assert result["objectiveValue"] == 0.7
    assert metric({"metrics": result["metrics"]}, "loss") == {"name": "loss", "min": "1.0", "max": "2.0",
                                                               "latest": "1.0"}


def test_run_trial_file_collector_json(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    code = f"""
        import json
        with open({str(path)!r}, "w") as f:
            f.write(json.dumps({{"acc": "0.5", "timestamp": 1714557600.0}}) + "\\n")
            f.write("not json\\n")
            f.write(json.dumps({{"acc": 0.6, "timestamp": "2024-05-01T10:00:01Z"}}) + "\\n")
    """
    result = m.run_trial(py(code), objective="acc", metrics=[], file_path=str(path), file_format="JSON",
                         strategies={"acc": "latest"})
    assert result["condition"] == "Succeeded"
    assert result["objectiveValue"] == 0.6
    assert result["metrics"] == [{"name": "acc", "min": "0.5", "max": "0.6", "latest": "0.6"}]


def test_run_trial_file_collector_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "never-written.log"
    result = m.run_trial(py("print('acc=1')"), objective="acc", metrics=[], file_path=str(path))
    assert result["condition"] == "MetricsUnavailable"
    assert "does not exist" in result["message"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"command": "python -c pass"},
        {"command": []},
        {"strategies": {"acc": "mean"}},
        {"strategies": {"other": "max"}},
        {"timeout": -1},
        {"filters": ["(broken"]},
        {"file_format": "CSV"},
    ],
)
def test_run_trial_invalid_arguments_raise_value_error(kwargs: dict) -> None:
    args = {"command": py("pass"), "objective": "acc", "metrics": []}
    args.update(kwargs)
    command = args.pop("command")
    with pytest.raises(ValueError):
        m.run_trial(command, **args)


# --------------------------------------------------------------------------- command line


def cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "hp_components/metrics.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_cli_writes_output_json(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "dir" / "obs.json"
    proc = cli("--objective", "acc", "--metric", "loss", "--strategy", "acc=max", "--output", str(out),
               "--", PY, "-c", "print('acc=0.5 loss=1'); print('acc=0.75 loss=0.5')")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["condition"] == "Succeeded" and result["objectiveValue"] == 0.75
    assert [x["name"] for x in result["metrics"]] == ["acc", "loss"]
    assert "acc=0.75 loss=0.5" in proc.stdout  # training output passed through
    assert "Succeeded" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not [p for p in out.parent.iterdir() if p.name != "obs.json"]  # no temp file left behind


def test_cli_failed_trial_exits_zero(tmp_path: Path) -> None:
    out = tmp_path / "obs.json"
    proc = cli("--objective", "acc", "--output", str(out), "--", PY, "-c", "raise SystemExit(4)")
    assert proc.returncode == 0
    result = json.loads(out.read_text())
    assert result["condition"] == "Failed" and result["exitCode"] == 4


def test_cli_without_output_prints_result(tmp_path: Path) -> None:
    proc = cli("--objective", "acc", "--format", "json", "--file", str(tmp_path / "m.json"), "--", PY, "-c",
               f"open({str(tmp_path / 'm.json')!r}, 'w').write('{{\"acc\": 2}}')")
    assert proc.returncode == 0
    assert json.loads(proc.stdout.strip().splitlines()[-1])["objectiveValue"] == 2.0


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--objective", "acc"],
        ["--objective", "acc", "--"],
        ["--", PY, "-c", "pass"],
        ["--objective", "acc", "--timeout", "soon", "--", PY, "-c", "pass"],
        ["--objective", "acc", "--strategy", "acc", "--", PY, "-c", "pass"],
        ["--objective", "acc", "--strategy", "acc=mean", "--", PY, "-c", "pass"],
        ["--objective", "acc", "--filter", "(unclosed", "--", PY, "-c", "pass"],
        ["--objective", "acc", "--format", "XML", "--", PY, "-c", "pass"],
        ["--objective", "acc", "--bogus", "--", PY, "-c", "pass"],
    ],
)
def test_cli_bad_arguments_exit_two_without_traceback(args: list[str]) -> None:
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "error:" in proc.stderr


def test_cli_help_exits_zero() -> None:
    proc = cli("--help")
    assert proc.returncode == 0 and "--objective" in proc.stdout


def test_cli_main_in_process(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "obs.json"
    assert m.main(["--objective", "a", "--output", str(out), "--", PY, "-c", "print('a=1')"]) == 0
    assert json.loads(out.read_text())["objectiveValue"] == 1.0
    assert m.main(["--objective", "a"]) == 2
    assert "error:" in capfd.readouterr().err


def test_cli_forwards_sigterm_to_the_training(tmp_path: Path) -> None:
    out = tmp_path / "obs.json"
    code = "import time; print('acc=0.4', flush=True); time.sleep(30)"
    proc = subprocess.Popen([PY, "hp_components/metrics.py", "--objective", "acc", "--output", str(out), "--",
                             PY, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert "acc=0.4" in proc.stdout.readline()  # the training is running
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - start < 5
    assert proc.returncode == 0, err
    result = json.loads(out.read_text())
    assert result["condition"] == "Failed" and "SIGTERM" in result["message"]
    assert result["objectiveValue"] == 0.4


# --------------------------------------------------------------------------- packaging constraints


def test_module_syntax_is_python38_compatible() -> None:
    ast.parse(MODULE_PATH.read_text(), feature_version=(3, 8))


def test_public_api_names() -> None:
    for name in ("DEFAULT_FILTER", "MetricsParser", "objective_value", "run_trial", "main"):
        assert hasattr(m, name)
    assert isinstance(MetricsParser(["a"]).skipped_lines, int)
    assert math.isclose(m.objective_value({"metrics": [{"name": "a", "latest": "1e-3"}]}, "a", "latest"), 1e-3)


def test_script_is_not_shadowed_by_files_next_to_it(tmp_path: Path) -> None:
    (tmp_path / "metrics.py").write_bytes(MODULE_PATH.read_bytes())
    for name in ("json", "re", "argparse", "subprocess", "threading"):
        (tmp_path / f"{name}.py").write_text("raise ImportError('shadowed stdlib module was imported')\n")
    out = tmp_path / "obs.json"
    proc = subprocess.run([PY, str(tmp_path / "metrics.py"), "--objective", "a", "--output", str(out), "--",
                           PY, "-c", "print('a=5')"], cwd=tmp_path, capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["objectiveValue"] == 5.0
