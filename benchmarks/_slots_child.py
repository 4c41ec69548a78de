"""One run of the slots benchmark (run by :mod:`benchmarks.slots` in a process of its own).

Standard library and ``hp_components`` only, executed by path with ``PYTHONPATH`` set to the source
tree under test, so that the same measurement runs against an older commit (``before``) and the
working tree (``after``). Prints one JSON line::

    PYTHONPATH=/path/to/tree python benchmarks/_slots_child.py '{"algorithm": "random", "trials": 20, ...}'

Each trial is ``sh -c`` that prints ``hp-slot-start <epoch>``, sleeps, prints its objective (a quadratic in x
and y, so that the GP has something to model), then ``hp-slot-end <epoch>`` (``date +%s.%N``: the
times come from the trial itself).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _experiment(name: str, algorithm: str, trials: int, parallel: int, sleep: float) -> dict:
    script = ('echo hp-slot-start $(date +%s.%N); sleep ' + repr(sleep) + '; '
              'awk -v x="$1" -v y="$2" \'BEGIN { printf "objective=%.6f\\n", (x - 0.3) ^ 2 + (y - 0.6) ^ 2 }\'; '
              'echo hp-slot-end $(date +%s.%N)')
    params = [{"name": n, "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}} for n in ("x", "y")]
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "objective"},
            "algorithm": {"algorithmName": algorithm, "algorithmSettings": [{"name": "random_state", "value": "0"}]},
            "parallelTrialCount": parallel, "maxTrialCount": trials, "maxFailedTrialCount": trials,
            "parameters": params,
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": n, "reference": n} for n in ("x", "y")],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "containers": [{"name": "main", "image": "busybox", "command": [
                        "/bin/sh", "-c", script, "sh", "${trialParameters.x}", "${trialParameters.y}"]}],
                    "restartPolicy": "Never"}}}},
            },
        },
    }


def main(args: dict) -> dict:
    from hp_components.experiment import parse_experiment
    from hp_components.local import run_local

    import hp_components
    exp = parse_experiment(_experiment("slots", args["algorithm"], args["trials"], args["parallel"], args["sleep"]))
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        result = run_local(exp, storage=f"sqlite:///{tmp}/hp.db", run_dir=Path(tmp) / "runs", workdir=tmp)
        t1 = time.time()
        spans = []
        for t in result.history:
            log = (Path(tmp) / "runs" / "slots" / t.name / "output.log").read_text().split()
            spans.append((float(log[log.index("hp-slot-start") + 1]), float(log[log.index("hp-slot-end") + 1])))
    succeeded = sum(t.condition == "Succeeded" for t in result.history)
    p, wall = args["parallel"], t1 - t0
    busy = sum(b - a for a, b in spans)
    # how long a freed slot stayed idle: each trial end (but the last p) to the first start after it
    starts, ends = sorted(a for a, _ in spans), sorted(b for _, b in spans)
    waits = []
    for e in ends[:-p]:
        later = [s for s in starts if s >= e]
        if later:
            waits.append(later[0] - e)
            starts.remove(later[0])
    keys = {tuple(sorted(t.assignments.items())) for t in result.history}
    waits.sort()
    return {
        "source": str(Path(hp_components.__file__).parent.parent), "wall_s": wall, "busy_slot_s": busy,
        "utilisation": busy / (p * wall), "trials": len(result.history), "succeeded": succeeded,
        # the same between the first trial's start and the last one's end (start-up and shutdown left out)
        "steady_utilisation": busy / (p * (max(b for _, b in spans) - min(a for a, _ in spans))),
        "fillers": sum(bool(t.system_attrs.get("hp:filler")) for t in result.history),
        "unique_configurations": len(keys), "refill_wait_s_median": waits[len(waits) // 2] if waits else None,
        "refill_wait_s_max": waits[-1] if waits else None, "startup_s": min(a for a, _ in spans) - t0,
        "shutdown_s": t1 - max(b for _, b in spans), "loadavg_1m_before": load0, "loadavg_1m_after": os.getloadavg()[0],
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
