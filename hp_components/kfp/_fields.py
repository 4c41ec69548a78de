"""The loop item's field names, shared by the trial component and the step runtime.

(One module for what :mod:`hp_components.kfp._trial` and :mod:`hp_components.kfp._runtime`
both need, so neither imports the other.)::

    trial_fields(exp)   # {"lr": {"trialParameter": "learningRate", "type": "str"}, ...}
"""

from __future__ import annotations

import re

from hp_components.experiment import Experiment

__all__ = ["TRIAL_KEY", "ITEM_KEY", "STOP_KEY", "WRAPPER_KEY", "trial_fields"]

#: the loop item key holding the trial's name, and the one holding the suggest step's trial record
TRIAL_KEY = "hp_trial"
ITEM_KEY = "hp_item"
#: the loop item key (and trial component input) holding the trial's early-stopping rule ("" for none)
STOP_KEY = "hp_stop_rule"
#: the trial component's input that receives the metrics wrapper (an artifact)
WRAPPER_KEY = "hp_wrapper"


def _key(name: str) -> str:
    key = re.sub(r"[^a-z0-9_]", "_", name.lower())
    return key if key[:1].isalpha() else f"p_{key}"


def trial_fields(exp: Experiment) -> dict[str, dict[str, str]]:
    """Loop item key -> ``{"trialParameter": name, "type": "str"}`` for every trialParameter."""
    out: dict[str, dict[str, str]] = {}
    for tp in exp.spec.trial_template.trial_parameters or []:
        key = _key(tp.name)
        while key in out or key in (TRIAL_KEY, ITEM_KEY, STOP_KEY, WRAPPER_KEY):
            key += "_"
        out[key] = {"trialParameter": tp.name, "type": "str"}
    return out
