"""The local runner: trials as subprocesses, ``parallelTrialCount`` at once, state in the store.

An asyncio scheduler keeps every slot busy: when a trial ends, the next suggestion starts at once
(no lockstep rounds) and the result is written as it starts, by a thread that does all the store's
writes. A trial's primary container ``command`` + ``args`` runs without a shell in ``workdir``
(the image is ignored), its output goes to ``hp-runs/<experiment>/<trial>/output.log`` and
through the metrics parser. When the experiment is done, trials still running are stopped
(SIGTERM to the process group, SIGKILL after ``kill_grace`` seconds) and recorded ``Killed``;
Ctrl-C stops them too and records them ``Interrupted``, to be run again on resume. ::

    from hp_components import load_experiment
    from hp_components.local import run_local

    result = run_local(load_experiment("examples/random-digits.yaml"), storage="sqlite:///hp.db")
    print(result.status.reason, result.status.best.assignments)

Each trial sees ``KATIB_TRIAL_NAME`` (as Katib sets it), ``HP_TRIAL_NAME``,
``HP_EXPERIMENT_NAME`` and ``HP_TRIAL_DIR``; a trial whose container asks for
``nvidia.com/gpu: n`` gets ``n`` GPUs of its own in ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import asyncio
import collections
import math
import os
import re
import shlex
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from hp_components.algorithms import get_algorithm
from hp_components.earlystop import get_early_stopping
from hp_components.experiment import Experiment, parse_experiment, trial_collector
from hp_components._gpus import GpuPool, detect_gpus
from hp_components._trial_process import Spares, TrialProcess, end, kill_leftovers, now
from hp_components.metrics import FileCollector, judge
from hp_components.status import ExperimentStatus, experiment_status, remaining_slots
from hp_components.space import SearchSpace
from hp_components.store import DEFAULT_STORAGE, RERUN_OF, ExperimentStore, load_finished, store_fault
from hp_components.suggest import filler, suggest, unique_batch
from hp_components.template import Container, TemplateError, primary_container, render_trial_spec
from hp_components.trials import Trial, trial_name

__all__ = ["run_local", "RunResult", "RunnerError", "RunnerFault", "detect_gpus"]

_HEARTBEAT = 15.0
#: with a model slow to fit, how long a free slot waits for a fit just begun before it gets a random
#: point: a fast suggestion (the GP's Sobol design, a fit on a short history) still fills it
_FILL_AFTER = 0.25
_EARLY_SPARES = 8  # at most this many trial supervisors started before the store is opened

#: called with ("started" | "finished", trial), ("status", ExperimentStatus) and ("warning" | "note", text)
EventHandler = Callable[[str, Any], None]


class RunnerError(ValueError):
    """The experiment cannot run here (for example: a container without a command)."""


class RunnerFault(RuntimeError):
    """The runner could not go on (the run folder's disk is full, the store failed): not bad input.
    Trials that ended were written; run the same command again to resume."""


@dataclass
class RunResult:
    """What :func:`run_local` leaves: the final status, every trial, and whether Ctrl-C ended it."""

    status: ExperimentStatus
    history: list[Trial]
    interrupted: bool = False
    run_dir: Path = field(default_factory=Path)


def _probe_container(experiment: Experiment) -> Container:
    """The primary container rendered with each parameter at its first value."""
    probe = Trial(name=f"{experiment.name}-probe", assignments={
        p.name: (p.feasible_space.values or [p.feasible_space.min or ""])[0] for p in experiment.spec.parameters
    })
    try:
        return primary_container(experiment, render_trial_spec(experiment, probe))
    except TemplateError as err:
        raise RunnerError(str(err)) from None


def gpus_per_trial(experiment: Experiment) -> int:
    """The ``nvidia.com/gpu`` limit of the primary container."""
    return _probe_container(experiment).gpus


def check_runnable(experiment: Experiment) -> None:
    """Raise :class:`RunnerError` when this experiment cannot run locally (before anything runs)."""
    algorithm = experiment.spec.algorithm
    problem = get_algorithm(algorithm.algorithm_name, algorithm.settings(), experiment.spec).problem()
    if problem:
        raise RunnerError(f"spec.algorithm.algorithmName: {problem}")
    probe = _probe_container(experiment)
    collecting = trial_collector(experiment)
    if isinstance(collecting, FileCollector) and experiment.spec.parallel_trial_count > 1 \
            and not collecting.names_path(probe.argv, probe.env):
        # Katib's pods each have their own file; trials sharing one would record each other's values
        raise RunnerError(
            f"spec.metricsCollectorSpec.source.fileSystemPath.path: {collecting.spec_path!r} is not named in the "
            "trial's command or env, so parallel trials here would all write the same file; pass the path to "
            "the command (each trial then gets its own copy) or set parallelTrialCount: 1")


class _Runner:
    def __init__(self, experiment: Experiment, store: ExperimentStore, workdir: Path, run_dir: Path,
                 on_event: EventHandler, kill_grace: float, poll: float, prior: list[Trial],
                 trial_env: dict[str, str] | None = None, spares: Spares | None = None):
        self.exp = experiment
        self.trial_env = trial_env or {}
        self.prior = prior
        self.store = store
        self.workdir = workdir
        self.run_dir = run_dir
        self.on_event = on_event
        self.kill_grace = kill_grace
        self.poll = poll
        self.tasks: dict[asyncio.Task[Trial], Trial] = {}
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="hp-store")
        self.thinker = ThreadPoolExecutor(1, thread_name_prefix="hp-suggest")  # suggestions computed ahead
        self.spares = spares or Spares(kill_grace, workdir)  # trials' supervisors, started before trials need them
        self.ahead: asyncio.Future[list[Trial]] | None = None
        self.ahead_ready: list[Trial] = []
        self.ahead_key: tuple[int, int] | None = None
        algorithm = experiment.spec.algorithm
        #: a model slow to fit (the GP): while it computes, a slot that frees gets a random point (suggest.filler)
        self.fills = get_algorithm(algorithm.algorithm_name, algorithm.settings(), experiment.spec).fills_while_fitting
        self.suggest_s: float | None = None  # how long one suggestion computed ahead takes (moving average)
        self.trial_s: collections.deque[float] = collections.deque(maxlen=20)  # lengths of the last trials
        self.known: dict[str, Trial] = {}
        self.unsaved: dict[str, Trial] = {}
        self.to_save: list[Trial] = []
        self.commits: dict[asyncio.Future[Any], list[Trial]] = {}
        self.creating: asyncio.Future[list[Trial]] | None = None
        self.running: dict[str, TrialProcess] = {}
        self.stop_as: tuple[str, str] | None = None
        self.cleaned: set[str] = set()  # interrupted trials whose leftover processes were killed
        self.fault: RunnerFault | None = None  # the run folder failed: start no trial, end when they have
        try:
            self.gpus = GpuPool(detect_gpus(), gpus_per_trial(experiment), lambda message: on_event("warning", message))
        except ValueError as err:
            raise RunnerError(str(err)) from None
        self.result: RunResult | None = None
        self.history: list[Trial] = []
        spec = experiment.spec
        es = spec.early_stopping
        self.stopper = get_early_stopping(es.algorithm_name, es.settings(), spec.objective.type) if es else None

    # ------------------------------------------------------------------ the schedule
    #
    # Every store operation runs on one writer thread, in submission order, so the event loop only
    # starts processes and reads their output. The runner keeps the history in memory: `known` is
    # the history as stored (its own writes once they committed, other runners' changes through
    # `store.sync`, a cheap count query after each batch of writes); `unsaved` holds results
    # written to memory but not yet to the store. Decisions (how many trials to start, whether the
    # experiment is done) see both; a trial counts as finished ("finished" and "status" events,
    # the final status) only once its final state is written. When a trial ends, its slot's next
    # trial is created and started before the result is written: a free slot waits for one insert.

    async def run(self) -> RunResult:
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        try:
            loop.add_signal_handler(signal.SIGTERM, main.cancel)  # type: ignore[union-attr]
        except (NotImplementedError, RuntimeError):
            pass
        try:
            return await self._schedule()
        except asyncio.CancelledError:
            await self._stop_all("Interrupted", "RunnerInterrupted")
            history = await self._io(self.store.history)
            self.result = RunResult(experiment_status(self.exp, history), history, True, self.run_dir)
            raise
        except Exception as err:  # noqa: BLE001 - the store failed: stop the trials, then say why
            fault = store_fault(err, self.store.url)
            if fault is None:
                raise
            await self._abandon()
            raise fault from None
        finally:
            self.writer.shutdown()
            self.thinker.shutdown(wait=False, cancel_futures=True)
            self.spares.close()

    def _io(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run a store operation on the writer thread (after every one submitted before it)."""
        return asyncio.wrap_future(self.writer.submit(fn, *args))

    async def _reload(self) -> None:
        """Read the whole history from the store (start-up, idle polls, after losing a race)."""
        self.known = {t.name: t for t in await self._io(self.store.sync, True)}

    def _view(self) -> list[Trial]:
        """The history as this runner knows it: stored, running (with their reports) and unsaved."""
        view = dict(self.known)
        view.update((t.name, t) for t in self.tasks.values())
        view.update(self.unsaved)
        return list(view.values())

    async def _recover(self) -> list[Trial]:
        """The interrupted trials to run again, once what their dead runners left running is killed."""
        reruns = await self._io(self.store.recover)
        for t in reruns:
            if t.name not in self.cleaned:
                self.cleaned.add(t.name)
                await asyncio.to_thread(kill_leftovers, self.run_dir / t.name)
        return reruns

    async def _schedule(self) -> RunResult:
        self.spares.prepare()
        reruns = await self._recover()
        await self._reload()
        self.on_event("status", experiment_status(self.exp, list(self.known.values())))
        suggestion_done = False
        last_beat = time.monotonic()
        while True:
            self.history = view = self._view()
            status = experiment_status(self.exp, view, suggestion_done)
            if status.done and not self.unsaved:
                break
            if self.fault is not None and not self.tasks and not self.unsaved and not self.commits:
                raise self.fault  # the trials that were running have ended and are written
            want = 0 if status.done or self.fault is not None else self._free_slots(view)
            if want > 0:
                batch = [Trial(name=t.name, assignments=t.assignments, system_attrs={**t.system_attrs, RERUN_OF: t.name})
                         for t in reruns[:want]]
                reruns = reruns[len(batch):]
                ahead = await self._ready(view, want - len(batch)) if len(batch) < want and not suggestion_done else []
                batch += ahead
                if len(batch) < want and not suggestion_done:
                    # a short batch ends the suggestions only when nothing is left to wait for: an
                    # algorithm may hold back until running trials finish (hyperband's next rung).
                    # Whether any was running is taken before asking: trials go on finishing while
                    # the algorithm thinks, and one that finished meanwhile may be what it waited for
                    waiting = any(t.active for t in view)
                    new = await asyncio.to_thread(suggest, self.exp, [*view, *ahead], want - len(batch), self.prior)
                    suggestion_done = not new and not waiting
                    batch += new
                if batch and await self._start(batch):
                    continue
                # some were not created (other runners hold the slots, or rerun those interrupted
                # trials): wait for a change before asking again
            self._commit()
            if not reruns and not suggestion_done and self.fault is None and not status.done:
                self._think_ahead(view)
            if not self.tasks and not self.commits:
                if suggestion_done and not any(t.active for t in view):
                    continue  # the status now says the suggestions ended
                await asyncio.sleep(self.poll)  # another runner's trials are still active
                reruns = await self._recover()  # still pending: those not started too
                await self._reload()
                continue
            done, _ = await asyncio.wait({*self.tasks, *self.commits, *([self.ahead] if self.ahead else [])},
                                         timeout=_HEARTBEAT, return_when=asyncio.FIRST_COMPLETED)
            if self.ahead is not None and self.ahead in done:
                self._took_ahead()
            self._collect_all(done)
            if time.monotonic() - last_beat >= _HEARTBEAT:
                self.commits[self._io(self._write, [], list(self.tasks.values()))] = []
                last_beat = time.monotonic()
        await self._stop_all("Killed", "ExperimentCompleted")
        history = await self._io(self.store.history)
        final = experiment_status(self.exp, history, suggestion_done)
        return RunResult(final, history, False, self.run_dir)

    # ------------------------------------------------------------------ thinking ahead
    #
    # With parallelTrialCount > 1 and every slot busy, the next suggestion is computed on a thread
    # of its own while the trials run (they are its pending points, as in any suggestion), so that
    # the slot a trial frees starts its next trial at once instead of waiting for the algorithm
    # (Optuna's GPSampler takes seconds). It is the suggestion a free slot would get at that place
    # in the history (same seed, same name), except that the results of trials which ended while
    # it was computed are not in it. As many are held ready as trials are likely to end while one
    # is computed. With the GP (bayesianoptimization, seconds per point), a slot that frees while
    # the next point is still being computed gets a random point instead of waiting (marked
    # hp:filler, suggest.filler); the GP's point goes to the next slot. Sequential experiments
    # (parallelTrialCount 1) never think ahead: each suggestion sees every result before it.

    def _think_ahead(self, view: list[Trial]) -> None:
        """Start computing the next suggestion when every slot is busy and fewer are ready than the
        slots likely to free while one is computed (:meth:`_ahead_wanted`), none coming."""
        if self.ahead is not None or self.exp.spec.parallel_trial_count < 2 \
                or self._free_slots(view) > 0 or not self.tasks or len(self.ahead_ready) >= self._ahead_wanted():
            return
        self._fit(view, 1)

    def _fit(self, view: list[Trial], count: int) -> bool:
        """Compute ``count`` suggestions on the thinking thread, the trials running and those ready
        as pending points; not when the last one computed from this history gave nothing. True when
        it started."""
        pending = [*view, *self.ahead_ready]  # the ones ready are pending points too
        left = remaining_slots(self.exp, pending)
        if left is not None and left <= 0:
            return False
        key = (len(pending), sum(not t.active for t in view))
        if key == self.ahead_key:
            return False  # the last one computed from this history gave nothing: wait for a change
        self.ahead_key = key
        self.ahead = asyncio.wrap_future(self.thinker.submit(self._timed_suggest, pending, count))
        return True

    def _timed_suggest(self, history: list[Trial], count: int) -> list[Trial]:
        """On the thinking thread: ``count`` suggestions, the time taken kept (a moving average)."""
        t0 = time.monotonic()
        out = suggest(self.exp, history, count, self.prior)
        took = time.monotonic() - t0
        self.suggest_s = took if self.suggest_s is None else 0.7 * self.suggest_s + 0.3 * took
        return out

    def _ahead_wanted(self) -> int:
        """How many suggestions to hold ready: the trials likely to end while one is computed
        (parallelTrialCount x suggestion time / trial length, at least 1, at most parallelTrialCount);
        with fillers one more, so that the model keeps computing while they take the slots.
        More ready means each is computed further ahead of its slot, seeing fewer results."""
        p = self.exp.spec.parallel_trial_count
        if self.suggest_s is None or not self.trial_s:
            return 1
        trial_s = sorted(self.trial_s)[len(self.trial_s) // 2]
        return max(1, min(p, math.ceil(self.suggest_s * p / max(trial_s, 1e-3)) + self.fills))

    def _took_ahead(self) -> None:
        """Keep what the computation ahead gave (nothing when it failed: the next slot asks again)."""
        assert self.ahead is not None
        fut, self.ahead = self.ahead, None
        if not fut.cancelled() and fut.exception() is None:
            self.ahead_ready += fut.result()

    async def _ready(self, view: list[Trial], count: int) -> list[Trial]:
        """Up to ``count`` suggestions computed ahead (see :meth:`_fitting`); the rest stay ready. When fewer are
        ready and one is coming, it is waited for. With the GP, a slot does not wait for a fit: random
        points (:func:`~hp_components.suggest.filler`) take the slots it cannot fill yet while one is
        coming, and the fit's own points go to the next slots to free. With none coming, one starts on
        the thinking thread and is given ``_FILL_AFTER`` seconds before the fillers."""
        short = len(self.ahead_ready) < count
        started = short and self.fills and self.ahead is None and self.exp.spec.parallel_trial_count > 1 \
            and self._fit(view, count - len(self.ahead_ready))
        if short and self.ahead is not None and (started or not self.fills):
            await asyncio.wait({self.ahead}, timeout=_FILL_AFTER if self.fills else None)
            if self.ahead.done():
                self._took_ahead()
        ready = self._fitting(view)
        self.ahead_ready = ready[count:]
        ready = ready[:count]
        if self.ahead is not None and len(ready) < count:
            ready += filler(self.exp, [*view, *ready], count - len(ready))
        return ready

    def _fitting(self, view: list[Trial]) -> list[Trial]:
        """The suggestions held ready, taken out: named for their place in this history, a point
        that a trial created since they were computed has (another runner's, a random filler's)
        replaced as :func:`~hp_components.suggest.unique_batch` does."""
        ready, self.ahead_ready = self.ahead_ready, []
        if not ready:
            return []
        space = SearchSpace(self.exp.spec.parameters)
        batch = unique_batch(space, view, [(space.internal(t.assignments), t.system_attrs) for t in ready], len(view))
        return [Trial(name=trial_name(self.exp.name, len(view) + i), assignments=space.assignments(internal),
                      system_attrs=attrs) for i, (internal, attrs) in enumerate(batch)]

    def _free_slots(self, view: list[Trial]) -> int:
        """How many trials to start now: parallelTrialCount holds for the experiment (other
        runners' active trials count too), within maxTrialCount and the free GPUs."""
        want = self.exp.spec.parallel_trial_count - sum(t.active for t in view)
        left = remaining_slots(self.exp, view)
        if left is not None:
            want = min(want, left)
        gpu_slots = self.gpus.slots()
        return want if gpu_slots is None else min(want, gpu_slots)

    async def _start(self, batch: list[Trial]) -> bool:
        """Create the trials (Running) in the store, then start their processes; False when the store
        created fewer (see :meth:`ExperimentStore.create`)."""
        started = now()
        for trial in batch:
            trial.condition, trial.start_time = "Running", started
        # this runner's trials whose processes ended, their results not yet written, leave their slots
        ended = [t.name for t in (*self.tasks.values(), *self.unsaved.values()) if not t.active]
        self.creating = self._io(self.store.create, batch, ended)
        created = await asyncio.shield(self.creating)
        self.creating = None
        if len(created) < len(batch):  # another runner took the last trial slots: see its trials
            await self._reload()
        for trial in created:
            self.known[trial.name] = replace(trial)
            self.tasks[asyncio.create_task(self._run_trial(trial))] = trial
            self.on_event("started", trial)
        # the new trials take their GPUs and start their processes now; results of trials that
        # ended are written after that (the next _commit)
        await asyncio.sleep(0)
        return len(created) == len(batch)

    def _commit(self) -> None:
        """Write the results not written yet (one writer job)."""
        if self.to_save:
            self.commits[self._io(self._write, self.to_save, [])] = self.to_save
            self.to_save = []

    def _write(self, results: list[Trial], running: list[Trial]) -> list[Trial] | None:
        """On the writer thread: save results, renew the running trials' heartbeat (with their
        intermediate values so far), then the history if another runner changed it."""
        for trial in results:
            self.store.save(trial)
        if running:
            self.store.heartbeat(running)
        return self.store.sync()

    def _collect_all(self, done: set[asyncio.Future[Any]]) -> None:
        """Writer jobs in the order they ran (a later job's history is newer), then trial processes."""
        for fut in [f for f in (*self.commits, *self.tasks) if f in done]:
            self._collect(fut)

    def _collect(self, fut: asyncio.Future[Any]) -> None:
        """Take in a finished trial process (its result, unsaved) or a finished writer job."""
        if fut in self.tasks:
            self.tasks.pop(fut)  # type: ignore[call-overload]
            self._result(fut.result())
            return
        saved = self.commits.pop(fut)
        history = fut.result()
        if history is not None:  # another runner wrote too: the store says what happened to these
            self.known = {t.name: t for t in history}
        for trial in saved:
            self.unsaved.pop(trial.name, None)
            if history is None:
                self.known[trial.name] = trial
            self.on_event("finished", trial)
        if saved or history is not None:
            self.on_event("status", experiment_status(self.exp, list(self.known.values())))

    def _result(self, trial: Trial) -> None:
        self.unsaved[trial.name] = trial
        self.to_save.append(trial)

    async def _stop_all(self, condition: str, reason: str) -> None:
        """Stop every running trial (SIGTERM to its process group, SIGKILL after the grace period),
        then write every result."""
        self.stop_as = (condition, reason)
        if self.creating is not None:  # created, never started
            for trial in await self.creating:
                self._result(end(trial, judge(objective=self.exp.spec.objective.objective_metric_name,
                                                           value=None, stopped=(condition, reason, self._stop_message()))))
            self.creating = None
        if self.tasks:
            for tp in self.running.values():
                tp.stopped = (condition, reason, self._stop_message())
                tp.signal(signal.SIGTERM)
            done, pending = await asyncio.wait(self.tasks, timeout=self.kill_grace)
            for tp in self.running.values():
                tp.signal(signal.SIGKILL)
            if pending:
                await asyncio.wait(pending)
            for task in list(self.tasks):
                self._collect(task)
        self._commit()
        while self.commits:
            done, _ = await asyncio.wait(self.commits)
            self._collect_all(done)

    async def _abandon(self) -> None:
        """Stop every trial's processes without writing anything (the store failed; a resume reruns them),
        then take in the error of every writer job still in flight (the failing store fails them too;
        asyncio would print each one nobody took in as "Future exception was never retrieved")."""
        for tp in self.running.values():
            tp.signal(signal.SIGTERM)
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=self.kill_grace)
            for tp in self.running.values():
                tp.signal(signal.SIGKILL)
            if pending:
                await asyncio.wait(pending)
        jobs = [*self.commits, *([self.creating] if self.creating is not None else [])]
        await asyncio.gather(*jobs, return_exceptions=True)
        self.commits.clear()
        self.creating = None

    def _stop_message(self) -> str:
        return "stopped because the experiment ended" if self.stop_as and self.stop_as[0] == "Killed" \
            else "stopped by the user; runs again on resume"

    # ------------------------------------------------------------------ one trial

    async def _run_trial(self, trial: Trial) -> Trial:
        """Run one trial's processes on GPUs of its own (see :class:`TrialProcess`)."""
        es = self.exp.spec.early_stopping
        tp = TrialProcess(self.exp, trial, self.run_dir / trial.name, workdir=self.workdir, kill_grace=self.kill_grace,
                          env=self.trial_env, spares=self.spares,
                          stop_rule=self._should_stop if self.stopper else None,
                          early_stopping=es.algorithm_name if es else "",
                          warn=lambda message: self.on_event("warning", f"{trial.name}: {message}"))
        gpus = self.gpus.take(tp.container.gpus)
        if gpus is None:
            return tp.finish(judge(objective=tp.objective, value=None, failure=(
                "InsufficientGPUs", f"needs {tp.container.gpus} GPUs; fewer are free on this machine")))
        self.running[trial.name] = tp
        began = time.monotonic()
        try:
            finished = await tp.run(gpus)
            self.trial_s.append(time.monotonic() - began)
            return finished
        except OSError as err:  # its folder could not be made: nothing started
            where = err.filename or self.run_dir / trial.name
            self.fault = self.fault or RunnerFault(
                f"the run folder failed: {where}: {err.strerror or err}; the trials that were running finished and "
                "were kept; free space (or fix the folder), then run the same command to resume")
            return tp.finish(judge(objective=tp.objective, value=None, stopped=(
                "Interrupted", "RunFolderFault", f"its folder could not be made ({err.strerror or err}); runs again on resume")))
        finally:
            del self.running[trial.name]
            self.gpus.give(gpus)

    def _should_stop(self, trial: Trial) -> bool:
        assert self.stopper is not None
        return self.stopper.should_stop(self.history, trial.intermediate_values)


def _check_restart(experiment: Experiment, store: ExperimentStore) -> None:
    """Katib's rule for a finished experiment whose limits were raised: only a Succeeded one
    (``ExperimentMaxTrialsReached``) with ``resumePolicy`` LongRunning or FromVolume restarts."""
    previous = store.previous_spec
    if previous is None or previous == experiment.to_dict():
        return
    history = store.history()
    before = experiment_status(parse_experiment(previous), history)
    if not before.done:
        return
    if before.reason == "ExperimentMaxTrialsReached" and experiment.spec.resume_policy in ("LongRunning", "FromVolume"):
        return
    raise RunnerError(
        f"spec: experiment {experiment.name!r} already finished ({before.reason}); Katib restarts a finished "
        "experiment only when it reached maxTrialCount and spec.resumePolicy is LongRunning or FromVolume "
        f"(it is {experiment.spec.resume_policy}, and Katib lets no edit change it). Start over with --fresh, or "
        "run it under a new metadata.name with resumePolicy: LongRunning"
    )


def _warm_start(experiment: Experiment, store: ExperimentStore, source: str | None,
                on_event: EventHandler) -> list[Trial]:
    """The finished trials of the warm-start experiment (remembered in the store for resumes)."""
    source = source or store.warm_start_source()
    if not source:
        return []
    if source == experiment.name:
        raise RunnerError("--warm-start: an experiment cannot warm-start from itself")
    spec, trials = load_finished(store.url, source)
    mine, theirs = experiment.spec.objective, spec.get("spec", {}).get("objective", {})
    if (theirs.get("objectiveMetricName"), theirs.get("type")) != (mine.objective_metric_name, mine.type):
        raise RunnerError(f"--warm-start: {source!r} {theirs.get('type')}s {theirs.get('objectiveMetricName')!r}; "
                          f"{experiment.name!r} {mine.type}s {mine.objective_metric_name!r}: the objectives must match")
    space = SearchSpace(experiment.spec.parameters)
    fitting = []
    for t in trials:
        try:
            space.internal(t.assignments)
        except (ValueError, TypeError):
            continue
        fitting.append(Trial(name=t.name, assignments=t.assignments, condition=t.condition,
                             objective_value=t.objective_value, intermediate_values=t.intermediate_values))
    if not fitting:
        raise RunnerError(f"--warm-start: none of the {len(trials)} finished trials of {source!r} fits the "
                          f"search space of {experiment.name!r}")
    store.remember_warm_start(source)
    outside = f"; {len(trials) - len(fitting)} outside this search space left out" if len(fitting) < len(trials) else ""
    on_event("note", f"warm start: {len(fitting)} finished trial(s) of {source!r} seed the search{outside}")
    return fitting


def _forget_trial_folders(experiment: Experiment, out_dir: Path) -> int:
    """``--fresh``: remove the trial folders (``<experiment>-NNNN``) an earlier run left in ``out_dir``."""
    if not out_dir.is_dir():
        return 0
    old = [d for d in out_dir.iterdir() if d.is_dir() and not d.is_symlink()
           and re.fullmatch(re.escape(experiment.name) + r"-\d{4,}", d.name)]
    for folder in old:
        shutil.rmtree(folder, ignore_errors=True)
    return len(old)


def _python_env(python: str, folder: Path) -> dict[str, str]:
    """Trial environment in which ``python3`` and ``python`` run ``python`` (two-line scripts in ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("python3", "python"):
        script = folder / name
        script.write_text(f"#!/bin/sh\nexec {shlex.quote(python)} \"$@\"\n", encoding="utf-8")
        script.chmod(0o755)
    return {"PATH": str(folder.resolve()) + os.pathsep + os.environ.get("PATH", os.defpath)}


def run_local(
    experiment: Experiment,
    *,
    storage: str = DEFAULT_STORAGE,
    workdir: str | os.PathLike[str] | None = None,
    run_dir: str | os.PathLike[str] = "hp-runs",
    fresh: bool = False,
    warm_start: str | None = None,
    on_event: EventHandler | None = None,
    kill_grace: float = 5.0,
    poll: float = 1.0,
    python: str | None = None,
) -> RunResult:
    """Run (or resume) an experiment on this machine until it Succeeds or Fails.

    ``storage`` is an SQLAlchemy URL; an experiment already in it resumes (finished trials
    are kept, interrupted ones run again). ``fresh`` forgets a stored experiment first.
    ``warm_start`` names a finished experiment in the same storage whose trials seed the sampler
    (same objective; trials outside this experiment's space are ignored); a resumed experiment
    keeps the warm start it began with.
    ``python`` (for example ``sys.executable``): the interpreter a trial's ``python3`` and ``python``
    mean, so that a portable command (``python3 -c ...``, as it runs in a trial image) runs with the
    caller's packages; a shim first on the trials' own PATH, this process's environment untouched.
    Raises :class:`RunnerError` when the experiment cannot run locally, and
    :class:`~hp_components.store.StoreConflict` when the storage holds another spec by that name.
    """
    check_runnable(experiment)
    handler: EventHandler = on_event or (lambda kind, payload: None)
    workdir = Path(workdir or os.getcwd())
    spares = _early_spares(experiment, kill_grace, workdir)
    try:
        return _run(experiment, storage, workdir, Path(run_dir), fresh, warm_start, handler, kill_grace, poll, python,
                    spares)
    finally:
        spares.close()


def _early_spares(experiment: Experiment, kill_grace: float, workdir: Path) -> Spares:
    """Supervisors for the first trials (up to 8), started now: their interpreters start while the store
    is opened (a fresh SQLite store takes 0.2-0.9 s, Optuna's schema and its alembic), not after."""
    spares = Spares(kill_grace, workdir)
    spares.prepare(min(experiment.spec.parallel_trial_count, _EARLY_SPARES))
    return spares


def _run(experiment: Experiment, storage: str, workdir: Path, run_dir: Path, fresh: bool, warm_start: str | None,
         handler: EventHandler, kill_grace: float, poll: float, python: str | None, spares: Spares) -> RunResult:
    """:func:`run_local` once the experiment was checked."""
    store = ExperimentStore(storage, experiment, fresh=fresh)
    out_dir = Path(run_dir) / experiment.name
    if fresh:
        folders = _forget_trial_folders(experiment, out_dir)
        if store.forgotten is not None or folders:
            handler("note", f"fresh: the stored experiment {experiment.name!r} ({store.forgotten or 0} trial(s)) and "
                            f"{folders} trial folder(s) under {out_dir} were replaced")
    _check_restart(experiment, store)
    prior = _warm_start(experiment, store, warm_start, handler)
    store.adopt_spec()
    runner = _Runner(experiment, store, workdir, out_dir.resolve(), handler, kill_grace, poll, prior,
                     _python_env(python, out_dir / ".python") if python else {}, spares)
    try:
        return asyncio.run(runner.run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        if runner.result is None:
            history = store.history()
            runner.result = RunResult(experiment_status(experiment, history), history, True, out_dir)
        return runner.result
