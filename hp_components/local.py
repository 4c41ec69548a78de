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
import ctypes
import datetime as _dt
import errno
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from hp_components.algorithms import Auto, find_algorithm
from hp_components.earlystop import get_early_stopping
from hp_components.experiment import Experiment, parse_experiment
from hp_components.metrics import MetricsParser, objective_value
from hp_components.status import ExperimentStatus, experiment_status, remaining_slots
from hp_components.space import SearchSpace
from hp_components.store import DEFAULT_STORAGE, ExperimentStore, load_finished
from hp_components.suggest import suggest
from hp_components.template import Container, TemplateError, primary_container, pytorch_workers, render_trial_spec
from hp_components.trials import Trial

__all__ = ["run_local", "RunResult", "RunnerError", "detect_gpus"]

_CHUNK = 1 << 16
_MAX_LINE = 1 << 16  # longer lines are cut before parsing
_MAX_LOG = 256 << 20  # a trial's log stops growing here (the process keeps running)
_MAX_REPORTS = 10_000  # intermediate values kept per trial
_HEARTBEAT = 15.0

#: called with ("started" | "finished", trial) and ("status", ExperimentStatus)
EventHandler = Callable[[str, Any], None]


class RunnerError(ValueError):
    """The experiment cannot run here (for example: a container without a command)."""


@dataclass
class RunResult:
    """What :func:`run_local` leaves: the final status, every trial, and whether Ctrl-C ended it."""

    status: ExperimentStatus
    history: list[Trial]
    interrupted: bool = False
    run_dir: Path = field(default_factory=Path)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_runner() -> None:
    """In the trial process, before exec: die when the runner dies, even by kill -9 (Linux)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


@functools.lru_cache(maxsize=1)
def _setpriv() -> str | None:
    """util-linux's ``setpriv`` if it can set the parent-death signal (Linux; most distributions)."""
    path = shutil.which("setpriv") if _PRCTL is not None else None
    if path is None:
        return None
    try:
        usage = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "--pdeathsig" in usage else None


def _check_program(program: str, env: dict[str, str], cwd: Path) -> None:
    """Raise the OSError exec would raise for ``program`` (which setpriv would only print)."""
    if "/" in program:
        path = cwd / program
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


async def _spawn(argv: list[str], env: dict[str, str], cwd: Path, stdout: Any) -> asyncio.subprocess.Process:
    """Start a trial process in its own session that dies with the runner (Linux: PR_SET_PDEATHSIG).

    Through ``setpriv --pdeathsig KILL`` when there is one: without a ``preexec_fn`` Python can
    vfork, which does not copy the runner's memory map, so the event loop is blocked ~0.2 ms per
    start instead of ~5 ms (measured with torch and Optuna loaded). Otherwise the signal is set by
    a ``preexec_fn``.
    """
    setpriv = _setpriv()
    if setpriv is not None:
        _check_program(argv[0], env, cwd)
        argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
    return await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=asyncio.subprocess.STDOUT, env=env,
        cwd=str(cwd), start_new_session=True,
        preexec_fn=_die_with_runner if _PRCTL is not None and setpriv is None else None,
    )


