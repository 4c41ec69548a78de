"""Part: slot utilisation of the local runner, before (a git commit) and after (this tree) side by side.

Utilisation = busy slot-seconds / (parallelTrialCount x wall): busy is the sum over trials of
what each trial itself measured from its first to its last line (``date +%s.%N`` in ``sh -c``,
around its sleep), wall is the ``run_local`` call to its return (start-up and shutdown included).
Two cases: (a) 3 s trials at parallelism 4 with ``bayesianoptimization`` (Optuna's GPSampler
after 10 initial points), target >= 90%; (b) 0.2 s trials at parallelism 4 with ``random``,
target >= 97%. Each run is a process of its own (``benchmarks/_slots_child.py``) importing
``hp_components`` from the tree under test; before and after alternate, so both see the same load::

    nice -n 19 python -m benchmarks slots --before main --repeats 3
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import io
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import median, write_result

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).with_name("_slots_child.py")

#: (name, algorithm, trials, parallel, sleep seconds, target utilisation)
CASES = [
    ("gp-3s", "bayesianoptimization", 28, 4, 3.0, 0.90),
    ("random-0.2s", "random", 100, 4, 0.2, 0.97),
]


def _export(ref: str, into: Path) -> str:
    """The tree of ``ref`` in ``into`` (git archive); returns its commit."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", ref], check=True, capture_output=True,
                            text=True).stdout.strip()
    data = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into)
    return commit


def _one(tree: Path, algorithm: str, trials: int, parallel: int, sleep: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    args = json.dumps({"algorithm": algorithm, "trials": trials, "parallel": parallel, "sleep": sleep})
    out = subprocess.run([sys.executable, str(CHILD), args], check=True, capture_output=True, text=True, env=env,
                         cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(before: str = "main", repeats: int = 1, out_dir: Path | None = None,
        cases: list[str] | None = None) -> dict[str, Any]:
    chosen = [c for c in CASES if cases is None or c[0] in cases]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "hp_components"],
                                capture_output=True, text=True).stdout.strip())
    results: dict[str, dict[str, list[dict[str, Any]]]] = {c[0]: {"before": [], "after": []} for c in chosen}
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        old.mkdir()
        before_commit = _export(before, old)
        for _ in range(repeats):
            for name, algorithm, trials, parallel, sleep, _target in chosen:
                for label, tree in (("before", old), ("after", ROOT)):
                    r = _one(tree, algorithm, trials, parallel, sleep)
                    results[name][label].append(r)
                    print(f"slots {name} {label}: utilisation {r['utilisation']:.1%} (steady {r['steady_utilisation']:.1%}, "
                          f"start-up {r['startup_s']:.2f} s, {r.get('fillers', 0)} fillers), wall {r['wall_s']:.2f} s, "
                          f"refill wait median {r['refill_wait_s_median'] or 0:.3f} s max {r['refill_wait_s_max'] or 0:.3f} s, "
                          f"{r['unique_configurations']}/{r['trials']} unique, load {r['loadavg_1m_before']:.1f}",
                          flush=True)
    summary = []
    for name, algorithm, trials, parallel, sleep, target in chosen:
        row: dict[str, Any] = {"case": name, "algorithm": algorithm, "trials": trials, "parallel": parallel,
                               "sleep_s": sleep, "target": target}
        for label in ("before", "after"):
            runs = results[name][label]
            row[f"{label}_utilisation_median"] = median([r["utilisation"] for r in runs])
            row[f"{label}_steady_utilisation_median"] = median([r["steady_utilisation"] for r in runs])
            row[f"{label}_startup_s_median"] = median([r["startup_s"] for r in runs])
            row[f"{label}_wall_s_median"] = median([r["wall_s"] for r in runs])
            row[f"{label}_refill_wait_s_median"] = median([r["refill_wait_s_median"] or 0 for r in runs])
            row[f"{label}_unique_min"] = min(r["unique_configurations"] for r in runs)
        summary.append(row)
    what = ("slot utilisation = busy slot-seconds (each trial's own first-to-last line) / (parallel x wall of the "
            f"run_local call), median of {repeats} interleaved run(s); before = {before} ({before_commit[:10]}), after = "
            f"{head[:10]}{' + uncommitted changes' if dirty else ''}. "
            + "; ".join(f"{r['case']}: {r['before_utilisation_median']:.1%} -> {r['after_utilisation_median']:.1%} "
                        f"(target {r['target']:.0%}; first start to last end {r['before_steady_utilisation_median']:.1%} -> "
                        f"{r['after_steady_utilisation_median']:.1%})" for r in summary))
    doc = {"what": what, "before": before, "before_commit": before_commit, "after_commit": head,
           "after_uncommitted": dirty, "repeats": repeats, "summary": summary, "runs": results}
    write_result("slots", doc, out_dir)
    print(what, flush=True)
    return doc
