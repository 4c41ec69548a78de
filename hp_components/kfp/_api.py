"""Tuning inside your own KFP pipeline: :func:`tune` and :func:`compile_experiment`.

::

    from kfp import dsl
    from hp_components.kfp import tune

    @dsl.component
    def train(lr: float, layers: int, optimizer: str) -> float:
        ...                                    # returns the validation accuracy

    @dsl.pipeline
    def my_pipeline():
        t = tune(train, objective="accuracy", type="maximize", max_trial_count=12, parallel_trial_count=3,
                 parameters={"lr": (0.001, 0.1, "log"), "layers": (2, 5), "optimizer": ["sgd", "adam"]})
        final = train_final(params=t.outputs["best_parameters"])

The training component's inputs are named after the parameters; it reports its objective as a
float or str output (``objective_output``, default its single float output) or in a ``Metrics``
artifact (``metrics_output``: the metric named ``objective``). KFP cannot carry NaN in a float,
so a trial that has no objective returns a str output (``"nan"`` or ``""``) or leaves the metric
out of its Metrics: it is recorded ``MetricsUnavailable`` and counts toward
``max_failed_trial_count``. An exception (or ``sys.exit``) in a lightweight component is a recorded
``Failed`` trial (``catch_failures``); in a container component or one reporting through a
Metrics artifact it fails the run (for KFP that is an infrastructure fault). The whole search is one graph task with outputs ``best_parameters``,
``best_objective``, ``best_trial`` and ``status``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from hp_components.experiment import Experiment, SpecError, load_experiment, new_experiment
from hp_components.steps import DEFAULT_IMAGE

from hp_components.kfp._errors import KfpError, UnsupportedExperiment
from hp_components.kfp._components import step_components
from hp_components.jobs import created_as_job
from hp_components.kfp._trial import (check_experiment, configure_launcher_task, configure_trial_task,
                                      trial_component, trial_fields, trial_inputs)

__all__ = ["compile_experiment", "experiment_pipeline", "tune", "search_experiment"]

_KFP_TYPES = {"NUMBER_DOUBLE": "float", "NUMBER_INTEGER": "int", "STRING": "str", "BOOLEAN": "bool",
              "Float": "float", "Integer": "int", "String": "str", "Boolean": "bool"}


def experiment_pipeline(exp: Experiment, *, image: str | None = None, retry_backoff: str | None = None,
                        lanes: Any = None) -> Any:
    """A compiled-to-be KFP pipeline (graph component) running Katib Experiment ``exp``.

    ``retry_backoff`` (default :data:`hp_components.kfp._pipeline.RETRY_BACKOFF`) is the wait before
    the first retry of a failed pod. ``lanes``: a :class:`hp_components.kfp._lanes.LaneStore` for
    ``parallelTrialCount`` lanes over that store instead of rounds (see :mod:`hp_components.kfp._lanes`).
    """
    from hp_components.kfp._pipeline import RETRY_BACKOFF

    retry_backoff = retry_backoff or RETRY_BACKOFF
    from hp_components.kfp._pipeline import tuning_graph

    if lanes is not None:
        from hp_components.kfp._lanes import lanes_graph

        def graph(exp: Experiment, config: dict, trial: Any, **kw: Any) -> Any:
            return lanes_graph(exp, config, trial, lanes, **kw)
    else:
        graph = tuning_graph

    check_experiment(exp)
    fields = trial_fields(exp)
    if created_as_job(exp):  # PyTorchJob, TFJob, ...: the launcher step creates the job and waits for it
        launcher = step_components(image or DEFAULT_IMAGE).launch

        def launched(item: Any, wrapper: Any, experiment: Any) -> Any:
            task = configure_launcher_task(launcher(experiment=experiment, trial=item))
            task.set_display_name("trial")
            return task, task.outputs["observation"]

        return graph(exp, {"fields": fields}, launched, image=image, retry_backoff=retry_backoff)

    comp = trial_component(exp)

    def trial(item: Any, wrapper: Any, experiment: Any) -> Any:
        task = comp(hp_wrapper=wrapper, **trial_inputs(exp, item))
        configure_trial_task(task, exp)
        task.set_display_name("trial")
        return task, task.outputs["observation"]

    return graph(exp, {"fields": fields}, trial, image=image, uses_wrapper=True, retry_backoff=retry_backoff)


def compile_experiment(exp: Experiment, output: Path | str, *, kind: str | None = None, image: str | None = None,
                       storage: str | None = None, lanes: bool = False, storage_secret: str | None = None) -> None:
    """Compile Katib Experiment ``exp`` into a KFP v2 IR YAML at ``output`` (``kind`` unused).

    With ``lanes``, ``parallelTrialCount`` lanes over the store at ``storage`` (a URL without its
    password; ``storage_secret``: the Kubernetes Secret ``NAME[:KEY]`` holding it) instead of rounds.
    Raises :class:`UnsupportedExperiment` (a ValueError naming the field) for what KFP cannot run.
    """
    from kfp import compiler

    store = None
    if lanes:
        from hp_components.kfp._lanes import LaneStore

        if not storage:
            raise UnsupportedExperiment("--storage", "--lanes needs the experiment store the lanes share "
                                        "(--storage postgresql+psycopg://user@host:5432/db)")
        store = LaneStore(storage, storage_secret)
    elif storage or storage_secret:
        raise UnsupportedExperiment("--storage", "is for --lanes only (rounds keep their state in an artifact)")
    pipeline = experiment_pipeline(exp, image=image, lanes=store)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline, str(output))


# --------------------------------------------------------------------------- tune()


def _parameter(name: str, space: Any) -> dict[str, Any]:
    """A Katib parameter from a short form: (lo, hi), (lo, hi, "log"), [choices], or a Katib dict."""
    if isinstance(space, Mapping):
        return {"name": name, **space}
    if isinstance(space, (list,)) or (isinstance(space, tuple) and space and isinstance(space[0], str)):
        return {"name": name, "parameterType": "categorical", "feasibleSpace": {"list": [str(v) for v in space]}}
    if isinstance(space, tuple) and len(space) in (2, 3):
        lo, hi = space[0], space[1]
        kind = "int" if isinstance(lo, int) and isinstance(hi, int) and not isinstance(lo, bool) else "double"
        fs: dict[str, Any] = {"min": str(lo), "max": str(hi)}
        if len(space) == 3:
            if space[2] != "log":
                raise KfpError(f"parameters[{name!r}]: the third item may only be 'log', not {space[2]!r}")
            fs["distribution"] = "logUniform"
        return {"name": name, "parameterType": kind, "feasibleSpace": fs}
    raise KfpError(f"parameters[{name!r}]: give (min, max), (min, max, 'log'), a list of choices or a Katib "
                   f"parameter dict, not {space!r}")


def search_experiment(name: str, parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, objective: str,
                      type: str = "maximize", goal: float | None = None, algorithm: str = "tpe",
                      algorithm_settings: Mapping[str, Any] | None = None, max_trial_count: int,
                      parallel_trial_count: int = 3, max_failed_trial_count: int | None = None) -> Experiment:
    """A Katib Experiment describing a search over a component's inputs (validated like any other)."""
    params = ([_parameter(k, v) for k, v in parameters.items()] if isinstance(parameters, Mapping)
              else [dict(p) for p in parameters])
    container = {"name": "trial", "image": "kfp-component",
                 "command": ["kfp-component", *(f"--{p['name']}=${{trialParameters.{p['name']}}}" for p in params)]}
    return new_experiment(name, params, container, objective_metric_name=objective, objective_type=type, goal=goal,
                          algorithm_name=algorithm, algorithm_settings=algorithm_settings,
                          max_trial_count=max_trial_count, parallel_trial_count=parallel_trial_count,
                          max_failed_trial_count=max_failed_trial_count)


