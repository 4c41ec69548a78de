"""``tune()``: tune a Python function, each trial in its own process, like Katib's ``KatibClient.tune``.

The function takes the parameters (as one dict, or as keyword arguments) and returns the
objective (a number, or a dict of metrics), or prints Katib-style ``name=value`` lines itself.
Its source runs in a fresh interpreter per trial (so the experiment exports as portable Katib
YAML). The module-level names it uses travel with it when they can be written as source: imported
modules and functions, literal values (numbers, strings, lists and dicts of them), functions and
classes defined in the same file; any other (a loaded model, an array) is refused before a trial
runs, naming it: create or load those inside the function::

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

import ast
import builtins
import dis
import inspect
import re
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hp_components.experiment import Experiment, new_experiment
from hp_components.local import RunResult, run_local
from hp_components.report import failure_note, trial_log, trial_rows
from hp_components.store import DEFAULT_STORAGE
from hp_components.trials import FAILED, OBSERVED, Trial

__all__ = ["tune", "build_experiment", "TuneResult", "NoTrialSucceeded"]

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

#: a captured literal longer than this is refused: the trial's whole source is one command-line argument
_MAX_LITERAL = 10_000
_LITERALS = (bool, int, float, complex, str, bytes, type(None), tuple, list, dict, set, frozenset)


class NoTrialSucceeded(RuntimeError):
    """Every trial of :func:`tune` failed; the message shows the first failure's output and log."""


def _katib_types(parameter: dict[str, Any]) -> dict[str, Any]:
    """A parameter with its feasibleSpace numbers as strings, as Katib's CRD types them (min, max, step, list)."""
    space = dict(parameter.get("feasibleSpace") or {})
    text = lambda v: v if isinstance(v, str) or isinstance(v, bool) else repr(v) if isinstance(v, float) else str(v)  # noqa: E731
    for key in ("min", "max", "step"):
        if key in space and space[key] is not None:
            space[key] = text(space[key])
    if isinstance(space.get("list"), (list, tuple)):
        space["list"] = [text(v) for v in space["list"]]
    return {**parameter, "feasibleSpace": space} if "feasibleSpace" in parameter else dict(parameter)


def _source_of(obj: Any) -> str:
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError) as e:
        raise ValueError(f"cannot read the source of {obj!r} ({e}); define it with def in a file") from None
    return re.sub(r"^(@.*\n)+", "", source)  # decorators are not part of the trial


def _function_source(fn: Callable[..., Any]) -> str:
    if fn.__name__ == "<lambda>":
        raise ValueError("the objective must be a function defined with def, not a lambda")
    return _source_of(fn)


def _loaded_names(code: types.CodeType) -> set[str]:
    """Global names ``code`` (and the functions and comprehensions inside it) reads, less those it assigns."""
    loaded, stored = set(), set()
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            loaded.add(ins.argval)
        elif ins.opname in ("STORE_GLOBAL", "STORE_NAME"):
            stored.add(ins.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            loaded |= _loaded_names(const)
    return loaded - stored


def _signature_names(source: str) -> set[str]:
    """Names read by the ``def`` line itself (defaults and annotations run when the source is defined)."""
    node = ast.parse(source).body[0]
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return set()
    a = node.args
    parts: list[Any] = [*a.defaults, *(d for d in a.kw_defaults if d is not None), node.returns,
                        *(arg.annotation for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg)
                          if arg is not None)]
    return {n.id for part in parts if part is not None for n in ast.walk(part) if isinstance(n, ast.Name)}


def _literal(value: Any) -> str | None:
    if not isinstance(value, _LITERALS):
        return None
    text = repr(value)
    try:
        if ast.literal_eval(text) != value:
            return None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return text


def _importable_as(value: Any, home: str | None) -> str | None:
    """``module.qualname`` when ``value`` is importable from a module other than the objective's own."""
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module in ("__main__", home, "builtins"):
        return None
    if "." in qualname or "<" in qualname or getattr(sys.modules.get(module), qualname, None) is not value:
        return None
    parts = module.split(".")
    for n in range(1, len(parts)):  # the public package that re-exports it (sklearn.linear_model, not ._sgd)
        package = ".".join(parts[:n])
        if not any(p.startswith("_") for p in parts[:n]) and getattr(sys.modules.get(package), qualname, None) is value:
            return f"{package}.{qualname}"
    return f"{module}.{qualname}"


