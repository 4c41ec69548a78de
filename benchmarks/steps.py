"""The ``hp-tune step suggest`` / ``step collect`` pods as whole processes, next to plain Optuna.

What every suggest and collect pod of a KFP/Argo run pays: a fresh Python process that reads
the history JSON, rebuilds a study and asks a batch. Each cell runs three commands as separate
processes, interleaved (suggest, collect, plain, suggest, collect, plain, ...) so that load on a
shared machine hits them alike, and reports the medians of wall and CPU time (user + system: the
steadier one on a shared machine) and their ratios to plain:

* ``suggest``: ``hp-tune step suggest --experiment <inline JSON> --history h.json --count 8
  --trials-out ... --items-out ...`` (as the Argo suggest step, with a history);
* ``collect``: ``hp-tune step collect`` with the Argo collect step's arguments: the history, the
  batch just run and its 8 observations; it records them and suggests the next 8;
* ``plain``: ``python -c PLAIN`` importing only optuna: it reads the same history JSON, turns
  every record into a FrozenTrial, rebuilds an in-memory study with the sampler ``auto`` uses at
  that size and asks 8 (for ``collect``'s cell it also appends the 8 observed trials first).

The space is the 6-dimensional mixed one of the latency part; the algorithm is ``auto`` (the GP's
Sobol design at history 0, multivariate TPE from 100 on), batch 8::

    python -m benchmarks steps --sizes 0,100,1000 --repeats 5
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import experiment, median, write_result
from benchmarks.functions import LATENCY_SPACE, latency_objective
from benchmarks.latency import synthetic_history
from hp_components.algorithms import auto_choice
from hp_components.trials import dump_history, trial_name

#: the plain-Optuna process: argv = history.json, sampler (tpe|gp), count, out.json[, batch.json, obs.json]
PLAIN = r"""
import json, sys
import optuna
from optuna.distributions import CategoricalDistribution as C, FloatDistribution as F, IntDistribution as I
from optuna.trial import TrialState, create_trial

optuna.logging.set_verbosity(optuna.logging.ERROR)
dists = {"lr": F(1e-5, 1e-1, log=True), "dropout": F(0.0, 0.5), "momentum": F(0.5, 0.99),
         "layers": I(1, 8), "units": I(16, 1024, log=True), "opt": C(["sgd", "adam", "rmsprop"])}
conv = {"lr": float, "dropout": float, "momentum": float, "layers": int, "units": int, "opt": str}
history = json.load(open(sys.argv[1]))
if len(sys.argv) > 5:  # collect: the batch's observations join the history
    batch, obs = json.load(open(sys.argv[5])), json.load(open(sys.argv[6]))
    for item, o in zip(batch, obs):
        history.append({"parameterAssignments": item["parameterAssignments"], "condition": o["condition"],
                        "objectiveValue": float(o["metrics"][0]["latest"])})
trials = [create_trial(state=TrialState.COMPLETE, value=t["objectiveValue"], distributions=dists,
                       params={a["name"]: conv[a["name"]](a["value"]) for a in t["parameterAssignments"]})
          for t in history if t["condition"] == "Succeeded"]
if sys.argv[2] == "gp":
    # the GP from the first completed trials on, as auto's (its first 10 points only fill the design)
    sampler = optuna.samplers.GPSampler(seed=1, n_startup_trials=min(10, len(trials)))
else:
    sampler = optuna.samplers.TPESampler(seed=1, multivariate=True, group=True, constant_liar=True)
study = optuna.create_study(direction="minimize", sampler=sampler)
study.add_trials(trials)
asked = [study.ask(dists).params for _ in range(int(sys.argv[3]))]
json.dump(asked, open(sys.argv[4], "w"))
"""


def _hp_tune() -> str:
    """The ``hp-tune`` console script of this Python (what the pods run)."""
    script = Path(sys.executable).parent / "hp-tune"
    return str(script) if script.exists() else "hp-tune"


def _observations(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the metrics wrapper writes for each trial of the batch (Succeeded, the objective)."""
    out = []
    for item in batch:
        assignments = {a["name"]: a["value"] for a in item["parameterAssignments"]}
        v = repr(latency_objective(assignments))
        out.append({"name": item["name"], "condition": "Succeeded", "reason": "", "message": "",
                    "metrics": [{"name": "objective", "min": v, "max": v, "latest": v}]})
    return out


