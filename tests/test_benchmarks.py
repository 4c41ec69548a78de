"""The benchmark harness runs and writes well-formed results (speed is measured there, not asserted here)."""

from __future__ import annotations

import json
import sys

from benchmarks.__main__ import main


def test_quick_latency_writes_a_result_file(tmp_path):
    assert main(["latency", "--quick", "--sizes", "0,5", "--algorithms", "random,tpe,auto", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "latency.json").read_text())
    assert doc["command"].startswith("python -m benchmarks latency --quick")
    assert {"date", "machine", "versions", "results"} <= set(doc)
    assert doc["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "optuna" in doc["versions"] and doc["machine"]["cpus"]
    rows = doc["results"]
    assert [(r["algorithm"], r["history"]) for r in rows] == [
        (a, n) for a in ("random", "tpe", "auto") for n in (0, 5)]
    for r in rows:
        assert r["batch"] == 8 and r["ours_median_s"] > 0 and len(r["ours_all_s"]) == 1
    assert all("plain_optuna_median_s" in r for r in rows if r["algorithm"] != "auto")
    assert [r["auto_choice"] for r in rows if r["algorithm"] == "auto"] == ["bayesianoptimization"] * 2


def test_steps_part_times_the_step_processes_against_plain_optuna(tmp_path):
    assert main(["steps", "--sizes", "0,100", "--repeats", "1", "--count", "2", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "steps.json").read_text())
    assert doc["command"] == "python -m benchmarks steps --sizes 0,100 --repeats 1 --count 2 --out " + str(tmp_path)
    assert len(doc["load_average_at_start"]) == 3 and "optuna" in doc["versions"]
    assert [r["history"] for r in doc["results"]] == [0, 100]
    for r in doc["results"]:
        for k in ("suggest", "collect", "plain_suggest", "plain_collect"):
            assert r[f"{k}_median_s"] > 0 and r[f"{k}_cpu_median_s"] > 0 and len(r[f"{k}_all_s"]) == 1
        assert r["count"] == 2
        assert r["ratio_suggest_to_plain"] == r["suggest_median_s"] / r["plain_suggest_median_s"]
    assert [r["plain_sampler"] for r in doc["results"]] == ["gp", "tpe"]  # auto: the GP under 100 trials, TPE from 100


def test_gp_part_compares_with_a_fresh_gpsampler(tmp_path):
    assert main(["gp", "--quick", "--out", str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "gp.json").read_text())["results"]
    assert row["history"] == 12 and row["count"] == 8 and row["repeats"] == 1
    assert row["ratio_cpu"] == row["ours_cpu_median_s"] / row["plain_gpsampler_cpu_median_s"] > 0


def test_quality_batch3_runs_every_gp_peer_and_merges_side_by_side_runs(tmp_path):
    """batch3 asks 3 before any is told; BoTorch's peer models from its first result after the
    Sobol start; --merge folds another folder's cells in, each row keeping its own command."""
    import pytest

    pytest.importorskip("botorch")
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["quality", "--modes", "batch3", "--functions", "branin", "--algorithms", "botorch-qlognei,auto",
                 "--seeds", "1", "--trials", "11", "--out", str(a)]) == 0
    assert main(["quality", "--modes", "sequential", "--functions", "mixed", "--algorithms", "random",
                 "--seeds", "2", "--trials", "5", "--out", str(b)]) == 0
    doc = json.loads((a / "quality.json").read_text())
    assert [(r["mode"], r["algorithm"]) for r in doc["results"]] == [("batch3", "botorch-qlognei"), ("batch3", "auto")]
    assert all(r["regrets"][0] >= 0 and r["trials"] == 11 for r in doc["results"])
    trace = doc["median_regret_traces"]["branin/batch3/botorch-qlognei"]
    assert len(trace) == 11 and trace == sorted(trace, reverse=True)
    assert main(["quality", "--merge", str(b), "--out", str(a)]) == 0
    merged = json.loads((a / "quality.json").read_text())
    assert {(r["function"], r["mode"], r["algorithm"]) for r in merged["results"]} == {
        ("branin", "batch3", "botorch-qlognei"), ("branin", "batch3", "auto"), ("mixed", "sequential", "random")}
    assert {r["measured_by"] for r in merged["results"]} == {
        f"python -m benchmarks quality --modes batch3 --functions branin --algorithms botorch-qlognei,auto --seeds 1 "
        f"--trials 11 --out {a}",
        f"python -m benchmarks quality --modes sequential --functions mixed --algorithms random --seeds 2 --trials 5 "
        f"--out {b}"}
    assert [m["command"].split(" --out")[0] for m in merged["merged_from"]] == [
        "python -m benchmarks quality --modes sequential --functions mixed --algorithms random --seeds 2 --trials 5"]


def test_lane_pod_part_times_the_whole_step_process_of_both_trees(tmp_path):
    """benchmarks.lane_pod: each tree's lane-suggest step as a process, alternating, one experiment each (a
    SQLite store here; the recorded run is on PostgreSQL); every claim a trial of its own tree's experiment."""
    import optuna

    from benchmarks.lane_pod import run

    url = f"sqlite:///{tmp_path}/hp.db"
    doc = json.loads(run(url, "HEAD", 2, tmp_path).read_text())
    assert doc["repeats"] == 2 and len(doc["before_wall_s_all"]) == len(doc["after_wall_s_all"]) == 2
    assert doc["after_over_before"] == doc["after_wall_median_s"] / doc["before_wall_median_s"] > 0
    studies = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(url)}
    assert sorted(studies.values()) == [3, 3] and all(n.startswith("bench-pod-") for n in studies)