def _free_port() -> int:
    """A TCP port free on loopback right now (for a PyTorchJob's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def detect_gpus() -> list[str]:
    """GPU ids for trials: ``HP_GPUS``, else ``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi``, else none."""
    for var in ("HP_GPUS", "CUDA_VISIBLE_DEVICES"):
        if var in os.environ:
            return [g.strip() for g in os.environ[var].split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20, check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        return [line.strip() for line in out.splitlines() if line.strip()]
    return []


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
    name = experiment.spec.algorithm.algorithm_name
    algo = find_algorithm(name)
    if algo is Auto:
        algo = Auto({}, experiment.spec).inner.__class__
    problem = algo.runtime_problem()
    if problem:
        raise RunnerError(f"spec.algorithm.algorithmName: {problem}")
    _probe_container(experiment)


class _Runner:
    def __init__(self, experiment: Experiment, store: ExperimentStore, workdir: Path, run_dir: Path,
                 on_event: EventHandler, kill_grace: float, poll: float, prior: list[Trial]):
        self.exp = experiment
        self.prior = prior
        self.store = store
        self.workdir = workdir
        self.run_dir = run_dir
        self.on_event = on_event
        self.kill_grace = kill_grace
        self.poll = poll
        self.tasks: dict[asyncio.Task[Trial], Trial] = {}
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="hp-store")
        self.known: dict[str, Trial] = {}
        self.unsaved: dict[str, Trial] = {}
        self.to_save: list[Trial] = []
        self.commits: dict[asyncio.Future[Any], list[Trial]] = {}
        self.creating: asyncio.Future[list[Trial]] | None = None
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.signalled: set[str] = set()
        self.stop_as: tuple[str, str] | None = None
        self.free_gpus = detect_gpus()
        self.total_gpus = len(self.free_gpus)
        self.gpu_need = gpus_per_trial(experiment)
        if self.total_gpus and self.gpu_need > self.total_gpus:
            raise RunnerError(
                f"each trial asks for nvidia.com/gpu: {self.gpu_need}, but this machine has {self.total_gpus} GPUs"
            )
        self.warned_gpu = False
        self.result: RunResult | None = None
        self.history: list[Trial] = []
        self.stopped_early: set[str] = set()
        spec = experiment.spec
        es = spec.early_stopping
        self.stopper = get_early_stopping(es.algorithm_name, es.settings(), spec.objective.type) if es else None
        self.metric_names = spec.objective.metric_names
        self.strategy = spec.objective.strategies()[spec.objective.objective_metric_name]
        mc = spec.metrics_collector_spec
        self.filters = mc.filters or None
        self.file_path = mc.file_path
        self.file_format = mc.file_format

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
        finally:
            self.writer.shutdown()

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

    async def _schedule(self) -> RunResult:
        reruns = await self._io(self.store.recover)
        await self._reload()
        self.on_event("status", experiment_status(self.exp, list(self.known.values())))
        suggestion_done = False
        last_beat = time.monotonic()
        while True:
            self.history = view = self._view()
            status = experiment_status(self.exp, view, suggestion_done)
            if status.done and not self.unsaved:
                break
            want = 0 if status.done else self._free_slots(view)
            if want > 0:
                batch = [Trial(name=t.name, assignments=t.assignments, system_attrs=t.system_attrs) for t in reruns[:want]]
                reruns = reruns[len(batch):]
                if len(batch) < want and not suggestion_done:
                    new = await asyncio.to_thread(suggest, self.exp, view, want - len(batch), self.prior)
                    # a short batch ends the suggestions only when nothing is left to wait for: an
                    # algorithm may hold back until running trials finish (hyperband's next rung)
                    suggestion_done = not new and not any(t.active for t in view)
                    batch += new
                if batch:
                    await self._start(batch)
                    continue
            self._commit()
            if not self.tasks and not self.commits:
                if suggestion_done and not any(t.active for t in view):
                    continue  # the status now says the suggestions ended
                await asyncio.sleep(self.poll)  # another runner's trials are still active
                reruns += await self._io(self.store.recover)
                await self._reload()
                continue
            done, _ = await asyncio.wait({*self.tasks, *self.commits}, timeout=_HEARTBEAT,
                                         return_when=asyncio.FIRST_COMPLETED)
            self._collect_all(done)
            if time.monotonic() - last_beat >= _HEARTBEAT:
                self.commits[self._io(self._write, [], list(self.tasks.values()))] = []
                last_beat = time.monotonic()
        await self._stop_all("Killed", "ExperimentCompleted")
        history = await self._io(self.store.history)
        final = experiment_status(self.exp, history, suggestion_done)
        return RunResult(final, history, False, self.run_dir)

    def _free_slots(self, view: list[Trial]) -> int:
        """How many trials to start now: parallelTrialCount holds for the experiment (other
        runners' active trials count too), within maxTrialCount and the free GPUs."""
        want = self.exp.spec.parallel_trial_count - sum(t.active for t in view)
        left = remaining_slots(self.exp, view)
        if left is not None:
            want = min(want, left)
        gpu_slots = self._gpu_slots()
        return want if gpu_slots is None else min(want, gpu_slots)

    async def _start(self, batch: list[Trial]) -> None:
        """Create the trials (Running) in the store, then start their processes."""
        now = _now()
        for trial in batch:
            trial.condition, trial.start_time = "Running", now
        self.creating = self._io(self.store.create, batch)
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
                self._result(self._done(trial, condition, reason, self._stop_message()))
            self.creating = None
        if self.tasks:
            for name, proc in list(self.procs.items()):
                self._signal(name, proc, signal.SIGTERM)
            done, pending = await asyncio.wait(self.tasks, timeout=self.kill_grace)
            for name, proc in list(self.procs.items()):
                self._signal(name, proc, signal.SIGKILL)
            if pending:
                await asyncio.wait(pending)
            for task in list(self.tasks):
                self._collect(task)
        self._commit()
        while self.commits:
            done, _ = await asyncio.wait(self.commits)
            self._collect_all(done)

    def _stop_message(self) -> str:
        return "stopped because the experiment ended" if self.stop_as and self.stop_as[0] == "Killed" \
            else "stopped by the user; runs again on resume"

    def _signal(self, name: str, proc: asyncio.subprocess.Process, sig: int) -> None:
        self.signalled.add(name)
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    # ------------------------------------------------------------------ one trial

    def _gpu_slots(self) -> int | None:
        """How many more trials the free GPUs allow (None: no limit from GPUs)."""
        if self.gpu_need <= 0 or not self.total_gpus:
            return None
        return len(self.free_gpus) // self.gpu_need

    def _take_gpus(self, n: int) -> list[str] | None:
        if n <= 0:
            return []
        if not self.total_gpus:
            if not self.warned_gpu:
                self.warned_gpu = True
                self.on_event("warning", f"trials ask for nvidia.com/gpu: {n}, but this machine has no GPU; they run on the CPU")
            return []
        if len(self.free_gpus) < n:
            return None
        taken, self.free_gpus = self.free_gpus[:n], self.free_gpus[n:]
        return taken

    async def _run_trial(self, trial: Trial) -> Trial:
        trial_dir = self.run_dir / trial.name
        trial_dir.mkdir(parents=True, exist_ok=True)
        rendered = render_trial_spec(self.exp, trial)
        container = primary_container(self.exp, rendered)
        workers = pytorch_workers(self.exp, rendered)
        gpus = self._take_gpus(container.gpus)
        if gpus is None:
            return self._done(trial, "Failed", "InsufficientGPUs",
                              f"needs {container.gpus} GPUs; fewer are free on this machine")
        argv, env = list(container.argv), dict(container.env)
        metrics_file = None
        if self.file_path:
            # each trial writes its own copy of the collector's file, wherever the spec puts it
            metrics_file = str((trial_dir / Path(self.file_path).name).resolve())
            argv = [a.replace(self.file_path, metrics_file) for a in argv]
            env = {k: v.replace(self.file_path, metrics_file) for k, v in env.items()}
            if not any(metrics_file in a for a in argv + list(env.values())):
                metrics_file = self.file_path  # the trial writes the path itself: read it there
            with_file = Path(metrics_file)
            if with_file.exists() and metrics_file != self.file_path:
                with_file.unlink()
        full_env = {
            **os.environ,
            **env,
            "KATIB_TRIAL_NAME": trial.name,
            "HP_TRIAL_NAME": trial.name,
            "HP_EXPERIMENT_NAME": self.exp.name,
            "HP_TRIAL_DIR": str(trial_dir.resolve()),
        }
        if container.gpus > 0:
            full_env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        if workers:
            full_env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE=str(len(workers) + 1), RANK="0")
        parser = MetricsParser(self.metric_names, self.filters, "TEXT")
        log = open(trial_dir / "output.log", "wb")
        worker_procs: list[asyncio.subprocess.Process] = []
        try:
            worker_procs = await self._start_workers(trial, trial_dir, workers, full_env)
            try:
                proc = await _spawn(argv, full_env, self.workdir, asyncio.subprocess.PIPE)
            except OSError as err:
                log.write(f"cannot start {argv[0]!r}: {err}\n".encode())
                return self._done(trial, "Failed", "TrialFailed", f"cannot start {argv[0]!r}: {err.strerror or err}")
            self.procs[trial.name] = proc
            timed_out = False
            try:
                await asyncio.wait_for(self._pump(proc, parser, log, trial, stdout=not self.file_path), container.timeout)
            except asyncio.TimeoutError:
                timed_out = True
                self._signal(trial.name, proc, signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), self.kill_grace)
                except asyncio.TimeoutError:
                    self._signal(trial.name, proc, signal.SIGKILL)
            rc = await proc.wait()
            self.procs.pop(trial.name, None)
        finally:
            worker_rcs = await self._finish_workers(trial, worker_procs)
            log.close()
            if gpus:
                self.free_gpus += gpus
        if metrics_file:
            parser = MetricsParser(self.metric_names, self.filters if self.file_format == "TEXT" else None, self.file_format)
            try:
                with open(metrics_file, "rb") as fh:
                    for line in fh:
                        parser.feed(line[:_MAX_LINE])
            except OSError:
                pass
        trial.observation = parser.observation()
        trial.objective_value = objective_value(trial.observation, self.metric_names[0], self.strategy)
        if trial.name in self.stopped_early:
            return self._done(trial, "EarlyStopped", "TrialEarlyStopped",
                              f"stopped by {self.exp.spec.early_stopping.algorithm_name} at step {len(trial.intermediate_values)}")  # type: ignore[union-attr]
        if trial.name in self.signalled and self.stop_as and not timed_out:
            return self._done(trial, *self.stop_as, self._stop_message())
        if timed_out:
            return self._done(trial, "Failed", "DeadlineExceeded", f"ran longer than activeDeadlineSeconds ({container.timeout:g} s)")
        if rc != 0:
            how = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
            return self._done(trial, "Failed", "TrialFailed", f"the training process ended with {how}")
        for rank, wrc in enumerate(worker_rcs, start=1):
            if wrc != 0:
                how = f"killed by signal {-wrc}" if wrc < 0 else f"exit code {wrc}"
                return self._done(trial, "Failed", "TrialFailed", f"PyTorchJob worker (rank {rank}) ended with {how}")
        if trial.objective_value is None:
            return self._done(trial, "MetricsUnavailable", "MetricsUnavailable",
                              f"the objective metric {self.metric_names[0]!r} was not reported")
        return self._done(trial, "Succeeded", "TrialSucceeded", "")

    async def _start_workers(self, trial: Trial, trial_dir: Path, workers: list[Container],
                             env: dict[str, str]) -> list[asyncio.subprocess.Process]:
        """Start a PyTorchJob's worker processes (ranks 1..n), each logging to worker-<rank>.log."""
        procs = []
        for rank, worker in enumerate(workers, start=1):
            with open(trial_dir / f"worker-{rank}.log", "wb") as log:
                proc = await _spawn(worker.argv, {**env, **worker.env, "RANK": str(rank)}, self.workdir, log)
            self.procs[f"{trial.name}/rank-{rank}"] = proc
            procs.append(proc)
        return procs

    async def _finish_workers(self, trial: Trial, procs: list[asyncio.subprocess.Process]) -> list[int]:
        """Wait for the workers once the master ended (killing them after the grace period)."""
        if not procs:
            return []
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), self.kill_grace)
        except asyncio.TimeoutError:
            for rank, p in enumerate(procs, start=1):
                if p.returncode is None:
                    self._signal(f"{trial.name}/rank-{rank}", p, signal.SIGKILL)
        codes = [await p.wait() for p in procs]
        for rank in range(1, len(procs) + 1):
            self.procs.pop(f"{trial.name}/rank-{rank}", None)
        return codes

    def _done(self, trial: Trial, condition: str, reason: str, message: str) -> Trial:
        trial.condition, trial.reason, trial.message = condition, reason, message
        trial.completion_time = _now()
        return trial

    async def _pump(self, proc: asyncio.subprocess.Process, parser: MetricsParser, log: Any, trial: Trial,
                    stdout: bool) -> None:
        """Copy the trial's output to its log and feed each line to the metrics parser."""
        assert proc.stdout is not None
        written = 0
        pending = b""
        objective = self.metric_names[0]
        reports = 0
        while True:
            chunk = await proc.stdout.read(_CHUNK)
            if not chunk:
                break
            if written < _MAX_LOG:
                log.write(chunk[: _MAX_LOG - written])
                written += len(chunk)
                if written >= _MAX_LOG:
                    log.write(b"\n[hp-tune: log truncated here; the trial kept running]\n")
            if not stdout:
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if len(pending) > _MAX_LINE:
                pending = pending[:_MAX_LINE]
            for line in lines:
                for name, value in parser.feed(line[:_MAX_LINE]):
                    if name == objective and reports < _MAX_REPORTS:
                        trial.intermediate_values.append((reports, value))
                        reports += 1
                        if self.stopper and trial.name not in self.stopped_early and \
                                self.stopper.should_stop(self.history, trial.intermediate_values):
                            self.stopped_early.add(trial.name)
                            self._signal(trial.name, proc, signal.SIGTERM)
        if stdout and pending:
            parser.feed(pending)


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


