"""One local trial as processes: the local twin of the trial wrapper's ``run_trial``.

:class:`TrialProcess` renders the trial, starts its processes (a PyTorchJob's workers too) in their own
sessions that die with the runner, streams the output to ``output.log`` and the metrics collector, applies
the deadline and the early-stopping rule, and asks :func:`~hp_components.metrics.judge` how it ended.
The scheduler (:mod:`hp_components.local`) decides when trials start and stops them::

    tp = TrialProcess(exp, trial, run_dir / trial.name, workdir=Path.cwd(), kill_grace=5.0)
    finished = await tp.run(gpus=[])          # the trial, with its condition, reason and message
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
from pathlib import Path
from typing import Any, Callable

from hp_components.experiment import Experiment, trial_collector
from hp_components.metrics import MAX_REPORTS, Collector, LineSplitter, Outcome, judge, launch_failure, objective_value
from hp_components.template import primary_container, pytorch_workers, render_trial_spec
from hp_components.trials import Trial

__all__ = ["TrialProcess", "end", "now"]

_CHUNK = 1 << 16
_MAX_LOG = 256 << 20  # a trial's log stops growing here (the process keeps running)
_TAIL_EVERY = 0.5  # seconds between reads of a File collector's file while the trial runs

#: asked after each objective report of a running trial: stop it now (early stopping)?
StopRule = Callable[[Trial], bool]


def now() -> str:
    """The time now as Katib writes it (RFC 3339, UTC, seconds)."""
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


def _killpg(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Send ``sig`` to the process group ``proc`` leads (gone already: nothing to do)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def end(trial: Trial, outcome: Outcome) -> Trial:
    """``trial`` ended as ``outcome`` says, now."""
    trial.condition, trial.reason, trial.message = outcome
    trial.completion_time = now()
    return trial


class TrialProcess:
    """One trial's processes, from start to the judged outcome."""

    def __init__(self, experiment: Experiment, trial: Trial, trial_dir: Path, *, workdir: Path, kill_grace: float,
                 stop_rule: StopRule | None = None, early_stopping: str = ""):
        self.exp = experiment
        self.trial = trial
        self.trial_dir = trial_dir
        self.workdir = workdir
        self.kill_grace = kill_grace
        self.stop_rule = stop_rule
        self.early_stopping = early_stopping
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        #: set by the scheduler before it signals: how a trial it stops ends (condition, reason, message)
        self.stopped: tuple[str, str, str] | None = None
        self.stopped_early = False
        self.objective = experiment.spec.objective.objective_metric_name
        self.strategy = experiment.spec.objective.strategies()[self.objective]
        rendered = render_trial_spec(experiment, trial)
        self.container = primary_container(experiment, rendered)
        self.workers = pytorch_workers(experiment, rendered)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process group of the trial."""
        for proc in list(self.procs.values()):
            _killpg(proc, sig)

    def finish(self, outcome: Outcome) -> Trial:
        """The trial, ended as ``outcome`` says."""
        return end(self.trial, outcome)

    async def run(self, gpus: list[str]) -> Trial:
        """Run the trial on ``gpus`` (its own; [] for none) and return it judged."""
        trial, container = self.trial, self.container
        self.trial_dir.mkdir(parents=True, exist_ok=True)
        collecting = trial_collector(self.exp)
        # each trial writes its own copy of a File collector's file, wherever the spec puts it
        argv, env = collecting.prepare(list(container.argv), dict(container.env), str(self.trial_dir))
        full_env = {
            **os.environ,
            **env,
            "KATIB_TRIAL_NAME": trial.name,
            "HP_TRIAL_NAME": trial.name,
            "HP_EXPERIMENT_NAME": self.exp.name,
            "HP_TRIAL_DIR": str(self.trial_dir.resolve()),
        }
        if container.gpus > 0:
            full_env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        if self.workers:
            full_env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
                            WORLD_SIZE=str(len(self.workers) + 1), RANK="0")
        log = open(self.trial_dir / "output.log", "wb")
        worker_procs: list[asyncio.subprocess.Process] = []
        tail: asyncio.Future[None] | None = None
        timed_out = False
        try:
            worker_procs = await self._start_workers(full_env)
            try:
                proc = await _spawn(argv, full_env, self.workdir, asyncio.subprocess.PIPE)
            except OSError as err:
                log.write(f"cannot start {argv[0]!r}: {err}\n".encode())
                return self.finish(judge(objective=self.objective, value=None, failure=launch_failure(argv[0], err)))
            self.procs[trial.name] = proc
            tail = asyncio.ensure_future(self._tail(proc, collecting))
            try:
                await asyncio.wait_for(self._pump(proc, collecting, log), container.timeout)
            except asyncio.TimeoutError:
                timed_out = True
                self.signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), self.kill_grace)
                except asyncio.TimeoutError:
                    self.signal(signal.SIGKILL)
            rc = await proc.wait()
        finally:
            if tail is not None:
                tail.cancel()
            worker_rcs = await self._finish_workers(worker_procs)
            log.close()
        for name, value in collecting.poll():  # what the trial wrote to a collector's file since the last read
            self._report(name, value)
        note = collecting.finish()
        trial.observation = collecting.observation()
        trial.objective_value = objective_value(trial.observation, self.objective, self.strategy)
        return self.finish(judge(
            objective=self.objective, value=trial.objective_value, returncode=rc, workers=worker_rcs, note=note,
            early_stopped=f"stopped by {self.early_stopping} at step {len(trial.intermediate_values)}"
            if self.stopped_early else "",
            stopped=self.stopped if not timed_out else None,
            timed_out=container.timeout if timed_out else None))

    async def _start_workers(self, env: dict[str, str]) -> list[asyncio.subprocess.Process]:
        """Start a PyTorchJob's worker processes (ranks 1..n), each logging to worker-<rank>.log."""
        procs = []
        for rank, worker in enumerate(self.workers, start=1):
            with open(self.trial_dir / f"worker-{rank}.log", "wb") as log:
                proc = await _spawn(worker.argv, {**env, **worker.env, "RANK": str(rank)}, self.workdir, log)
            self.procs[f"rank-{rank}"] = proc
            procs.append(proc)
        return procs

    async def _finish_workers(self, procs: list[asyncio.subprocess.Process]) -> list[int]:
        """Wait for the workers once the master ended (killing them after the grace period)."""
        if not procs:
            return []
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), self.kill_grace)
        except asyncio.TimeoutError:
            for p in procs:
                if p.returncode is None:
                    _killpg(p, signal.SIGKILL)
        return [await p.wait() for p in procs]

    async def _pump(self, proc: asyncio.subprocess.Process, collecting: Collector, log: Any) -> None:
        """Copy the trial's output to its log and feed each line to the metrics collector."""
        assert proc.stdout is not None
        written = 0
        lines = LineSplitter()
        while True:
            chunk = await proc.stdout.read(_CHUNK)
            if not chunk:
                break
            if written < _MAX_LOG:
                log.write(chunk[: _MAX_LOG - written])
                written += len(chunk)
                if written >= _MAX_LOG:
                    log.write(b"\n[hp-tune: log truncated here; the trial kept running]\n")
            for line in lines.feed(chunk):
                for name, value in collecting.feed_output(line):
                    self._report(name, value)
        last = lines.flush()
        if last:
            collecting.feed_output(last)

    async def _tail(self, proc: asyncio.subprocess.Process, collecting: Collector) -> None:
        """While the trial runs, what it reports outside its output (a File collector's file), every
        :data:`_TAIL_EVERY` seconds, so early stopping sees those values too."""
        while proc.returncode is None:
            await asyncio.sleep(_TAIL_EVERY)
            for name, value in collecting.poll():
                self._report(name, value)

    def _report(self, name: str, value: float) -> None:
        """A value the trial reported: the objective's become intermediate values, asked of the stop rule."""
        trial = self.trial
        if name != self.objective or len(trial.intermediate_values) >= MAX_REPORTS:
            return
        trial.intermediate_values.append((len(trial.intermediate_values), value))
        if self.stop_rule and not self.stopped_early and self.stop_rule(trial):
            self.stopped_early = True
            self.signal(signal.SIGTERM)
