"""Peak memory of the local runner and of the trial wrapper while a trial prints a lot (issue 15, point 5).

A real trial prints ``--mb`` MB (default 100) to stdout in one of three shapes: ``metric-lines`` (every
line ``epoch=N loss=0.5``: the worst case for whatever is kept per value), ``plain-lines`` (80-character
lines without a metric name) and ``one-line`` (no newline at all). It runs under ``hp-tune run`` (a fresh
SQLite store) and under the wrapper ``python -m hp_components.metrics``; the peak RSS of that runner (or
wrapper) process alone is its ``VmHWM`` in /proc, read until it exits (Linux). ``--code DIR`` runs another
checkout's ``hp_components`` (e.g. ``git archive <commit> hp_components | tar -x -C DIR``), so a before
and after are measured side by side in one run::

    nice -n 19 python -m benchmarks.memory --code before=/tmp/before --code after=. --mb 100
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import common

SHAPES = ("metric-lines", "plain-lines", "one-line")

#: the trial: writes ``mb`` MB of ``shape`` in 1 MB blocks, then the objective once
TRIAL = r"""
import sys
mb, shape = int(sys.argv[1]), sys.argv[2]
if shape == "metric-lines":
    block = "".join(f"epoch={i} loss=0.5\n" for i in range(55_000))
elif shape == "plain-lines":
    block = ("x" * 79 + "\n") * 13_108
else:
    block = "y" * (1 << 20)
block = block[: 1 << 20].encode()
out = sys.stdout.buffer
for _ in range(mb):
    out.write(block)
out.write(b"\nloss=0.25\n")
out.flush()
"""


def _spec(mb: int, shape: str) -> str:
    import yaml

    return yaml.safe_dump({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "memory"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"}, "parallelTrialCount": 1, "maxTrialCount": 1,
            "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "restartPolicy": "Never", "containers": [{"name": "main", "image": "python:3.11", "command": [
                        sys.executable, "-c", TRIAL, str(mb), shape, "--x=${trialParameters.x}"]}]}}}},
            },
        },
    })


def _peak_rss(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, float, int]:
    """(peak RSS in KiB of that process alone, wall seconds, exit code), polling /proc/<pid>/status."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return peak, time.monotonic() - start, proc.returncode


def measure(code: Path, target: str, mb: int, shape: str) -> dict[str, Any]:
    """One run of ``target`` (runner or wrapper) with ``code``'s hp_components."""
    env = {**os.environ, "PYTHONPATH": str(code.resolve())}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if target == "runner":
            (work / "exp.yaml").write_text(_spec(mb, shape))
            argv = [sys.executable, "-m", "hp_components.cli", "run", "exp.yaml", "-q",
                    "--storage", f"sqlite:///{work}/s.db", "--run-dir", str(work / "runs")]
        else:
            argv = [sys.executable, "-m", "hp_components.metrics", "--objective", "loss", "--output", "out.json",
                    "--", sys.executable, "-c", TRIAL, str(mb), shape]
        peak, wall, rc = _peak_rss(argv, env, work)
    return {"target": target, "shape": shape, "mb": mb, "peak_rss_mib": round(peak / 1024, 1),
            "wall_s": round(wall, 1), "exit_code": rc}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.splitlines()[0])
    p.add_argument("--code", action="append", default=[], metavar="LABEL=DIR",
                   help="a checkout whose hp_components to run (default: this one, labelled 'current')")
    p.add_argument("--mb", type=int, default=100, help="MB the trial prints (default 100)")
    p.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated subset of {','.join(SHAPES)}")
    p.add_argument("--targets", default="runner,wrapper", help="runner,wrapper or one of them")
    p.add_argument("--out", type=Path, default=common.RESULTS)
    a = p.parse_args(argv)
    common.COMMAND[:] = ["python", "-m", "benchmarks.memory", *(sys.argv[1:] if argv is None else argv)]
    codes = [tuple(c.split("=", 1)) for c in a.code] or [("current", str(Path(__file__).parents[1]))]
    rows = []
    for shape in a.shapes.split(","):
        for target in a.targets.split(","):
            for label, code in codes:  # side by side: each shape and target measured for every checkout in turn
                row = {"code": label, **measure(Path(code), target, a.mb, shape)}
                print(row, flush=True)
                rows.append(row)
    common.write_result("memory", {"mb": a.mb, "codes": dict(codes), "rows": rows}, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
