"""Part 2: simple regret after N trials, sequentially and in batches of 3 and 8, per algorithm.

Our algorithms are driven through the public ``suggest(exp, history, count)`` with a history
list, exactly as the runner does: ask a batch, evaluate it, append the Succeeded trials, again.
Peers (plain Optuna TPE with its defaults, Optuna's GPSampler, random search, scikit-optimize's
GP, hyperopt's TPE, BoTorch's qLogNEI) get the same batches: ``count`` points asked before any
is told. ``batch3`` is Katib's default ``parallelTrialCount``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import optuna

from benchmarks.common import COMMAND, RESULTS, experiment, iqr, median, write_result
from benchmarks.functions import PROBLEMS, Problem
from hp_components.space import SearchSpace
from hp_components.suggest import suggest
from hp_components.trials import Trial

optuna.logging.set_verbosity(optuna.logging.ERROR)

OURS = ["random", "tpe", "multivariate-tpe", "cmaes", "sobol", "bayesianoptimization", "auto"]
PEERS = ["optuna-tpe", "optuna-random", "optuna-gp", "skopt-gp", "hyperopt-tpe", "botorch-qlognei"]
#: points asked before any is told, per mode
BATCH = {"sequential": 1, "batch3": 3, "batch8": 8}


def run_ours(algorithm: str, problem: Problem, trials: int, batch: int, seed: int) -> list[float]:
    """Best value so far after each trial (the trace), through suggest()."""
    params = problem.parameters
    exp = experiment(f"q-{problem.name}", params, algorithm=algorithm, max_trials=trials, parallel=batch, seed=seed)
    history: list[Trial] = []
    trace: list[float] = []
    while len(history) < trials:
        new = suggest(exp, history, min(batch, trials - len(history)))
        if not new:
            break
        for t in new:
            t.condition, t.objective_value = "Succeeded", problem.fn(t.assignments)
            history.append(t)
            trace.append(min(trace[-1], t.objective_value) if trace else t.objective_value)
    return trace


def _optuna(sampler_factory: Callable[[int], optuna.samplers.BaseSampler]):
    def run(problem: Problem, trials: int, batch: int, seed: int) -> list[float]:
        space = SearchSpace(experiment("p", problem.parameters, algorithm="random", max_trials=1).spec.parameters)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(sampler=sampler_factory(seed))
            trace: list[float] = []
            while len(trace) < trials:
                asked = [study.ask(space.distributions) for _ in range(min(batch, trials - len(trace)))]
                for tr in asked:
                    v = problem.fn(space.assignments(tr.params))
                    study.tell(tr, v)
                    trace.append(min(trace[-1], v) if trace else v)
        return trace
    return run


def _skopt_gp(problem: Problem, trials: int, batch: int, seed: int) -> list[float]:
    import numpy as np  # noqa: F401
    from skopt import Optimizer
    from skopt.space import Categorical, Integer, Real

    dims, names = [], []
    for p in problem.parameters:
        fs, names = p["feasibleSpace"], names + [p["name"]]
        if p["parameterType"] == "categorical":
            dims.append(Categorical(fs["list"]))
        elif p["parameterType"] == "int":
            dims.append(Integer(int(fs["min"]), int(fs["max"])))
        else:
            dims.append(Real(float(fs["min"]), float(fs["max"]),
                             prior="log-uniform" if fs.get("distribution") == "logUniform" else "uniform"))
    opt = Optimizer(dims, base_estimator="GP", n_initial_points=10, random_state=seed)
    trace: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while len(trace) < trials:
            n = min(batch, trials - len(trace))
            xs = opt.ask(n_points=n) if n > 1 else [opt.ask()]
            ys = []
            for x in xs:
                v = problem.fn({k: str(val) for k, val in zip(names, x)})
                ys.append(v)
                trace.append(min(trace[-1], v) if trace else v)
            opt.tell(xs, ys)
    return trace


def _hyperopt_tpe(problem: Problem, trials: int, batch: int, seed: int) -> list[float]:
    import numpy as np
    from hyperopt import STATUS_OK, Domain, Trials, hp, tpe

    space = {}
    for p in problem.parameters:
        fs, n = p["feasibleSpace"], p["name"]
        if p["parameterType"] == "categorical":
            space[n] = hp.choice(n, fs["list"])
        elif p["parameterType"] == "int":
            space[n] = hp.uniformint(n, int(fs["min"]), int(fs["max"]))
        elif fs.get("distribution") == "logUniform":
            space[n] = hp.loguniform(n, math.log(float(fs["min"])), math.log(float(fs["max"])))
        else:
            space[n] = hp.uniform(n, float(fs["min"]), float(fs["max"]))

    def f(a):
        return {"loss": problem.fn({k: str(v) for k, v in a.items()}), "status": STATUS_OK}

    domain, hist = Domain(f, space), Trials()
    rng = np.random.default_rng(seed)
    trace: list[float] = []
    while len(trace) < trials:
        n = min(batch, trials - len(trace))
        ids = hist.new_trial_ids(n)
        docs = tpe.suggest(ids, domain, hist, rng.integers(2 ** 31 - 1))  # n points before any result
        hist.insert_trial_docs(docs)
        hist.refresh()
        for doc in hist._dynamic_trials[-n:]:
            vals = {k: v[0] for k, v in doc["misc"]["vals"].items() if v}
            from hyperopt import space_eval
            a = space_eval(space, vals)
            r = f(a)
            doc["state"], doc["result"] = 2, r  # JOB_STATE_DONE
            trace.append(min(trace[-1], r["loss"]) if trace else r["loss"])
        hist.refresh()
    return trace


#: initial space-filling points of the BoTorch peer, as GPSampler's n_startup_trials and skopt's n_initial_points
BOTORCH_INITIAL = 10


def _botorch_qlognei(problem: Problem, trials: int, batch: int, seed: int) -> list[float]:
    """BoTorch as its tutorials write a closed loop: a GP on the unit cube, qLogNEI, ``optimize_acqf(q=batch)``.

    ``BOTORCH_INITIAL`` scrambled Sobol points first (a batch that completes them gets the rest
    from the model, the unevaluated Sobol points pending); then each batch is one
    ``optimize_acqf`` with ``q`` = the batch size (``num_restarts=10, raw_samples=512``, the
    tutorials' values). The model is ``SingleTaskGP`` with ``Normalize`` inputs and
    ``Standardize`` outcomes, refitted (``fit_gpytorch_mll``) before every batch. A space with
    int or categorical parameters (the mixed function) gets ``MixedSingleTaskGP`` (BoTorch's
    SingleTaskGP with a categorical kernel on the categorical dimensions) and
    ``optimize_acqf_mixed_alternating`` (BoTorch's optimizer for mixed spaces: ints as
    ``discrete_dims``, categoricals as ``cat_dims``), so every point is feasible as asked.
    """
    import torch
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import MixedSingleTaskGP, SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from botorch.optim import optimize_acqf
    from botorch.optim.optimize_mixed import optimize_acqf_mixed_alternating
    from gpytorch.mlls import ExactMarginalLogLikelihood
    from torch.quasirandom import SobolEngine

    torch.manual_seed(seed)
    dt = torch.double
    params = problem.parameters
    cat = {i: list(p["feasibleSpace"]["list"]) for i, p in enumerate(params) if p["parameterType"] == "categorical"}
    ints = {i: (int(p["feasibleSpace"]["min"]), int(p["feasibleSpace"]["max"]))
            for i, p in enumerate(params) if p["parameterType"] == "int"}
    d = len(params)
    # numeric dimensions on [0, 1] (log ones on the log scale); a categorical is its index 0..k-1
    bounds = torch.tensor([[0.0] * d, [float(len(cat[i]) - 1) if i in cat else 1.0 for i in range(d)]], dtype=dt)
    numeric = [i for i in range(d) if i not in cat]

    def snap(x: torch.Tensor) -> torch.Tensor:  # Sobol points onto the int/categorical grid
        x = x.clone()
        for i, (lo, hi) in ints.items():
            x[..., i] = torch.round(x[..., i] * (hi - lo)) / (hi - lo)
        for i, values in cat.items():
            x[..., i] = torch.clamp(torch.floor(x[..., i] * len(values)), max=len(values) - 1)
        return x

    def decode(x: torch.Tensor) -> dict[str, str]:
        out = {}
        for i, p in enumerate(params):
            fs, u = p["feasibleSpace"], float(x[i])
            if i in cat:
                out[p["name"]] = cat[i][int(round(u))]
            elif i in ints:
                lo, hi = ints[i]
                out[p["name"]] = str(lo + int(round(u * (hi - lo))))
            elif fs.get("distribution") == "logUniform":
                lo, hi = math.log(float(fs["min"])), math.log(float(fs["max"]))
                out[p["name"]] = repr(math.exp(lo + u * (hi - lo)))
            else:
                lo, hi = float(fs["min"]), float(fs["max"])
                out[p["name"]] = repr(lo + u * (hi - lo))
        return out

    sobol = snap(SobolEngine(d, scramble=True, seed=seed).draw(BOTORCH_INITIAL, dtype=dt))
    X = torch.empty(0, d, dtype=dt)
    Y = torch.empty(0, 1, dtype=dt)
    trace: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while len(trace) < trials:
            n = min(batch, trials - len(trace))
            initial = sobol[len(X):len(X) + n]
            new = [initial]
            if len(initial) < n:
                tf = Normalize(d=d, bounds=bounds, indices=numeric) if cat else Normalize(d=d, bounds=bounds)
                if cat:
                    model = MixedSingleTaskGP(X, Y, cat_dims=list(cat), input_transform=tf,
                                              outcome_transform=Standardize(m=1))
                else:
                    model = SingleTaskGP(X, Y, input_transform=tf, outcome_transform=Standardize(m=1))
                fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
                acqf = qLogNoisyExpectedImprovement(model, X_baseline=X, prune_baseline=True,
                                                    X_pending=initial if len(initial) else None)
                q = n - len(initial)
                if cat or ints:
                    cand, _ = optimize_acqf_mixed_alternating(
                        acqf, bounds=bounds, q=q, num_restarts=10, raw_samples=512,
                        cat_dims={i: [float(k) for k in range(len(v))] for i, v in cat.items()},
                        discrete_dims={i: [k / (hi - lo) for k in range(hi - lo + 1)] for i, (lo, hi) in ints.items()})
                else:
                    cand, _ = optimize_acqf(acqf, bounds=bounds, q=q, num_restarts=10, raw_samples=512)
                new.append(cand.detach())
            xs = torch.cat(new)
            for x in xs:
                v = problem.fn(decode(x))
                trace.append(min(trace[-1], v) if trace else v)
                X = torch.cat([X, x.unsqueeze(0)])
                Y = torch.cat([Y, torch.tensor([[-v]], dtype=dt)])  # BoTorch maximises
    return trace


PEER_RUNNERS: dict[str, Callable[..., list[float]]] = {
    "optuna-tpe": _optuna(lambda s: optuna.samplers.TPESampler(seed=s)),
    "optuna-random": _optuna(lambda s: optuna.samplers.RandomSampler(seed=s)),
    "optuna-gp": _optuna(lambda s: optuna.samplers.GPSampler(seed=s)),
    "skopt-gp": _skopt_gp,
    "hyperopt-tpe": _hyperopt_tpe,
    "botorch-qlognei": _botorch_qlognei,
}


def peer_available(name: str) -> str | None:
    """None when the peer can run here, else why not."""
    mod = {"skopt-gp": "skopt", "hyperopt-tpe": "hyperopt", "optuna-gp": "torch", "botorch-qlognei": "botorch"}.get(name)
    if mod is None:
        return None
    try:
        __import__(mod)
    except Exception as e:  # noqa: BLE001 - numpy 2 incompatibilities show up as any error
        return f"{mod} does not import: {type(e).__name__}: {e}"
    return None


def _earlier_cells(out_dir, redo: set[tuple[str, str, str]]) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """The last run's rows and traces of every (function, mode, algorithm) cell not in ``redo``."""
    old = Path(out_dir or RESULTS) / "quality.json"
    if not old.exists():
        return [], {}
    prev = json.loads(old.read_text())
    rows = [r for r in prev["results"] if (r["function"], r["mode"], r["algorithm"]) not in redo]
    traces = {k: v for k, v in prev["median_regret_traces"].items() if tuple(k.split("/")) not in redo}
    return rows, traces


def _runner(algo: str, problem: Problem, trials: int, batch: int) -> Callable[[int], list[float]]:
    if algo in PEER_RUNNERS:
        return lambda seed: PEER_RUNNERS[algo](problem, trials, batch, seed)
    return lambda seed: run_ours(algo, problem, trials, batch, seed)


def measure(problem: Problem, mode: str, algo: str, seeds: int, trials: int) -> tuple[dict[str, Any], list[float]]:
    """One cell: its result row (with the command, time and load that measured it) and median trace."""
    runner = _runner(algo, problem, trials, BATCH[mode])
    load = list(os.getloadavg())
    regrets, secs, per_seed = [], [], []
    for seed in range(seeds):
        t0 = time.perf_counter()
        trace = runner(seed)
        secs.append(time.perf_counter() - t0)
        per_seed.append([problem.regret(v) for v in trace])
        regrets.append(problem.regret(trace[-1]))
    row = {"function": problem.name, "mode": mode, "algorithm": algo, "seeds": seeds, "trials": trials,
           "regret_median": median(regrets), "regret_iqr": iqr(regrets), "regrets": regrets,
           "seconds_per_run_median": median(secs), "measured_by": " ".join(COMMAND),
           "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "loadavg_at_start": load}
    return row, [median([s[i] for s in per_seed]) for i in range(trials)]


def run(functions=("branin", "hartmann6", "mixed"), algorithms=OURS + PEERS, seeds: int = 10, trials: int = 48,
        modes=("batch8", "batch3", "sequential"), out_dir=None, plot: bool = True, keep_other_modes: bool = False
        ) -> dict[str, Any]:
    """Measure every (function, mode, algorithm) cell; ``keep_other_modes`` keeps the last run's other cells."""
    cells = [(f, m, a) for m in modes for f in functions for a in algorithms]
    rows, traces = _earlier_cells(out_dir, set(cells)) if keep_other_modes else ([], {})
    kept = sorted({r.get("measured_by", "") for r in rows})
    what = (f"simple regret (best value - known optimum, minimised) after {trials} trials, median and IQR "
            f"over the seeds; batch3/batch8 = 3/8 points asked before any is told")
    unavailable: dict[str, str] = {}
    for fname, mode, algo in cells:
        why = peer_available(algo) if algo in PEER_RUNNERS else None
        if why:
            unavailable[algo] = why
            continue
        row, traces[f"{fname}/{mode}/{algo}"] = measure(PROBLEMS[fname], mode, algo, seeds, trials)
        rows.append(row)
        # written after every cell: a long run that is stopped still leaves its numbers
        write_result("quality", {"what": what, "complete": False, "kept_from_earlier_runs": kept,
                                 "unavailable": unavailable, "results": rows, "median_regret_traces": traces}, out_dir)
        print(f"quality {fname:9s} {mode:10s} {algo:22s} regret median {row['regret_median']:.4g} "
              f"IQR [{row['regret_iqr'][0]:.3g}, {row['regret_iqr'][1]:.3g}]  "
              f"{row['seconds_per_run_median']:.1f} s/run", flush=True)
    doc = {"what": what, "complete": True, "kept_from_earlier_runs": kept, "unavailable": unavailable,
           "results": rows, "median_regret_traces": traces}
    path = write_result("quality", doc, out_dir)
    if plot:
        doc["plot"] = make_plot(doc, path.parent)
    return doc


def merge(sources: list[Path], out_dir=None, plot: bool = True) -> dict[str, Any]:
    """Fold the cells of other runs' ``quality.json`` (runs made side by side into other ``--out``
    folders) into ``out_dir``'s: a cell measured there replaces the same cell here; every row keeps
    the command, date and load that measured it."""
    base = Path(out_dir or RESULTS) / "quality.json"
    doc = json.loads(base.read_text()) if base.exists() else {"what": "", "results": [], "median_regret_traces": {}}
    rows, traces = doc["results"], doc["median_regret_traces"]
    merged = list(doc.get("merged_from", []))
    for src in sources:
        other = json.loads((Path(src) / "quality.json").read_text())
        cells = {(r["function"], r["mode"], r["algorithm"]) for r in other["results"]}
        rows = [r for r in rows if (r["function"], r["mode"], r["algorithm"]) not in cells] + other["results"]
        traces = {k: v for k, v in traces.items() if tuple(k.split("/")) not in cells}
        traces.update(other["median_regret_traces"])
        merged.append({"command": other["command"], "date": other["date"], "complete": other.get("complete", True),
                       "versions": other.get("versions", {})})
        doc["what"] = other["what"]
        doc.setdefault("unavailable", {}).update(other.get("unavailable", {}))
    out = {k: v for k, v in doc.items() if k not in ("command", "date", "machine", "versions")}
    out.update({"results": rows, "median_regret_traces": traces, "merged_from": merged, "complete": True,
                "kept_from_earlier_runs": sorted({r.get("measured_by", "") for r in rows})})
    path = write_result("quality", out, out_dir)
    if plot:
        out["plot"] = make_plot(out, path.parent)
    return out


def make_plot(doc: dict[str, Any], out_dir) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("quality: matplotlib not installed (pip install -e '.[bench]'): no plot")
        return None
    keys = sorted({tuple(k.split("/")[:2]) for k in doc["median_regret_traces"]})
    names = [a for a in OURS + PEERS if any(k.endswith("/" + a) for k in doc["median_regret_traces"])]
    color = {a: plt.get_cmap("tab20")(i % 20) for i, a in enumerate(names)}  # one colour per algorithm
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4), squeeze=False)
    for ax, (fname, mode) in zip(axes[0], keys):
        for k, trace in doc["median_regret_traces"].items():
            f, m, algo = k.split("/")
            if (f, m) == (fname, mode):
                ax.plot(range(1, len(trace) + 1), [max(v, 1e-6) for v in trace], label=algo, color=color.get(algo),
                        linestyle="-" if not algo.startswith(("optuna", "skopt", "hyperopt")) else "--",
                        linewidth=2.5 if algo == "auto" else 1.0, zorder=3 if algo == "auto" else 2)
        ax.set_yscale("log")
        ax.set_title(f"{fname}, {mode}")
        ax.set_xlabel("trials")
        ax.set_ylabel("median simple regret")
        ax.legend(fontsize=6)
    fig.tight_layout()
    path = out_dir / "regret.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return str(path)
