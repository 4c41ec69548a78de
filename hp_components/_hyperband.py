"""Katib's ``hyperband`` suggestion algorithm as a pure schedule over the history.

Katib (pkg/suggestion/v1beta1/hyperband/service.py) runs Hyperband's brackets ``s = s_max .. 0``
with ``s_max = int(log(r_l) / log(eta))``. Bracket ``s`` starts ``n = ceil((s_max + 1) * eta**s /
(s + 1))`` random trials with the resource parameter (``resource_name``) set to ``int(r)``,
``r = r_l * eta**-s``; each further rung ``i = 1 .. s`` copies the best ``ceil(n_{i-1} / eta)``
trials of the rung before (``n_{i-1} = ceil(n * eta**-(i-1))``) with the resource
``int(r * eta**i)``. A rung waits until every trial of the rung before has finished; the next
bracket's first rung starts once the last rung of a bracket was created. After bracket 0 the
algorithm has nothing left.

Katib keeps its position in the schedule in the experiment's algorithm settings; here each trial
carries its rung (system attribute ``hp:hyperband``), so a suggestion is a pure function of the
history. Differences, by design: the first rung's size is Katib's formula, where Katib's
``GetSuggestions`` then overrides it with the number of trials its controller asks for (the free
slots); a rung promotes the best *succeeded* trials of the rung before, where Katib raises an
error when one of them did not succeed (and never continues)::

    from hp_components._hyperband import schedule
    [(r.bracket, r.rung, r.size, r.resource) for r in schedule(eta=3, r_l=9)]
    # [(2, 0, 9, 1), (2, 1, 3, 3), (2, 2, 1, 9), (1, 0, 5, 3), (1, 1, 2, 9), (0, 0, 3, 9)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from hp_components.trials import Trial

__all__ = ["Rung", "RUNG_ATTR", "s_max", "schedule", "max_parallel", "planned_resources", "next_trials"]

#: system attribute of a hyperband trial: its rung, as "bracket/rung"
RUNG_ATTR = "hp:hyperband"


@dataclass(frozen=True)
class Rung:
    """One rung of a bracket: ``size`` trials with the resource parameter set to ``resource``."""

    bracket: int
    rung: int
    size: int
    resource: int

    @property
    def tag(self) -> str:
        return f"{self.bracket}/{self.rung}"


def s_max(eta: float, r_l: float) -> int:
    """Katib's ``s_max``: ``int(log(r_l) / log(eta))``."""
    return int(math.log(r_l) / math.log(eta))


def max_parallel(eta: float, r_l: float) -> int:
    """The ``parallelTrialCount`` Katib's validation asks for: ``ceil(int(eta) ** s_max)``."""
    return int(math.ceil(int(eta) ** s_max(eta, r_l)))


def schedule(eta: float, r_l: float) -> list[Rung]:
    """Every rung of every bracket, in the order Katib creates them."""
    top = s_max(eta, r_l)
    rungs: list[Rung] = []
    for s in range(top, -1, -1):
        n = int(math.ceil(float(top + 1) * (eta**s / float(s + 1))))
        r = r_l * eta ** (-s)
        rungs.append(Rung(s, 0, n, int(r)))
        for i in range(1, s + 1):
            previous = math.ceil(n * eta ** (-(i - 1)))
            rungs.append(Rung(s, i, int(math.ceil(previous / eta)), int(r * eta**i)))
    return rungs


def planned_resources(eta: float, r_l: float, max_trials: int | None) -> list[int]:
    """The resource values the first ``max_trials`` trials get when every rung fills up."""
    out: list[int] = []
    for rung in schedule(eta, r_l):
        out += [rung.resource] * rung.size
        if max_trials is not None and len(out) >= max_trials:
            return out[:max_trials]
    return out


def _rank(trials: Sequence[Trial], direction: str) -> list[Trial]:
    scored = [t for t in trials if t.condition == "Succeeded" and t.objective_value is not None
              and math.isfinite(t.objective_value)]
    return sorted(scored, key=lambda t: t.objective_value, reverse=direction == "maximize")  # type: ignore[arg-type, return-value]


def next_trials(rungs: Sequence[Rung], history: Sequence[Trial], count: int,
                direction: str) -> list[tuple[Rung, Trial | None]]:
    """Up to ``count`` trials to create now: (rung, the trial to promote, or None for a random point).

    Empty when the next rung waits for the rung before to finish, or when the schedule is done.
    """
    members: dict[str, list[Trial]] = {}
    for t in history:
        tag = t.system_attrs.get(RUNG_ATTR)
        if tag is not None and t.condition != "Interrupted":
            members.setdefault(tag, []).append(t)
    out: list[tuple[Rung, Trial | None]] = []
    previous: list[Trial] = []
    previous_filling = False  # the rung before gets trials in this very batch
    for rung in rungs:
        if len(out) == count:
            break
        mine = members.get(rung.tag, [])
        if rung.rung == 0:
            sources: list[Trial | None] = [None] * rung.size
        else:
            if previous_filling or any(t.active for t in previous):
                break  # Katib's child rung needs every trial of the rung before finished
            sources = list(_rank(previous, direction)[:rung.size])
        missing = sources[len(mine):]
        out += [(rung, source) for source in missing[:count - len(out)]]
        previous, previous_filling = mine, bool(missing)
    return out
