"""A lane-suggest step pod's cost: the whole ``hp-tune step lane-suggest`` process, before (a git commit) and
after (this tree) side by side.

``python -m benchmarks.lane_pod --storage URL [--before REF] [--repeats 12]`` writes ``results/lane_pod.json``.

Each repeat runs the step once with each tree's ``hp_components`` (``PYTHONPATH``), alternating, as a step
pod would: a new interpreter, the imports, opening the store, the claim (TPE, one trial created Running,
left running: the experiment allows as many at once as the benchmark makes), the claim's JSON printed.
Both trees claim in one experiment of their own, so each claim sees the same history size. Wall time of
the process, start to exit; the pod's own start on a cluster (image pull, scheduling) is not in it. The
password comes from ``HP_STORAGE_PASSWORD`` when the URL has none, as in a pod::

    HP_STORAGE_PASSWORD=hp python -m benchmarks.lane_pod --storage postgresql+psycopg://hp@127.0.0.1/hp --before a8d9e6d
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from benchmarks import common
from benchmarks.common import median, write_result
from benchmarks.slots import ROOT, _export

EXPERIMENT = ROOT / "examples" / "random-digits.yaml"


def _spec(name: str, trials: int) -> dict[str, Any]:
    """The README's example as an experiment for the claims: TPE, no slot limit within ``trials``."""
    spec = yaml.safe_load(EXPERIMENT.read_text())
    spec["metadata"]["name"] = name
    spec["spec"].update(maxTrialCount=trials, parallelTrialCount=trials, algorithm={"algorithmName": "tpe"})
    return spec


def _claim(tree: Path, spec_path: Path, url: str, run: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hp_components.cli", "step", "lane-suggest", "--experiment", str(spec_path),
                    "--storage", url, "--lane", "0", "--run", run, "--wait", "0"], check=True, env=env,
                   stdout=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    return time.perf_counter() - t0


def run(storage: str, before: str, repeats: int, out_dir: Path | None = None) -> Path:
    tag = uuid.uuid4().hex[:6]
    times: dict[str, list[float]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        before_commit = _export(before, old)
        trees = {"before": old, "after": ROOT}
        specs = {}
        for label in trees:
            specs[label] = Path(tmp) / f"{label}.yaml"
            specs[label].write_text(yaml.safe_dump(_spec(f"bench-pod-{label}-{tag}", repeats + 1)))
        for label, tree in trees.items():  # each experiment created, each tree's bytecode compiled: not timed
            _claim(tree, specs[label], storage, "warm")
        for i in range(repeats):
            for label, tree in (trees.items() if i % 2 == 0 else reversed(trees.items())):
                times[label].append(_claim(tree, specs[label], storage, f"r{i}"))
    data = {"storage": storage.split("://", 1)[0], "before": before, "before_commit": before_commit,
            "repeats": repeats, "before_wall_s_all": times["before"], "after_wall_s_all": times["after"],
            "before_wall_median_s": median(times["before"]), "after_wall_median_s": median(times["after"]),
            "after_over_before": median(times["after"]) / median(times["before"]),
            "what": "whole-process `hp-tune step lane-suggest` (interpreter, imports, open the store, claim one TPE "
                    "trial) with each tree's hp_components, alternating; history 0 to repeats"}
    return write_result("lane_pod", data, out_dir)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lane_pod", description=__doc__.splitlines()[0])
    p.add_argument("--storage", default=os.environ.get("HP_BENCH_STORAGE"), required=not os.environ.get("HP_BENCH_STORAGE"))
    p.add_argument("--before", default="main")
    p.add_argument("--repeats", type=int, default=12)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    common.COMMAND[:] = ["python", "-m", "benchmarks.lane_pod", *sys.argv[1:]]
    print(run(a.storage, a.before, a.repeats, a.out))


if __name__ == "__main__":
    main()
