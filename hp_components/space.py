"""Katib parameters <-> Optuna distributions, and parameter values as the strings trials receive.

Samplers work on *internal* values (what Optuna sees); trials get *assignments* (Katib's
strings). The two differ only for ``normal``/``logNormal`` parameters, which Katib's own Optuna
service rejects: here the sampler searches the quantile ``q`` in ``[0, 1]`` of a normal
distribution truncated to ``[min, max]`` (mean at the centre, 3 sigma to each bound), so
random and start-up samples follow the bell curve and model-based samplers search the same
warped space::

    from hp_components.experiment import load_experiment
    from hp_components.space import SearchSpace

    space = SearchSpace(load_experiment("examples/random-digits.yaml").spec.parameters)
    internal = {name: d.low if hasattr(d, "low") else d.choices[0] for name, d in space.distributions.items()}
    print(space.assignments(internal))   # {'lr': '0.001', ...}
"""

from __future__ import annotations

import itertools
import math
from decimal import Decimal
from statistics import NormalDist
from typing import Any, Iterator, Sequence

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hp_components.spec import ParameterSpec

__all__ = ["SearchSpace", "grid_size", "format_value"]

_STD = NormalDist()
_Q_LO, _Q_HI = _STD.cdf(-3.0), _STD.cdf(3.0)
_SIG = 10  # significant digits of a double assignment


def _decimals(*numbers: str) -> int:
    """The most decimals any of the numbers (as written in the spec) has."""
    return max(max(0, -int(Decimal(n).normalize().as_tuple().exponent)) for n in numbers)


def format_value(value: float, decimals: int | None = None) -> str:
    """A double as the trial sees it: fixed ``decimals`` on a stepped grid, else 10 significant digits."""
    if decimals is not None:
        return f"{value:.{decimals}f}"
    return format(value, f".{_SIG}g")


class _Param:
    """One parameter: its internal distribution and the mapping to and from assignments."""

    def __init__(self, spec: ParameterSpec):
        self.spec = spec
        self.name = spec.name
        fs = spec.feasible_space
        self.kind = spec.parameter_type
        self.normal = fs.distribution in ("normal", "logNormal")
        self.log = fs.distribution in ("logUniform", "logNormal")
        self.step = fs.step or None
        self.choices: list[str] = list(fs.values or [])
        self.lo = float(fs.min) if fs.min not in (None, "") else 0.0
        self.hi = float(fs.max) if fs.max not in (None, "") else 0.0
        # a stepped double prints with as many decimals as its min and step have
        self.decimals = _decimals(fs.min or "0", self.step) if self.step and self.kind == "double" else None
        if self.kind in ("categorical", "discrete"):
            self.dist: BaseDistribution = CategoricalDistribution(self.choices)
        elif self.normal:
            self.dist = FloatDistribution(0.0, 1.0)
        elif self.kind == "int":
            step = int(float(self.step)) if self.step and not self.log else 1
            high = int(self.lo) + (int(self.hi) - int(self.lo)) // step * step
            self.dist = IntDistribution(int(self.lo), high, log=self.log, step=step)
        else:
            step_f = float(self.step) if self.step and not self.log else None
            high = self.hi
            if step_f:
                high = self.lo + math.floor((self.hi - self.lo) / step_f + 1e-9) * step_f
            self.dist = FloatDistribution(self.lo, high, log=self.log, step=step_f)

    @property
    def shown_dist(self) -> BaseDistribution:
        """The distribution in the values' own terms (a normal parameter's is its value range, not quantiles)."""
        return FloatDistribution(self.lo, self.hi, log=self.log) if self.normal else self.dist

    def shown(self, assignment: str) -> Any:
        """A Katib assignment as a value of :attr:`shown_dist`; ValueError when it is outside."""
        return float(assignment) if self.normal else self.internal(assignment)

    # normal / logNormal: quantile <-> value
    def _from_quantile(self, q: float) -> float:
        lo, hi = (math.log(self.lo), math.log(self.hi)) if self.log else (self.lo, self.hi)
        mu, sigma = (lo + hi) / 2, (hi - lo) / 6
        z = _STD.inv_cdf(min(max(_Q_LO + q * (_Q_HI - _Q_LO), 1e-12), 1 - 1e-12))
        x = mu + sigma * z
        x = math.exp(x) if self.log else x
        return min(max(x, self.lo), self.hi)

    def _to_quantile(self, x: float) -> float:
        if self.hi == self.lo:  # min == max: a fixed value, at the centre of the bell
            return 0.5
        lo, hi = (math.log(self.lo), math.log(self.hi)) if self.log else (self.lo, self.hi)
        mu, sigma = (lo + hi) / 2, (hi - lo) / 6
        v = math.log(x) if self.log else x
        q = (_STD.cdf((v - mu) / sigma) - _Q_LO) / (_Q_HI - _Q_LO)
        return min(max(q, 0.0), 1.0)

    def _snap(self, x: float) -> float:
        if self.step and not self.log:
            step = float(self.step)
            x = self.lo + round((x - self.lo) / step) * step
        return min(max(x, self.lo), self.hi)

    def assignment(self, internal: Any) -> str:
        if self.kind in ("categorical", "discrete"):
            return str(internal)
        x = self._from_quantile(float(internal)) if self.normal else float(internal)
        if self.kind == "int":
            return str(int(round(self._snap(x))))
        return format_value(self._snap(x), None if self.log else self.decimals)

    def internal(self, assignment: str) -> Any:
        """The internal value for an assignment; raises ValueError when it is outside the space."""
        if self.kind in ("categorical", "discrete"):
            if assignment not in self.choices:
                raise ValueError(f"{assignment!r} is not one of {self.choices}")
            return assignment
        x = float(assignment)
        if not (self.lo - 1e-9 * max(1.0, abs(self.lo)) <= x <= self.hi + 1e-9 * max(1.0, abs(self.hi))):
            raise ValueError(f"{assignment} is outside {self.spec.feasible_space.min}..{self.spec.feasible_space.max}")
        if self.normal:
            return self._to_quantile(x)
        d = self.dist
        if isinstance(d, IntDistribution):
            return int(min(max(round(x), d.low), d.high))
        assert isinstance(d, FloatDistribution)
        x = min(max(x, d.low), d.high)
        if d.step is not None:
            x = d.low + round((x - d.low) / d.step) * d.step
            x = min(max(x, d.low), d.high)
        return x

    def from_unit(self, u: float) -> Any:
        """Map ``u`` in [0, 1) to an internal value (used by quasi-random sequences)."""
        u = min(max(u, 0.0), 1.0 - 1e-12)
        d = self.dist
        if isinstance(d, CategoricalDistribution):
            return d.choices[int(u * len(d.choices))]
        if isinstance(d, IntDistribution):
            if d.log:
                x = math.exp(math.log(d.low) + u * (math.log(d.high + 1) - math.log(d.low)))
                return int(min(max(math.floor(x), d.low), d.high))
            n = (d.high - d.low) // d.step + 1
            return d.low + int(u * n) * d.step
        assert isinstance(d, FloatDistribution)
        if d.log:
            return math.exp(math.log(d.low) + u * (math.log(d.high) - math.log(d.low)))
        if d.step is not None:
            n = int(round((d.high - d.low) / d.step)) + 1
            return d.low + int(u * n) * d.step
        return d.low + u * (d.high - d.low)

    def grid_values(self) -> list[str]:
        if self.kind in ("categorical", "discrete"):
            return list(self.choices)
        if self.kind == "int":
            step = int(float(self.step)) if self.step else 1
            return [str(v) for v in range(int(self.lo), int(self.hi) + 1, step)]
        if not self.step:
            raise ValueError(f"parameter {self.name!r} needs a step for a grid")
        step = float(self.step)
        n = math.floor((self.hi - self.lo) / step + 1e-9) + 1
        return [format_value(self.lo + i * step, self.decimals) for i in range(n)]

    def grid_count(self) -> int:
        if self.kind in ("categorical", "discrete"):
            return len(self.choices)
        if not self.step and self.kind == "double":
            raise ValueError(f"parameter {self.name!r} needs a step for a grid")
        step = float(self.step) if self.step else 1.0
        return math.floor((self.hi - self.lo) / step + 1e-9) + 1


