"""A lightweight training component whose failures become recorded trials, not failed runs.

:func:`safe_trial_component` builds, from your ``@dsl.component`` function, a component with the
same inputs that runs your function inside ``try``/``except`` and returns an observation (JSON)::

    {"condition": "Succeeded", "metrics": [{"name": "accuracy", "min": "0.93", ...}]}
    {"condition": "Failed", "reason": "TrialFailed", "message": "ValueError: lr too large", "metrics": []}

Your function's source is nested in the generated one (a KFP lightweight component ships only its
own function), and the command keeps your component's image and ``packages_to_install``.

    safe = safe_trial_component(train, objective="accuracy", output="Output")
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import itertools
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from hp_components.kfp._errors import KfpError

__all__ = ["safe_trial_component"]

_BODY = '''
    import json as _hp_json
    import math as _hp_math
    import traceback as _hp_traceback
    try:
        _hp_result = {func}({call})
        _hp_value = _hp_result if {output!r} == "Output" else getattr(_hp_result, {output!r})
    except (Exception, SystemExit) as _hp_error:  # a failed training run: recorded, the pipeline goes on
        _hp_traceback.print_exc()
        if isinstance(_hp_error, SystemExit):
            _hp_message = "the training function called sys.exit(" + repr(_hp_error.code) + ")"
        else:
            _hp_message = type(_hp_error).__name__ + ": " + str(_hp_error)[:500]
        return _hp_json.dumps({{"condition": "Failed", "reason": "TrialFailed", "message": _hp_message,
                                "metrics": []}})
    try:
        _hp_number = float(_hp_value)
    except (TypeError, ValueError):
        _hp_number = float("nan")
    if not _hp_math.isfinite(_hp_number):
        return _hp_json.dumps({{"condition": "Succeeded", "metrics": []}})
    _hp_text = repr(_hp_number)
    return _hp_json.dumps({{"condition": "Succeeded", "metrics": [
        {{"name": {objective!r}, "min": _hp_text, "max": _hp_text, "latest": _hp_text}}]}})
'''


def _annotation(ann: Any) -> str:
    if ann is inspect.Parameter.empty:
        return ""
    if isinstance(ann, type) and ann.__module__ == "builtins":
        return ann.__name__
    return repr(ann).replace("typing.", "")


def _source(func: Any) -> str:
    code = textwrap.dedent(inspect.getsource(func))
    return "\n".join(itertools.dropwhile(lambda line: not line.startswith("def"), code.split("\n")))


def safe_trial_component(train: Any, *, objective: str, output: str) -> Any:
    """``train`` (a lightweight Python component) wrapped so that an exception is a Failed trial."""
    from kfp import dsl

    func = getattr(train, "python_func", None)
    if func is None:
        raise KfpError(f"{train.name}: only lightweight Python components can be wrapped (catch_failures)")
    sig = inspect.signature(func)
    params = []
    for p in sig.parameters.values():
        ann = _annotation(p.annotation)
        if any(marker in ann for marker in ("Input[", "Output[", "InputPath", "OutputPath")):
            raise KfpError(f"{train.name}: input {p.name!r} is an artifact; catch_failures supports parameter inputs only")
        text = p.name + (f": {ann}" if ann else "")
        if p.default is not inspect.Parameter.empty:
            text += f" = {p.default!r}"
        params.append(text)
    name = f"hp_safe_{func.__name__}"
    body = _BODY.format(func=func.__name__, call=", ".join(f"{p}={p}" for p in sig.parameters), output=output,
                        objective=objective)
    source = (f"def {name}({', '.join(params)}) -> str:\n"
              f"    \"\"\"{train.name} run as a trial: its outcome as an observation (JSON).\"\"\"\n"
              + textwrap.indent(_source(func), "    ") + "\n" + body)
    original = train.component_spec.implementation.container
    with tempfile.TemporaryDirectory(prefix="hp-safe-") as folder:  # KFP reads a function's source from its file
        path = Path(folder) / f"{name}.py"
        path.write_text("from typing import *\nfrom kfp.dsl import *\n\n" + source, encoding="utf-8")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        safe = dsl.component(getattr(module, name), base_image=original.image)
    container = safe.component_spec.implementation.container
    # keep the original's bootstrap (its packages_to_install, kfp install), run our source
    command = list(original.command[:-1]) + [container.command[-1]]
    safe.component_spec.implementation.container = dataclasses.replace(container, command=command)
    safe.component_spec.name = train.component_spec.name
    return safe