class _Capture:
    """The source lines that give a trial process what a function reads at module level."""

    def __init__(self, home: str | None):
        self.home = home
        self.imports: dict[str, str] = {}
        self.definitions: dict[str, str] = {}
        self.problems: dict[str, str] = {}
        self.seen: set[int] = set()

    def function(self, fn: Any, source: str) -> None:
        if id(fn) in self.seen:
            return
        self.seen.add(id(fn))
        codes = [fn.__code__] if isinstance(fn, types.FunctionType) else [
            f.__code__ for f in vars(fn).values() if isinstance(f, types.FunctionType)]
        names = _signature_names(source)
        for code in codes:
            names |= _loaded_names(code)
        # only what the source itself names (pytest's assert rewriting, for one, adds globals of its own)
        names &= {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
        scope = getattr(fn, "__globals__", None) or vars(sys.modules.get(fn.__module__, builtins))
        cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ())) if isinstance(fn, types.FunctionType) else {}
        for name in sorted(names | set(cells)):
            if name in cells:
                try:
                    self.bind(name, cells[name].cell_contents)
                except ValueError:  # an empty cell: the function defines it later itself
                    continue
            elif name in scope:
                self.bind(name, scope[name])
            elif not hasattr(builtins, name):
                self.problems[name] = "is not defined"

    def bind(self, name: str, value: Any) -> None:
        if name in self.imports or name in self.definitions or name in self.problems:
            return
        if isinstance(value, types.ModuleType):
            self.imports[name] = f"import {value.__name__}" + (f" as {name}" if value.__name__ != name else "")
            return
        literal = _literal(value)
        if literal is not None:
            if len(literal) > _MAX_LITERAL:
                self.problems[name] = f"is a {type(value).__name__} too long to carry in the command ({len(literal)} characters)"
            else:
                self.definitions[name] = f"{name} = {literal}"
            return
        where = _importable_as(value, self.home)
        if where is not None:
            module, _, qualname = where.rpartition(".")
            self.imports[name] = f"from {module} import {qualname}" + (f" as {name}" if qualname != name else "")
            return
        if isinstance(value, (types.FunctionType, type)) and getattr(value, "__name__", "") == name \
                and "<" not in value.__qualname__ and value.__name__ != "<lambda>":
            try:
                source = _source_of(value)
            except ValueError:
                pass
            else:
                self.definitions[name] = ""  # taken, against recursion
                self.function(value, source)
                self.definitions[name] = source.rstrip()
                return
        kind = type(value)
        self.problems[name] = f"is an object of type {kind.__module__}.{kind.__qualname__}"


def _trial_source(fn: Callable[..., Any]) -> str:
    """``fn``'s source preceded by what it reads at module level; ValueError naming what cannot be carried."""
    source = _function_source(fn)
    capture = _Capture(getattr(fn, "__module__", None))
    capture.function(fn, source)
    capture.definitions.pop(fn.__name__, None)
    if capture.problems:
        listed = "; ".join(f"{name!r} {why}" for name, why in sorted(capture.problems.items()))
        raise ValueError(
            f"the objective {fn.__name__!r} uses module-level names a trial cannot get: {listed}. Each trial runs the "
            "function's source in a fresh interpreter, which carries imports, literal values and functions or classes "
            "of the same file: create or load the others inside the function (or pass them as parameters)")
    return "\n".join([*capture.imports.values(), *(d for d in capture.definitions.values() if d), source])


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
    parameters = {k: _katib_types(v) for k, v in parameters.items()}
    params = list(parameters)
    signature = inspect.signature(objective)
    call = "**_params" if set(signature.parameters) >= set(params) and params else "_params"
    code = _RUNNER.format(source=_trial_source(objective), name=objective.__name__, call=call,
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


def _say_failures(folder: Path) -> Callable[[str, Any], None]:
    """An event handler that prints each failed trial's reason, the last line of its output and its log."""
    def on_event(kind: str, payload: Any) -> None:
        if kind == "finished" and payload.condition in FAILED:
            path, tail = trial_log(folder, payload, lines=1)
            last = f": {tail[-1]}" if tail else ""
            print(f"hp.tune: {payload.name} {payload.condition} ({payload.message}){last} [log: {path}]",
                  file=sys.stderr, flush=True)
        elif kind == "warning":
            print(f"hp.tune: warning: {payload}", file=sys.stderr, flush=True)
    return on_event


def tune(objective: Callable[..., Any], parameters: dict[str, dict[str, Any]], *, storage: str = DEFAULT_STORAGE,
         run_dir: str = "hp-runs", fresh: bool = True, **options: Any) -> TuneResult:
    """Tune ``objective`` on this machine (see the module docstring); options as :func:`build_experiment`.

    ``fresh`` (default True) starts over if an experiment of that name is already stored; pass
    False to resume it instead. The experiment's command is ``python3`` (as it runs in a trial image);
    here that is the interpreter calling ``tune``. Each failed trial is reported on stderr with its log;
    raises :class:`NoTrialSucceeded` (with the first failure's output) when no trial succeeded, and
    ValueError, before any trial runs, when the objective uses a module-level name it cannot carry.
    """
    experiment = build_experiment(objective, parameters, **options)
    folder = Path(run_dir) / experiment.name
    run = run_local(experiment, storage=storage, run_dir=run_dir, fresh=fresh, on_event=_say_failures(folder),
                    python=sys.executable)
    result = TuneResult(experiment, run)
    if not run.interrupted and not any(t.condition in OBSERVED and t.objective_value is not None for t in run.history):
        failed = [t for t in run.history if t.condition not in ("Succeeded", "EarlyStopped", "Interrupted")]
        first = failed[0] if failed else None
        detail = failure_note(run.run_dir, first) if first is not None else "no trial ran"
        raise NoTrialSucceeded(f"no trial of {experiment.name!r} succeeded ({run.status.reason}; "
                               f"{len(failed)} of {len(run.history)} trials failed). {detail}")
    return result