class SearchSpace:
    """The experiment's parameters as Optuna distributions, in spec order."""

    def __init__(self, parameters: Sequence[ParameterSpec]):
        self._params = [_Param(p) for p in parameters]
        self.names = [p.name for p in self._params]
        self.distributions: dict[str, BaseDistribution] = {p.name: p.dist for p in self._params}

    def __len__(self) -> int:
        return len(self._params)

    def assignments(self, internal: dict[str, Any]) -> dict[str, str]:
        """Internal (Optuna) values -> Katib assignment strings, in spec order."""
        return {p.name: p.assignment(internal[p.name]) for p in self._params}

    def key(self, internal: dict[str, Any]) -> tuple[str, ...]:
        """A point's identity: its assignment strings in spec order (two points a trial cannot tell apart
        have the same key)::

            space.key(space.internal(trial.assignments)) == space.key(suggested_params)
        """
        return tuple(p.assignment(internal[p.name]) for p in self._params)

    def internal(self, assignments: dict[str, str]) -> dict[str, Any]:
        """Katib assignment strings -> internal values; ValueError when one is outside the space."""
        out = {}
        for p in self._params:
            if p.name not in assignments:
                raise ValueError(f"no value for parameter {p.name!r}")
            out[p.name] = p.internal(assignments[p.name])
        return out

    @property
    def shown_distributions(self) -> dict[str, BaseDistribution]:
        """Per parameter, the distribution of its values as people read them (for charts and dashboards)."""
        return {p.name: p.shown_dist for p in self._params}

    def shown(self, assignments: dict[str, str]) -> dict[str, Any]:
        """Katib assignment strings -> values of :attr:`shown_distributions`; ValueError when one is outside."""
        return {p.name: p.shown(assignments[p.name]) for p in self._params if p.name in assignments}

    def from_unit(self, point: Sequence[float]) -> dict[str, Any]:
        """A point of the unit cube (one coordinate per parameter) -> internal values."""
        return {p.name: p.from_unit(u) for p, u in zip(self._params, point)}

    def grid(self) -> Iterator[dict[str, str]]:
        """Every grid point, in order (first parameter varies slowest), as assignments."""
        names = self.names
        for combo in itertools.product(*(p.grid_values() for p in self._params)):
            yield dict(zip(names, combo))

    @property
    def is_continuous(self) -> bool:
        """True when no parameter is categorical or discrete."""
        return all(p.kind in ("double", "int") for p in self._params)


def grid_size(parameters: Sequence[ParameterSpec]) -> int:
    """The number of grid points; ValueError when a double parameter has no step."""
    return math.prod(_Param(p).grid_count() for p in parameters)
