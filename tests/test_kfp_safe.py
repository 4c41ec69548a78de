"""``safe_trial_component`` (hp_components/kfp/_safe.py): the generated function, executed for real.

Its observation must carry what :func:`hp_components.metrics.judge` would say for the same facts: a
CamelCase ``reason`` and the details in ``message``, so the collect step records them as they are.
"""

import json

import pytest

kfp_dsl = pytest.importorskip("kfp.dsl")

from hp_components.kfp._safe import safe_trial_component  # noqa: E402
from hp_components.kfp._runtime import observation_of  # noqa: E402


@kfp_dsl.component(base_image="python:3.11")
def _train(x: float, how: str) -> float:
    import sys

    if how == "raise":
        raise ValueError("lr too large")
    if how == "exit":
        sys.exit(3)
    return (x - 0.25) ** 2


def _run(**kwargs: object) -> dict:
    safe = safe_trial_component(_train, objective="loss", output="Output")
    return json.loads(safe.python_func(**kwargs))


def test_an_exception_is_a_failed_trial_with_reason_and_message() -> None:
    obs = _run(x=0.5, how="raise")
    assert obs == {"condition": "Failed", "reason": "TrialFailed", "message": "ValueError: lr too large", "metrics": []}


def test_sys_exit_is_a_failed_trial_naming_the_code() -> None:
    obs = _run(x=0.5, how="exit")
    assert (obs["condition"], obs["reason"]) == ("Failed", "TrialFailed")
    assert obs["message"] == "the training function called sys.exit(3)"


def test_a_value_is_a_succeeded_observation() -> None:
    obs = _run(x=0.5, how="ok")
    assert obs["condition"] == "Succeeded" and obs["metrics"][0]["name"] == "loss"
    assert float(obs["metrics"][0]["latest"]) == pytest.approx(0.0625)


def test_an_output_that_is_not_json_is_a_bad_observation_with_a_message() -> None:
    obs = observation_of("{oops", "loss")
    assert (obs["condition"], obs["reason"]) == ("Failed", "BadObservation")
    assert "neither a number nor JSON" in obs["message"]
