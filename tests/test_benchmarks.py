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
    assert main(["steps", "--sizes", "0,20", "--repeats", "1", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "steps.json").read_text())
    assert doc["command"] == "python -m benchmarks steps --sizes 0,20 --repeats 1 --out " + str(tmp_path)
    assert len(doc["load_average_at_start"]) == 3 and "optuna" in doc["versions"]
    assert [r["history"] for r in doc["results"]] == [0, 20]
    for r in doc["results"]:
        for k in ("suggest", "collect", "plain_suggest", "plain_collect"):
            assert r[f"{k}_median_s"] > 0 and r[f"{k}_cpu_median_s"] > 0 and len(r[f"{k}_all_s"]) == 1
        assert r["ratio_suggest_to_plain"] == r["suggest_median_s"] / r["plain_suggest_median_s"]
    assert [r["plain_sampler"] for r in doc["results"]] == ["gp", "gp"]


def test_gp_part_compares_with_a_fresh_gpsampler(tmp_path):
    assert main(["gp", "--quick", "--out", str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "gp.json").read_text())["results"]
    assert row["history"] == 12 and row["count"] == 8 and row["repeats"] == 1
    assert row["ratio_cpu"] == row["ours_cpu_median_s"] / row["plain_gpsampler_cpu_median_s"] > 0