def _commands(work: Path, exp_json: str, n: int, count: int) -> dict[str, list[str]]:
    """The three commands of a cell, with their input files written to ``work``."""
    history = synthetic_history(LATENCY_SPACE, n, seed=n)
    (work / "history.json").write_text(dump_history(history))
    # the batch collect records: the next 8 names, at random points of the space
    later = synthetic_history(LATENCY_SPACE, n + count, seed=n + 1)[n:]
    batch = [{"name": trial_name("steps", n + i), "parameterAssignments":
              [{"name": k, "value": v} for k, v in t.assignments.items()]} for i, t in enumerate(later)]
    (work / "batch.json").write_text(json.dumps(batch))
    (work / "obs.json").write_text(json.dumps(_observations(batch)))
    out = work / "out"
    out.mkdir(exist_ok=True)
    hp = _hp_tune()
    return {
        "suggest": [hp, "step", "suggest", "--experiment", exp_json, "--history", str(work / "history.json"),
                    "--count", str(count), "--trials-out", str(out / "s-batch.json"),
                    "--items-out", str(out / "s-items.json")],
        "collect": [hp, "step", "collect", "--experiment", exp_json, "--history", str(work / "history.json"),
                    "--trials", str(work / "batch.json"), "--observations", str(work / "obs.json"),
                    "--history-out", str(out / "history.json"), "--done-out", str(out / "done"),
                    "--best-out", str(out / "best.json"), "--best-parameters-out", str(out / "best-parameters.json"),
                    "--objective-out", str(out / "objective"), "--summary-out", str(out / "status.json"),
                    "--next-trials-out", str(out / "c-batch.json"), "--next-items-out", str(out / "c-items.json")],
        "plain_suggest": [sys.executable, "-c", PLAIN, str(work / "history.json"), "", str(count),
                          str(out / "p-batch.json")],
        "plain_collect": [sys.executable, "-c", PLAIN, str(work / "history.json"), "", str(count),
                          str(out / "pc-batch.json"), str(work / "batch.json"), str(work / "obs.json")],
    }


#: the processes' environment: bytecode may be written (the untimed warm-up run caches it), as in the
#: step image, where ``pip install`` compiled the package; with PYTHONDONTWRITEBYTECODE set, every timed
#: run of the steps would compile the project's modules from source (plain's are all compiled already)
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _time(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of the process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_ENV)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(sizes=(0, 100, 1000), repeats: int = 5, count: int = 8, out_dir=None) -> dict[str, Any]:
    load = list(os.getloadavg())
    exp = experiment("steps", LATENCY_SPACE, algorithm="auto", max_trials=5000, parallel=count, seed=1)
    exp_json = exp.to_json()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hp-steps-bench-") as tmp:
        for n in sizes:
            work = Path(tmp) / str(n)
            work.mkdir()
            cmds = _commands(work, exp_json, n, count)
            sampler = {"bayesianoptimization": "gp"}.get(auto_choice(exp.spec, n), "tpe")
            cmds["plain_suggest"][4] = sampler
            cmds["plain_collect"][4] = {"bayesianoptimization": "gp"}.get(auto_choice(exp.spec, n + count), "tpe")
            for cmd in cmds.values():  # warm the file cache (bytecode, shared libraries): not timed
                _time(cmd)
            times: dict[str, list[float]] = {k: [] for k in cmds}
            cpu: dict[str, list[float]] = {k: [] for k in cmds}
            for _ in range(repeats):  # interleaved: each round runs every command once
                for key, cmd in cmds.items():
                    wall, used = _time(cmd)
                    times[key].append(wall)
                    cpu[key].append(used)
            m = {k: median(v) for k, v in times.items()}
            c = {k: median(v) for k, v in cpu.items()}
            for s in ("s-batch.json", "c-batch.json"):
                assert len(json.loads((work / "out" / s).read_text())) == count
            row = {"history": n, "count": count, "repeats": repeats,
                   "auto_choice": auto_choice(exp.spec, n), "plain_sampler": sampler,
                   **{f"{k}_median_s": v for k, v in m.items()}, **{f"{k}_all_s": v for k, v in times.items()},
                   **{f"{k}_cpu_median_s": v for k, v in c.items()}, **{f"{k}_cpu_all_s": v for k, v in cpu.items()},
                   "ratio_suggest_to_plain": m["suggest"] / m["plain_suggest"],
                   "ratio_collect_to_plain": m["collect"] / m["plain_collect"],
                   "cpu_ratio_suggest_to_plain": c["suggest"] / c["plain_suggest"],
                   "cpu_ratio_collect_to_plain": c["collect"] / c["plain_collect"]}
            rows.append(row)
            print(f"steps n={n:5d}: suggest {m['suggest']:.3f} s / plain {m['plain_suggest']:.3f} s "
                  f"= {row['ratio_suggest_to_plain']:.2f}x;  collect {m['collect']:.3f} s / plain "
                  f"{m['plain_collect']:.3f} s = {row['ratio_collect_to_plain']:.2f}x;  cpu ratios "
                  f"{row['cpu_ratio_suggest_to_plain']:.2f}x / {row['cpu_ratio_collect_to_plain']:.2f}x", flush=True)
    doc = {"what": f"whole-process seconds of hp-tune step suggest/collect (auto, batch {count}, 6-dim mixed space) "
                   "vs a plain-Optuna process reading the same history JSON, rebuilding a study with the same "
                   f"sampler and asking {count}; {repeats} interleaved runs, medians of wall and CPU seconds; "
                   "bytecode cached, as in the step image",
           "load_average_at_start": load, "load_average_at_end": list(os.getloadavg()), "results": rows}
    write_result("steps", doc, out_dir)
    return doc
