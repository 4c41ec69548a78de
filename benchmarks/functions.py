"""Benchmark objectives (minimised) as Katib parameter lists with their known optimum.

Nothing here is known to the tuner: the functions reach it only as objective values in a
history, exactly as a training run's metrics would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable


def _double(name: str, lo: float, hi: float, log: bool = False) -> dict[str, Any]:
    fs: dict[str, Any] = {"min": repr(float(lo)), "max": repr(float(hi))}
    if log:
        fs["distribution"] = "logUniform"
    return {"name": name, "parameterType": "double", "feasibleSpace": fs}


def _int(name: str, lo: int, hi: int, log: bool = False) -> dict[str, Any]:
    fs: dict[str, Any] = {"min": str(lo), "max": str(hi)}
    if log:
        fs["distribution"] = "logUniform"
    return {"name": name, "parameterType": "int", "feasibleSpace": fs}


def _cat(name: str, values: list[str]) -> dict[str, Any]:
    return {"name": name, "parameterType": "categorical", "feasibleSpace": {"list": values}}


@dataclass(frozen=True)
class Problem:
    name: str
    parameters: list[dict[str, Any]]
    fn: Callable[[dict[str, str]], float]  # Katib assignments (strings) -> value
    optimum: float

    def regret(self, value: float) -> float:
        return value - self.optimum


def branin(a: dict[str, str]) -> float:
    x1, x2 = float(a["x1"]), float(a["x2"])
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
_H_P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
_H_ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(a: dict[str, str]) -> float:
    x = [float(a[f"x{i}"]) for i in range(6)]
    return -sum(al * math.exp(-sum(A * (xi - p) ** 2 for A, xi, p in zip(Ai, x, Pi)))
                for al, Ai, Pi in zip(_H_ALPHA, _H_A, _H_P))


_OFFSET = {"sgd": 0.6, "adam": 0.0, "rmsprop": 0.25, "adagrad": 1.0}


def mixed(a: dict[str, str]) -> float:
    """A training-like surface: log learning rate x momentum-ish float x int width x optimizer.

    Optimum 0 at lr=10**-2.5, x=0.7, width=20, opt=adam; lr and x interact (a tilted valley),
    and each optimizer shifts the best lr a little (so the categorical interacts too).
    """
    opt = a["opt"]
    shift = {"sgd": 0.5, "adam": 0.0, "rmsprop": -0.3, "adagrad": 0.8}[opt]
    u = math.log10(float(a["lr"])) + 2.5 - shift
    x = float(a["x"]) - 0.7
    w = (int(a["width"]) - 20) / 12
    return 0.5 * u ** 2 + 2 * (x - 0.4 * u) ** 2 + w ** 2 + _OFFSET[opt]


PROBLEMS: dict[str, Problem] = {
    "branin": Problem("branin", [_double("x1", -5, 10), _double("x2", 0, 15)], branin, 0.39788735772973816),
    "hartmann6": Problem("hartmann6", [_double(f"x{i}", 0, 1) for i in range(6)], hartmann6, -3.32236801141551),
    "mixed": Problem("mixed", [_double("lr", 1e-5, 1e-1, log=True), _double("x", -1, 2), _int("width", 1, 64),
                               _cat("opt", ["sgd", "adam", "rmsprop", "adagrad"])], mixed, 0.0),
}

#: the 6-dimensional mixed space of the latency benchmark: floats (one log), ints (one log), a categorical
LATENCY_SPACE = [_double("lr", 1e-5, 1e-1, log=True), _double("dropout", 0.0, 0.5), _double("momentum", 0.5, 0.99),
                 _int("layers", 1, 8), _int("units", 16, 1024, log=True), _cat("opt", ["sgd", "adam", "rmsprop"])]
#: its numeric-only variant (for cmaes, which cannot search a categorical)
LATENCY_SPACE_NUMERIC = LATENCY_SPACE[:5] + [_double("wd", 1e-6, 1e-2, log=True)]


def latency_objective(a: dict[str, str]) -> float:
    """A cheap smooth value for synthetic histories."""
    v = (math.log10(float(a["lr"])) + 3) ** 2 + (float(a["dropout"]) - 0.2) ** 2 + (float(a["momentum"]) - 0.9) ** 2
    v += (int(a["layers"]) - 3) ** 2 / 10 + (math.log2(int(a["units"])) - 7) ** 2 / 10
    if "opt" in a:
        v += {"sgd": 0.3, "adam": 0.0, "rmsprop": 0.1}[a["opt"]]
    else:
        v += (math.log10(float(a["wd"])) + 4) ** 2 / 10
    return v
