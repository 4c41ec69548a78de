"""The lane steps as KFP lightweight Python components: thin shells over ``hp-tune step lane-*``.

Each runs in the hp-components image and calls the engine-independent lane step (the same
``hp-tune step lane-suggest|lane-record|lane-summary`` the Argo lanes run, see
:mod:`hp_components.kfp._runtime`), so the claim, the lock and the store are in one place::

    from hp_components.kfp._lane_components import lane_components
    steps = lane_components("ghcr.io/me/hp-components:0.1.0")
    s = steps.suggest(experiment=exp_json, config=config, storage=url, lane="0", run=run, depth=0, max_per_lane=40)

(This module must not use ``from __future__ import annotations``: KFP reads the annotations.)
"""

import functools
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Output

__all__ = ["LaneComponents", "lane_components"]


def lane_suggest(experiment: str, config: dict, storage: str, lane: str, run: str, depth: int,
                 max_per_lane: int, lost_after: int = 0) -> NamedTuple("LaneClaim", [("trials", list), ("name", str),
                                                                                   ("done", bool)]):
    """Claim a slot in the store and suggest one trial for this lane: ``trials`` is that one loop
    item (none when the lane ends: the experiment is done, or this lane ran ``max_per_lane``).
    ``lost_after`` (seconds, 0: never): a lane trial Running longer is recorded Failed (TrialLost)."""
    from collections import namedtuple

    from hp_components.kfp._runtime import lane_claim

    items, name, done, reason = lane_claim(experiment, storage, config, lane=lane, run=run, depth=depth,
                                           max_per_lane=max_per_lane, lost_after=lost_after)
    print(f"lane {lane}, step {depth + 1}: " + (f"ends ({reason})" if done else f"runs {name}"))
    return namedtuple("LaneClaim", ["trials", "name", "done"])(items, name, done)


def lane_record(experiment: str, storage: str, name: str, observations: list) -> str:
    """Record trial ``name`` in the store from the trial step's output (none: Failed, NoObservation)."""
    import json

    from hp_components.kfp._runtime import lane_record_trial

    result = lane_record_trial(experiment, storage, name, observations)
    print(f"{result['name']}: {result['condition']} ({result.get('reason') or '-'})")
    return json.dumps(result)


def lane_summary(experiment: str, storage: str, lanes: int, steps_per_lane: int, covered: bool) -> NamedTuple(
        "LaneOutputs", [("best_parameters", dict), ("best_objective", float), ("best_trial", str), ("status", dict)]):
    """The experiment's status and best trial from the store, once every lane has ended; the status
    also says how the lanes were unrolled (``lanes``: count, stepsPerLane, coversWorstCase)."""
    from collections import namedtuple

    from hp_components.kfp._runtime import lane_results, without_nulls

    out = lane_results(experiment, storage)
    best = out["best"]
    status = without_nulls(out["status"])
    status["lanes"] = {"count": lanes, "stepsPerLane": steps_per_lane, "coversWorstCase": covered}
    cond = status["conditions"][-1]
    print(f"{cond['type']}: {cond['reason']}; best {best['name'] or '-'} {best['objective']}")
    if not covered:
        print(f"each of the {lanes} lanes was unrolled to {steps_per_lane} steps: a lane that ran that many ended "
              "(LaneDepthReached in its lane-end step) and its slot idled while slower lanes finished")
    objective = float(best["objective"]) if best["objective"] is not None else 0.0
    return namedtuple("LaneOutputs", ["best_parameters", "best_objective", "best_trial", "status"])(
        dict(best["parameters"]), objective, best["name"], status)


def lane_wrapper(wrapper: Output[Artifact]) -> None:
    """The metrics wrapper (this image's ``hp_components/metrics.py``) as an artifact, once per run."""
    from hp_components.steps import WRAPPER_SOURCE

    with open(wrapper.path, "w", encoding="utf-8") as fh:
        fh.write(WRAPPER_SOURCE)


class LaneComponents(NamedTuple):
    suggest: Any
    record: Any
    summary: Any
    wrapper: Any


@functools.lru_cache(maxsize=16)
def lane_components(image: str) -> LaneComponents:
    """The lane step components, running in ``image``."""
    make = functools.partial(dsl.component, base_image=image, install_kfp_package=False)
    return LaneComponents(make(lane_suggest), make(lane_record), make(lane_summary), make(lane_wrapper))
