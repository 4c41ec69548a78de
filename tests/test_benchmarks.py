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
