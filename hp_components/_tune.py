"""``tune()``: tune a Python function, each trial in its own process, like Katib's ``KatibClient.tune``.

The function takes the parameters (as one dict, or as keyword arguments) and returns the
objective (a number, or a dict of metrics), or prints Katib-style ``name=value`` lines itself.
Like Katib's, it must be self-contained: its source runs in a fresh interpreter, so it imports
what it needs inside its body::

    import hp_components as hp
    from hp_components import search

    def objective(params):
        import math
        return (math.log10(params["lr"]) + 2) ** 2 + params["layers"]

    result = hp.tune(objective, parameters={"lr": search.double(1e-4, 1e-1, log=True),
                                            "layers": search.int(1, 4)},
                     objective_metric_name="loss", objective_type="minimize", max_trial_count=12)
    print(result.best_parameters, result.best_objective)
    print(result.experiment.to_yaml())   # the same experiment as Katib YAML (or compile it for KFP/Argo)
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from dataclasses import dataclass
from typing import Any, Callable

from hp_components.experiment import Experiment, new_experiment
from hp_components.local import RunResult, run_local
from hp_components.report import trial_rows
from hp_components.store import DEFAULT_STORAGE
from hp_components.trials import Trial

__all__ = ["tune", "build_experiment", "TuneResult"]

_RUNNER = '''
import json as _json, sys as _sys
{source}
_types = {types!r}
_params = {{}}
for _arg in _sys.argv[1:]:
    _k, _v = _arg.split("=", 1)
    _t = _types[_k]
    _params[_k] = float(_v) if _t in ("double", "discrete") else int(_v) if _t == "int" else _v
_result = {name}({call})
if isinstance(_result, dict):
    for _k, _v in _result.items():
        print(f"{{_k}}={{_v}}", flush=True)
elif _result is not None:
    print(f"{metric}={{_result}}", flush=True)
'''


def _function_source(fn: Callable[..., Any]) -> str:
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as e:
        raise ValueError(f"cannot read the source of {fn!r} ({e}); define it with def in a file") from None
    if fn.__name__ == "<lambda>":
        raise ValueError("the objective must be a function defined with def, not a lambda")
    return re.sub(r"^(@.*\n)+", "", source)  # decorators are not part of the trial


def build_experiment(
    objective: Callable[..., Any],
    parameters: dict[str, dict[str, Any]],
    *,
    objective_metric_name: str = "objective",
    objective_type: str = "maximize",
    additional_metric_names: list[str] | None = None,
    goal: float | None = None,
    max_trial_count: int = 10,
    parallel_trial_count: int = 1,
    max_failed_trial_count: int | None = None,
    algorithm_name: str = "auto",
    algorithm_settings: dict[str, Any] | None = None,
    early_stopping: tuple[str, dict[str, Any]] | None = None,
    name: str | None = None,
    base_image: str = "docker.io/library/python:3.11-slim",
    python: str = "python3",
) -> Experiment:
    """The Katib Experiment that ``tune`` runs for ``objective`` (raises SpecError when invalid)."""
    params = list(parameters)
    signature = inspect.signature(objective)
    call = "**_params" if set(signature.parameters) >= set(params) and params else "_params"
    code = _RUNNER.format(source=_function_source(objective), name=objective.__name__, call=call,
                          types={k: v["parameterType"] for k, v in parameters.items()}, metric=objective_metric_name)
    exp_name = name or re.sub(r"[^a-z0-9-]+", "-", objective.__name__.lower().replace("_", "-")).strip("-")[:40] or "tune"
    if not exp_name[0].isalpha():
        exp_name = ("tune-" + exp_name)[:40]
    container = {"name": "training-container", "image": base_image,
                 "command": [python, "-c", code, *(f"{k}=${{trialParameters.{k}}}" for k in params)]}
    return new_experiment(exp_name, [{"name": k, **v} for k, v in parameters.items()], container,
                          objective_metric_name=objective_metric_name, objective_type=objective_type, goal=goal,
                          additional_metric_names=additional_metric_names or (), algorithm_name=algorithm_name,
                          algorithm_settings=algorithm_settings, max_trial_count=max_trial_count,
                          parallel_trial_count=parallel_trial_count, max_failed_trial_count=max_failed_trial_count,
                          early_stopping=early_stopping)


@dataclass
class TuneResult:
    """What :func:`tune` found: the best trial, every trial as rows, and the experiment itself."""

    experiment: Experiment
    run: RunResult

    @property
    def status(self):
        return self.run.status

    @property
    def best(self) -> Trial | None:
        return self.run.status.best

    @property
    def best_parameters(self) -> dict[str, Any]:
        types = {p.name: p.parameter_type for p in self.experiment.spec.parameters}
        raw = self.best.assignments if self.best else {}
        return {k: float(v) if types[k] in ("double", "discrete") else int(v) if types[k] == "int" else v
                for k, v in raw.items()}

    @property
    def best_objective(self) -> float | None:
        return self.best.objective_value if self.best else None

    @property
    def trials(self) -> list[dict[str, str]]:
        """One dict per trial (name, condition, objective, parameters, metrics): a table without pandas."""
        header, rows = trial_rows(self.experiment, self.run.history)
        return [dict(zip(header, row)) for row in rows]

    def __str__(self) -> str:
        return (f"{self.experiment.name}: {self.status.condition} ({self.status.reason}); best "
                f"{self.experiment.spec.objective.objective_metric_name}={self.best_objective} with {self.best_parameters}")


def tune(objective: Callable[..., Any], parameters: dict[str, dict[str, Any]], *, storage: str = DEFAULT_STORAGE,
         run_dir: str = "hp-runs", fresh: bool = True, **options: Any) -> TuneResult:
    """Tune ``objective`` on this machine (see the module docstring); options as :func:`build_experiment`.

    ``fresh`` (default True) starts over if an experiment of that name is already stored; pass
    False to resume it instead.
    """
    options.setdefault("python", sys.executable)
    experiment = build_experiment(objective, parameters, **options)
    return TuneResult(experiment, run_local(experiment, storage=storage, run_dir=run_dir, fresh=fresh))
