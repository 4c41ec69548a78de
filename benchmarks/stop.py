"""The trial wrapper's early stopping: how fast a trial stops once its rule holds, and what watching costs.

``python -m benchmarks.stop [--repeats N]`` runs the wrapper (``hp_components/metrics.py``) as trial
pods run it, a subprocess around a Python trainer, and writes ``results/stop.json``:

* **reaction**: the trainer prints a value that meets its stop rule, with the time, then sleeps
  30 s. Reaction is from that print to the wrapper's exit: the wrapper's check interval, SIGTERM
  to the process group, reaping, writing the result.
* **watch cost**: a 3 s trainer whose values never meet the rule. The wrapper's CPU time (trainer
  included, ``os.wait4``) with the rule (a check every 0.1 s) and without it (one blocking wait),
  the runs interleaved so both see the same load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import common
from benchmarks.common import median, write_result

WRAPPER = str(Path(__file__).resolve().parent.parent / "hp_components" / "metrics.py")
MET = "import sys, time\nprint(f'acc=0.0 at={time.time()!r}', flush=True)\ntime.sleep(30)\n"
NEVER = "import time\nfor i in range(6):\n    print(f'acc={0.9 + i / 100}', flush=True)\n    time.sleep(0.5)\n"
RULE = ["--objective-type", "maximize", "--stop-rule", "acc;0.5;less;1"]


def _wrapper(rule: bool, program: str) -> list[str]:
    return [sys.executable, WRAPPER, "--objective", "acc", *(RULE if rule else []), "--", sys.executable, "-c", program]


def reaction() -> float:
    """Seconds from the trainer's rule-meeting print to the wrapper's exit."""
    proc = subprocess.run(_wrapper(True, MET), capture_output=True, text=True, check=True)
    end = time.time()
    line = next(x for x in proc.stdout.splitlines() if x.startswith("acc=0.0 at="))
    if '"EarlyStopped"' not in proc.stdout:
        raise RuntimeError(f"the trial was not stopped: {proc.stdout[-500:]}")
    return end - float(line.split("at=")[1])


def watch_cpu(rule: bool) -> float:
    """CPU seconds of the wrapper and its trainer for the 3 s trainer."""
    proc = subprocess.Popen(_wrapper(rule, NEVER), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"the wrapper exited {proc.returncode}")
    return usage.ru_utime + usage.ru_stime


def run(repeats: int = 10, out_dir: Path | None = None) -> Path:
    reactions, with_rule, without = [], [], []
    for _ in range(repeats):
        reactions.append(reaction())
        with_rule.append(watch_cpu(True))
        without.append(watch_cpu(False))
    data = {
        "repeats": repeats,
        "reaction_s": {"median": median(reactions), "max": max(reactions), "all": reactions},
        "watch_cpu_s": {"with_rule_median": median(with_rule), "without_rule_median": median(without),
                        "ratio": median(with_rule) / median(without), "with_rule": with_rule, "without_rule": without},
        "load": os.getloadavg(),
    }
    return write_result("stop", data, out_dir)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stop", description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10)
    common.COMMAND[:] = ["python", "-m", "benchmarks.stop", *sys.argv[1:]]
    print(run(p.parse_args().repeats))


if __name__ == "__main__":
    main()
