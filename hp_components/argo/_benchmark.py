"""Size of the generated Argo YAML and an estimate of the Workflow status a round adds.

    python -m hp_components.argo._benchmark    # writes benchmarks/results/argo-size.json

The status estimate builds the node statuses one round creates (the loop's Steps node and its
three StepGroup nodes; per trial the Retry node, its Steps attempt, the attempt's StepGroup and
the Pod, each with the trial's inputs, the outer three with its observation; the collect Pod with
its outputs; the step that recurses) from real step outputs (``suggest_step``/``collect_step`` on a synthetic history), shaped
like Argo's NodeStatus, and measures their JSON.
"""

from __future__ import annotations

import gzip
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from hp_components.argo._compile import workflow_template
from hp_components.experiment import load_experiment
from hp_components.steps import collect_step, fan_out_items, status_summary, suggest_step
from hp_components.trials import load_history

ROOT = Path(__file__).resolve().parents[2]


def _node(name: str, kind: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    return {"id": "random-digits-x7k2p-1234567890", "name": name, "displayName": name.rsplit(".", 1)[-1], "type": kind,
            "templateName": name.rsplit(".", 1)[-1].split("(")[0], "templateScope": "local/random-digits-x7k2p",
            "phase": "Succeeded", "boundaryID": "random-digits-x7k2p-1234567890", "startedAt": "2026-11-29T00:00:00Z",
            "finishedAt": "2026-11-29T00:00:10Z", "progress": "1/1", "resourcesDuration": {"cpu": 10, "memory": 10},
            "hostNodeName": "node-1", "children": ["random-digits-x7k2p-1234567891"], "inputs": inputs, "outputs": outputs}


def status_per_round(exp: Any, rounds: int) -> tuple[list[int], int]:
    """Bytes of node status each round adds, and all rounds' nodes gzipped (Argo compresses the
    node map into ``status.compressedNodes`` when the object grows large)."""
    history: list[dict[str, Any]] = []
    sizes = []
    every: list[dict[str, Any]] = []
    for r in range(rounds):
        batch = suggest_step(exp, load_history(history))
        if not batch:
            break
        obs = [{"name": t["name"], "condition": "Succeeded", "reason": "TrialSucceeded", "exitCode": 0,
                "metrics": [{"name": m, "min": "0.81234567", "max": "0.9345678", "latest": "0.9345678"}
                            for m in exp.spec.objective.metric_names], "objectiveValue": 0.9345678} for t in batch]
        out = collect_step(exp, load_history(history), batch, obs, suggest_next=True)
        history = out["history"]
        art = {"artifacts": [{"name": "history", "s3": {"key": "random-digits-x7k2p/random-digits-x7k2p-1234567890/history.tgz"}},
                             {"name": "batch", "s3": {"key": "random-digits-x7k2p/random-digits-x7k2p-1234567890/batch.tgz"}}]}
        prefix = "random-digits-x7k2p" + "[1].loop[2].next" * r
        loop = f"{prefix}[1].loop" if r == 0 else prefix
        nodes = [_node(loop, "Steps", {"parameters": [{"name": "trials", "value": json.dumps(fan_out_items(batch))}], **art}, {})]
        nodes += [_node(f"{loop}[{g}]", "StepGroup", {}, {}) for g in range(3)]
        aggregate = []
        for i, (t, o) in enumerate(zip(batch, obs)):
            item = fan_out_items([t])[0]
            params = [{"name": k, "value": v} for k, v in item.items()]
            observation = {"parameters": [{"name": "observation", "value": json.dumps(o)}]}
            name = f"{loop}[0].trial({i}:{','.join(sorted(f'{k}:{v}' for k, v in item.items()))})"
            nodes.append(_node(name, "Retry", {"parameters": params}, observation))
            nodes.append(_node(f"{name}(0)", "Steps", {"parameters": params}, observation))
            nodes.append(_node(f"{name}(0)[0]", "StepGroup", {}, {}))
            nodes.append(_node(f"{name}(0)[0].run", "Pod", {"parameters": params}, {**observation, "exitCode": "0"}))
            aggregate.append({"observation": json.dumps(o)})
        nodes.append(_node(f"{loop}[1].collect", "Pod",
                           {"parameters": [{"name": "observations", "value": json.dumps(aggregate)}], **art},
                           {"parameters": [{"name": "done", "value": str(out["done"]).lower()},
                                           {"name": "best-trial", "value": json.dumps(out["best"])},
                                           {"name": "best", "value": json.dumps(out["best"]["parameters"])},
                                           {"name": "objective", "value": str(out["best"]["objective"])},
                                           {"name": "status", "value": json.dumps(status_summary(out["status"]))},
                                           {"name": "trials", "value": json.dumps(fan_out_items(out["next"]))}], **art}))
        nodes.append(_node(f"{loop}[2].next", "Skipped" if out["done"] else "Steps", {}, {}))
        sizes.append(sum(len(json.dumps(n)) for n in nodes))
        every += nodes
        if out["done"]:
            break
    return sizes, len(gzip.compress(json.dumps(every).encode()))


def main() -> None:
    exp = load_experiment(ROOT / "examples" / "random-digits.yaml")
    yaml_sizes = []
    for trials, parallel in ((12, 3), (100, 10), (900, 10)):
        data = exp.to_dict()
        data["spec"].update(maxTrialCount=trials, parallelTrialCount=parallel)
        e = load_experiment(data)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            text = yaml.safe_dump(workflow_template(e), sort_keys=False, width=1 << 20)
            times.append(time.perf_counter() - t0)
        yaml_sizes.append({"maxTrialCount": trials, "parallelTrialCount": parallel,
                           "rounds": math.ceil(trials / parallel), "bytes": len(text),
                           "compile_seconds_median": round(statistics.median(times), 4)})
    data = exp.to_dict()
    data["spec"].update(maxTrialCount=900, parallelTrialCount=10)
    per_round, compressed = status_per_round(load_experiment(data), 90)
    result = {
        "command": "python -m hp_components.argo._benchmark",
        "what": "generated WorkflowTemplate size (the same whatever maxTrialCount: the loop recurses) and the "
                "estimated Workflow status each round adds (node statuses built from real step outputs)",
        "limit": "etcd caps an object at about 1.5 MiB; Argo nests templates at most 100 deep (90 rounds allowed)",
        "environment": {"python": sys.version.split()[0], "machine": platform.machine()},
        "yaml": yaml_sizes,
        "status_bytes_per_round": {"experiment": "random-digits, 10 trials a round", "rounds": len(per_round),
                                   "first": per_round[0], "median": int(statistics.median(per_round)),
                                   "last": per_round[-1], "total_after_90_rounds": sum(per_round),
                                   "total_after_90_rounds_gzipped": compressed},
    }
    out = ROOT / "benchmarks" / "results" / "argo-size.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