def _input_name(param: str, inputs: Mapping[str, Any]) -> str:
    for candidate in (param, param.replace("-", "_"), re.sub(r"\W", "_", param)):
        if candidate in inputs:
            return candidate
    raise KfpError(f"parameter {param!r}: the training component has no input of that name "
                   f"(its inputs: {', '.join(inputs) or 'none'})")


def tune(train: Any, *, parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
         experiment: Experiment | Mapping[str, Any] | str | Path | None = None, objective: str | None = None,
         type: str = "maximize", goal: float | None = None, algorithm: str = "tpe",
         algorithm_settings: Mapping[str, Any] | None = None, max_trial_count: int | None = None,
         parallel_trial_count: int = 3, max_failed_trial_count: int | None = None,
         objective_output: str | None = None, metrics_output: str | None = None, image: str | None = None,
         name: str | None = None, arguments: Mapping[str, Any] | None = None,
         configure: Any = None, catch_failures: bool = True, storage: str | None = None,
         storage_secret: str | None = None) -> Any:
    """Add a hyperparameter search over ``train`` to the pipeline being defined; returns its task.

    Give the search either as ``parameters`` (+ ``objective``, ``max_trial_count``, ...) or as a
    Katib ``experiment`` (path, dict or :class:`Experiment`) whose parameters name ``train``'s
    inputs. ``arguments`` are constant values for ``train``'s other inputs; ``configure(task)``
    may set resources on each trial task (e.g. ``lambda t: t.set_accelerator_type("nvidia.com/gpu")``).
    With ``catch_failures`` (the default, for lightweight Python components whose objective is a
    returned value) an exception or ``sys.exit`` in ``train`` is a recorded ``Failed`` trial instead of
    a failed run (see :mod:`hp_components.kfp._safe`). With ``storage`` (a PostgreSQL/MySQL URL
    without its password, the cluster's pods reach it; ``storage_secret``: the Kubernetes Secret
    ``NAME[:KEY]`` holding the password) the search runs as ``parallel_trial_count`` lanes over that
    store instead of rounds (see :mod:`hp_components.kfp._lanes`).
    """
    from hp_components.kfp._pipeline import tuning_graph

    store = None
    if storage is not None:
        from hp_components.kfp._lanes import LaneStore

        store = LaneStore(storage, storage_secret)
        if metrics_output is not None:
            raise KfpError("tune(storage=...): lanes read a float or str objective output, not a Metrics "
                           "artifact (metrics_output); use objective_output or rounds (no storage)")
    elif storage_secret is not None:
        raise KfpError("tune(storage_secret=...): give storage= too (the lanes' store)")

    spec_inputs = train.component_spec.inputs or {}
    spec_outputs = train.component_spec.outputs or {}
    if experiment is not None:
        exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)  # type: ignore[arg-type]
    else:
        if parameters is None or objective is None or max_trial_count is None:
            raise KfpError("tune(): give parameters, objective and max_trial_count (or a Katib experiment)")
        base = re.sub(r"[^a-z0-9-]", "-", (name or train.name).lower()).strip("-")[:30] or "tune"
        if not base[0].isalpha():
            base = "t-" + base[:28]
        try:
            exp = search_experiment(base + "-tune", parameters, objective=objective, type=type, goal=goal,
                                    algorithm=algorithm, algorithm_settings=algorithm_settings,
                                    max_trial_count=max_trial_count, parallel_trial_count=parallel_trial_count,
                                    max_failed_trial_count=max_failed_trial_count)
        except SpecError as e:
            raise KfpError(f"tune(): {e}") from None
    if exp.spec.max_trial_count is None:
        raise UnsupportedExperiment("spec.maxTrialCount", "is required on KFP (rounds are unrolled at compile time)")
    fields: dict[str, dict[str, str]] = {}
    for p in exp.spec.parameters:
        key = _input_name(p.name, spec_inputs)
        kind = _KFP_TYPES.get(str(spec_inputs[key].type), "str")
        fields[key] = {"parameter": p.name, "type": kind}
    fixed = dict(arguments or {})
    for key, value in fixed.items():
        if key in fields:
            raise KfpError(f"arguments[{key!r}]: that input is tuned; remove it from arguments")
        if value.__class__.__module__.startswith("kfp"):
            raise KfpError(f"arguments[{key!r}]: only constant values can reach the trials, not pipeline channels")
    if metrics_output is not None:
        if metrics_output not in spec_outputs:
            raise KfpError(f"metrics_output={metrics_output!r}: {train.name} has no such output")
        out_name = metrics_output
    else:
        floats = [k for k, o in spec_outputs.items() if _KFP_TYPES.get(str(o.type)) in ("float", "str")]
        out_name = objective_output or (floats[0] if len(floats) == 1 else "")
        if out_name not in spec_outputs:
            raise KfpError(f"{train.name}: name its objective output with objective_output= (a float output) "
                           f"or metrics_output= (a Metrics artifact); its outputs: {', '.join(spec_outputs) or 'none'}")

    trial_component = train
    if catch_failures and metrics_output is None and getattr(train, "python_func", None) is not None:
        from hp_components.kfp._safe import safe_trial_component

        trial_component = safe_trial_component(train, objective=exp.spec.objective.objective_metric_name,
                                               output=out_name)
        out_name = "Output"

    def trial(item: Any, wrapper: Any, experiment: Any) -> Any:
        task = trial_component(**{k: getattr(item, k) for k in fields}, **fixed)
        task.set_display_name("trial")  # what hp-tune status counts in ML Metadata (kfp/_status.py R2)
        if configure is not None:
            configure(task)
        return task, task.outputs[out_name]

    if store is not None:
        from hp_components.kfp._lanes import lanes_graph

        graph = lanes_graph(exp, {"fields": fields}, trial, store, image=image, name=exp.name)
    else:
        graph = tuning_graph(exp, {"fields": fields}, trial, image=image,
                             metrics_artifacts=metrics_output is not None, name=exp.name)
    task = graph()
    task.set_caching_options(False)
    task.set_display_name(f"tune {exp.name}")
    return task
