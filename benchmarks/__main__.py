"""``python -m benchmarks all --quick`` | latency | steps | gp | quality | model | overhead | size | slots | summary.

Run it niced on a shared machine: ``nice -n 19 python -m benchmarks all --quick``.
``--quick`` (< 2 minutes) is what CI may run; the full parts take much longer (the GP's cost).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import common


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    common.COMMAND[:] = ["python", "-m", "benchmarks", *argv]
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("part", choices=["all", "latency", "steps", "gp", "quality", "model", "overhead", "size", "slots", "summary"])
    p.add_argument("--quick", action="store_true", help="small settings (CI): under 2 minutes")
    p.add_argument("--out", type=Path, default=common.RESULTS, help="results folder (default benchmarks/results)")
    p.add_argument("--seeds", type=int, help="quality: seeds (default 10, --quick 2)")
    p.add_argument("--functions", help="quality: comma-separated (branin,hartmann6,mixed)")
    p.add_argument("--algorithms", help="latency/quality/model: comma-separated subset")
    p.add_argument("--sizes", help="latency/steps: history sizes (default 0,100,1000); size: maxTrialCounts (default 10,100,1000)")
    p.add_argument("--repeats", type=int, help="latency: timed repeats per cell (default 3, --quick 1); steps: interleaved runs (default 5, --quick 1)")
    p.add_argument("--modes", help="quality: sequential,batch3,batch8 (with --modes or --functions, the other cells' last numbers are kept)")
    p.add_argument("--merge", help="quality: comma-separated --out folders of runs made side by side; their cells "
                   "replace the same cells of --out's quality.json (each row keeps its command, date and load)")
    p.add_argument("--count", type=int, default=8, help="steps: the batch each step suggests (default 8)")
    p.add_argument("--trials", type=int, help="quality/model/overhead: trial budget")
    p.add_argument("--before", default="main", help="slots: the git commit to compare this tree with (default main)")
    p.add_argument("--cases", help="slots: comma-separated subset (gp-3s,random-0.2s)")
    a = p.parse_args(argv)
    q = a.quick
    algos = a.algorithms.split(",") if a.algorithms else None
    parts = ["latency", "steps", "quality", "model", "overhead", "size"] if a.part == "all" else [a.part]
    for part in parts:
        if part == "latency":
            from benchmarks import latency
            sizes = tuple(int(s) for s in a.sizes.split(",")) if a.sizes else (0, 100, 1000)
            latency.run(sizes=sizes, repeats=a.repeats or (1 if q else 3), out_dir=a.out,
                        algorithms=algos or (["random", "tpe", "auto"] if q else latency.ALGORITHMS))
        elif part == "steps":
            from benchmarks import steps
            sizes = tuple(int(s) for s in a.sizes.split(",")) if a.sizes else (0, 100) if q else (0, 100, 1000)
            steps.run(sizes=sizes, repeats=a.repeats or (1 if q else 5), count=a.count, out_dir=a.out)
        elif part == "gp":
            from benchmarks import gp
            sizes = tuple(int(s) for s in a.sizes.split(",")) if a.sizes else (12,) if q else (50, 99)
            gp.run(sizes=sizes, repeats=a.repeats or (1 if q else 3), out_dir=a.out)
        elif part == "quality":
            from benchmarks import quality
            if a.merge:
                quality.merge([Path(d) for d in a.merge.split(",")], a.out)
                continue
            functions = a.functions.split(",") if a.functions else ("branin", "hartmann6", "mixed")
            default = ["auto", "tpe", "optuna-tpe", "optuna-random"] if q else quality.OURS + quality.PEERS
            quality.run(functions=functions, algorithms=algos or default, seeds=a.seeds or (2 if q else 10),
                        trials=a.trials or (24 if q else 48), out_dir=a.out, keep_other_modes=bool(a.modes or a.functions),
                        modes=a.modes.split(",") if a.modes else ("batch8",) if q else ("batch8", "batch3", "sequential"))
        elif part == "model":
            from benchmarks import model
            model.run(algorithms=algos or (["random", "auto"] if q else model.run.__defaults__[0]),
                      trials=a.trials or (8 if q else 24), out_dir=a.out)
        elif part == "overhead":
            from benchmarks import overhead
            overhead.run(trials=a.trials or (20 if q else 100), out_dir=a.out, **({"sleeps": (0.2,), "repeats": 1} if q else {}))
        elif part == "slots":
            from benchmarks import slots
            slots.run(before=a.before, repeats=a.repeats or 1, out_dir=a.out,
                      cases=a.cases.split(",") if a.cases else None)
        elif part == "size":
            from benchmarks import size
            counts = tuple(int(x) for x in a.sizes.split(",")) if a.sizes else (10, 100) if q else (10, 100, 1000)
            size.run(trial_counts=counts, parallels=(4,) if q else (4, 10),
                     repeats=1 if q else 2, out_dir=a.out)
    if a.out.resolve() == common.RESULTS.resolve() or a.part == "summary":
        from benchmarks import summary
        summary.write(a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