def _warm_start(experiment: Experiment, store: ExperimentStore, source: str | None) -> list[Trial]:
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
    return fitting


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
) -> RunResult:
    """Run (or resume) an experiment on this machine until it Succeeds or Fails.

    ``storage`` is an SQLAlchemy URL; an experiment already in it resumes (finished trials
    are kept, interrupted ones run again). ``fresh`` forgets a stored experiment first.
    ``warm_start`` names a finished experiment in the same storage whose trials seed the sampler
    (same objective; trials outside this experiment's space are ignored); a resumed experiment
    keeps the warm start it began with.
    Raises :class:`RunnerError` when the experiment cannot run locally, and
    :class:`~hp_components.store.StoreConflict` when the storage holds another spec by that name.
    """
    check_runnable(experiment)
    store = ExperimentStore(storage, experiment, fresh=fresh)
    _check_restart(experiment, store)
    prior = _warm_start(experiment, store, warm_start)
    store.adopt_spec()
    out_dir = Path(run_dir) / experiment.name
    runner = _Runner(experiment, store, Path(workdir or os.getcwd()), out_dir.resolve(),
                     on_event or (lambda kind, payload: None), kill_grace, poll, prior)
    try:
        return asyncio.run(runner.run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        if runner.result is None:
            history = store.history()
            runner.result = RunResult(experiment_status(experiment, history), history, True, out_dir)
        return runner.result
