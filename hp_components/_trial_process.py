"""One local trial as processes: the local twin of the trial wrapper's ``run_trial``.

:class:`TrialProcess` renders the trial, starts its processes (a PyTorchJob's workers too) in their own
sessions, each under a supervisor (Linux, :mod:`hp_components._reaper`) that holds the whole process tree:
the trial ends when its main process ends, its deadline and a stop reach every process it started, and
all of them die with the runner. It streams the output to ``output.log`` (a log that cannot be written
stops, the trial goes on) and the metrics collector, applies the deadline and the early-stopping rule,
and asks :func:`~hp_components.metrics.judge` how it ended. ``processes.json`` in the trial's folder
identifies its processes, so that a resume after the runner's crash kills what is left
(:func:`kill_leftovers`).
The scheduler (:mod:`hp_components.local`) decides when trials start and stops them::

    tp = TrialProcess(exp, trial, run_dir / trial.name, workdir=Path.cwd(), kill_grace=5.0)
    finished = await tp.run(gpus=[])          # the trial, with its condition, reason and message
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import datetime as _dt
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from hp_components._reaper import process_table
from hp_components.experiment import Experiment, trial_collector
from hp_components.metrics import MAX_REPORTS, Collector, LineSplitter, Outcome, judge, launch_failure, objective_value
from hp_components.template import primary_container, pytorch_workers, render_trial_spec
from hp_components.trials import Trial

__all__ = ["TrialProcess", "Spares", "end", "kill_leftovers", "now"]

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
_REAPER = Path(__file__).with_name("_reaper.py")
_LEFTOVER_GRACE = 1.0  # seconds the processes a trial's main process left behind get before SIGKILL
_EOF_WAIT = 2.0  # seconds to wait for the end of the output once the trial's processes are gone
_RECORD = "processes.json"  # in the trial's folder: what identifies its processes (for a resume)


def _check_program(program: str, env: dict[str, str], cwd: Path) -> None:
    """Raise the OSError exec would raise for ``program`` (which the supervisor would only print)."""
    if "/" in program:
        path = cwd / program
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def _watch_exit(popen: "subprocess.Popen[bytes]") -> "asyncio.Future[int]":
    """A future done with the process's return code when it ends: its pidfd in the event loop's own
    selector (Linux), no thread per process; elsewhere a thread waits."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(popen.pid)
    except (AttributeError, OSError):  # not Linux (or a kernel before 5.3)
        return asyncio.ensure_future(asyncio.to_thread(popen.wait))
    exited: asyncio.Future[int] = loop.create_future()

    def reap() -> None:
        if popen.poll() is None:
            return
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if not exited.done():
            exited.set_result(popen.returncode)

    loop.add_reader(pidfd, reap)
    reap()  # it may have ended already
    return exited


class _Proc:
    """A started trial process, under its supervisor (Linux) or alone: its end and its output (a pipe,
    read into :attr:`stdout`) are watched by the event loop's selector."""

    def __init__(self, popen: "subprocess.Popen[bytes]", supervised: bool):
        self.popen = popen
        self.supervised = supervised
        self.stdout: asyncio.StreamReader | None = None
        self._exited: asyncio.Future[int] | None = None
        self._transport: asyncio.BaseTransport | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    async def watch(self) -> None:
        """Start watching its end and (when it is a pipe) reading its output; on the event loop."""
        loop = asyncio.get_running_loop()
        self._exited = _watch_exit(self.popen)
        if self.popen.stdout is not None:
            self.stdout = asyncio.StreamReader(limit=_CHUNK, loop=loop)
            self._transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(self.stdout, loop=loop), self.popen.stdout)

    async def exited(self) -> int:
        """The return code, as soon as the process ended (not when its output closed)."""
        assert self._exited is not None
        return await asyncio.shield(self._exited)

    def stop(self) -> None:
        """SIGTERM to every process of the tree (the supervisor sends SIGKILL after the grace period)."""
        self._send(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to every process of the tree, now."""
        self._send(signal.SIGUSR1 if self.supervised else signal.SIGKILL)

    def _send(self, sig: int) -> None:
        if self.popen.returncode is not None:
            return
        try:
            if self.supervised:  # the supervisor signals the whole tree, however far it forked away
                os.kill(self.popen.pid, sig)
            else:
                os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        """Let go of the output pipe (a process outside the tree may hold it still)."""
        if self._transport is not None:
            self._transport.close()
        elif self.popen.stdout is not None:
            self.popen.stdout.close()


def _supervisor(kill_grace: float, argv: list[str]) -> list[str]:
    return [sys.executable, "-I", "-S", str(_REAPER), repr(kill_grace), repr(_LEFTOVER_GRACE), str(os.getpid()),
            "--", *argv]


def _popen(argv: list[str], env: dict[str, str] | None, cwd: Path, stdout: Any, stdin: Any,
           supervised: bool) -> _Proc:
    """Start ``argv`` in a session of its own (not yet watched: see :meth:`_Proc.watch`).

    No ``preexec_fn``: Python can then vfork, which does not copy the runner's memory map, so the
    event loop is blocked ~0.3 ms per start instead of ~5 ms (measured with torch and Optuna loaded);
    no asyncio subprocess transport either (on Python 3.11 a thread per process waits for its end).
    """
    popen = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=subprocess.STDOUT, env=env, cwd=str(cwd),
                             start_new_session=True)
    return _Proc(popen, supervised)


class Spares:
    """Supervisors started before trials need them (Linux): a trial then starts without waiting for
    the supervisor's interpreter to start (~30 ms, more on a loaded machine). A spare waits for its
    command on stdin (see :mod:`hp_components._reaper`); :meth:`close` ends those left. Elsewhere (no
    ``prctl``) it does nothing::

        spares = Spares(kill_grace=5.0, cwd=Path.cwd())
        spares.prepare(4)                     # four start now (no event loop needed)
        finished = await TrialProcess(exp, trial, folder, workdir=Path.cwd(), kill_grace=5.0, spares=spares).run([])
        spares.close()
    """

    def __init__(self, kill_grace: float, cwd: Path):
        self.kill_grace = kill_grace
        self.cwd = cwd
        self.ready: collections.deque[_Proc] = collections.deque()

    def prepare(self, count: int = 1) -> None:
        """Start spares until ``count`` are ready (none when one cannot start: trials then start their own)."""
        while _PRCTL is not None and len(self.ready) < count:
            try:
                self.ready.append(_popen(_supervisor(self.kill_grace, []), None, self.cwd, subprocess.PIPE,
                                         subprocess.PIPE, True))
            except OSError:
                return

    async def take(self, argv: list[str], env: dict[str, str], cwd: Path) -> _Proc | None:
        """A spare, running ``argv`` now (another starting in its place); None when there is none."""
        while self.ready:
            proc = self.ready.popleft()
            stdin = proc.popen.stdin
            assert stdin is not None
            try:
                if proc.popen.poll() is not None:
                    raise BrokenPipeError
                # a line of a few KB: the pipe holds it (the spare reads it at once in any case)
                stdin.write(json.dumps({"argv": argv, "env": env, "cwd": str(cwd)}).encode() + b"\n")
                stdin.close()
            except (BrokenPipeError, ConnectionResetError):  # it died waiting (killed from outside)
                proc.popen.wait()
                proc.close()
                continue
            self.prepare()
            await proc.watch()
            return proc
        return None

    def close(self) -> None:
        """End the spares not used (their stdin closes: they exit)."""
        while self.ready:
            proc = self.ready.popleft()
            assert proc.popen.stdin is not None
            try:
                proc.popen.stdin.close()
            except OSError:
                pass
            proc.popen.wait()
            proc.close()


async def _spawn(argv: list[str], env: dict[str, str], cwd: Path, stdout: Any, kill_grace: float,
                 spares: Spares | None = None) -> _Proc:
    """Start a trial process in its own session, under a supervisor (Linux; see
    :mod:`hp_components._reaper`): it dies with the runner, even by kill -9, and so does every process
    it starts, double-forked or ``setsid`` away. Without ``prctl`` (not Linux): the process alone.
    With ``spares``, a supervisor started earlier runs it (the trial's output is then its pipe).
    """
    supervised = _PRCTL is not None
    if supervised:
        _check_program(argv[0], env, cwd)
        if spares is not None and stdout == subprocess.PIPE and spares.kill_grace == kill_grace:
            proc = await spares.take(argv, env, cwd)
            if proc is not None:
                return proc
        argv = _supervisor(kill_grace, argv)
    proc = _popen(argv, env, cwd, stdout, subprocess.DEVNULL, supervised)
    await proc.watch()
    return proc


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat field 22); None: gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _record(trial_dir: Path, procs: list[_Proc]) -> None:
    """Write what identifies the trial's processes: each supervisor's pid (its session's and process
    group's id too) with its start time, the host and the boot."""
    rows = [{"pid": p.pid, "pgid": p.pid, "start": _start_time(p.pid)} for p in procs]
    data = {"host": socket.gethostname(), "boot": _boot_id(), "processes": rows}
    tmp = trial_dir / (_RECORD + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(trial_dir / _RECORD)


def kill_leftovers(trial_dir: Path) -> int:
    """Kill the processes a trial whose runner died left behind (on resume); returns how many.

    For each supervisor recorded in ``trial_dir``: when that pid still runs with the recorded start
    time, it and every descendant; then every process started since in its process group (a group's
    id is not reused while a member lives; a leader of that id with another start time is a new
    group, left alone), and every process started since whose environment names this trial's folder
    (``HP_TRIAL_DIR``: those that left the group with ``setsid``). Only on the host and boot that
    recorded them (Linux).
    """
    try:
        data = json.loads((trial_dir / _RECORD).read_text())
    except (OSError, ValueError):
        return 0
    if data.get("host") != socket.gethostname() or data.get("boot") != _boot_id() or _PRCTL is None:
        return 0
    table = process_table()
    marker = f"HP_TRIAL_DIR={trial_dir.resolve()}".encode()
    doomed: set[int] = set()
    for row in data.get("processes", []):
        pid, pgid, start = int(row["pid"]), int(row["pgid"]), row.get("start")
        if start is None:
            continue
        leader = table.get(pid)
        if leader is not None and leader[2] != start:
            continue  # the pid was reused: not ours
        later = {p for p, (_, _, began) in table.items() if began >= start and p != os.getpid()}
        doomed |= {p for p in later if table[p][1] == pgid or marker in _environ(p)}
        if leader is not None:
            doomed.add(pid)
            todo = [pid]
            while todo:
                parent = todo.pop()
                for p, (ppid, _, _) in table.items():
                    if ppid == parent and p not in doomed:
                        doomed.add(p)
                        todo.append(p)
    killed = 0
    for p in doomed:
        try:
            os.kill(p, signal.SIGKILL)
            killed += 1
        except (ProcessLookupError, PermissionError):
            pass
    return killed


def _environ(pid: int) -> list[bytes]:
    """The environment process ``pid`` started with ([] when it cannot be read)."""
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


class _Log:
    """A trial's log file that a full disk (or any write error) cannot break: the first error stops
    the logging, is told through ``warn``, and the trial runs on (its output still reaches the
    metrics collector)."""

    def __init__(self, path: Path, warn: Callable[[str], None]):
        self.path = path
        self.warn = warn
        self.file: Any = None
        try:
            self.file = open(path, "wb")
        except OSError as err:
            self._fail(err)

    def _fail(self, err: OSError) -> None:
        self.warn(f"{self.path}: {err.strerror or err}; the trial runs on without this log")
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
        self.file = None

    def write(self, data: bytes) -> None:
        if self.file is not None:
            try:
                self.file.write(data)
            except OSError as err:
                self._fail(err)

    def close(self) -> None:
        if self.file is not None:
            try:
                self.file.close()
            except OSError as err:
                self._fail(err)


def _free_port() -> int:
    """A TCP port free on loopback right now (for a PyTorchJob's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def end(trial: Trial, outcome: Outcome) -> Trial:
    """``trial`` ended as ``outcome`` says, now."""
    trial.condition, trial.reason, trial.message = outcome
    trial.completion_time = now()
    return trial


class TrialProcess:
    """One trial's processes, from start to the judged outcome."""

    def __init__(self, experiment: Experiment, trial: Trial, trial_dir: Path, *, workdir: Path, kill_grace: float,
                 stop_rule: StopRule | None = None, early_stopping: str = "",
                 warn: Callable[[str], None] = lambda message: None, env: Mapping[str, str] | None = None,
                 spares: Spares | None = None):
        self.exp = experiment
        self.spares = spares
        self.env = dict(env or {})  # on top of this process's environment, under the container's own
        self.warn = warn
        self.trial = trial
        self.trial_dir = trial_dir
        self.workdir = workdir
        self.kill_grace = kill_grace
        self.stop_rule = stop_rule
        self.early_stopping = early_stopping
        self.procs: dict[str, _Proc] = {}
        #: set by the scheduler before it signals: how a trial it stops ends (condition, reason, message)
        self.stopped: tuple[str, str, str] | None = None
        self.stopped_early = False
        self.objective = experiment.spec.objective.objective_metric_name
        self.strategy = experiment.spec.objective.strategies()[self.objective]
        rendered = render_trial_spec(experiment, trial)
        self.container = primary_container(experiment, rendered)
        self.workers = pytorch_workers(experiment, rendered)

    def signal(self, sig: int) -> None:
        """SIGTERM: stop every process of the trial (SIGKILL follows after the grace period); SIGKILL:
        kill them now. Each reaches the whole tree, processes that forked or ``setsid`` away too."""
        for proc in list(self.procs.values()):
            if sig == signal.SIGKILL:
                proc.kill()
            else:
                proc.stop()

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
            **self.env,
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
        log = _Log(self.trial_dir / "output.log", self.warn)
        worker_procs: list[_Proc] = []
        tail: asyncio.Future[None] | None = None
        pump: asyncio.Future[None] | None = None
        proc: _Proc | None = None
        timed_out = False
        try:
            worker_procs = await self._start_workers(full_env)
            try:
                proc = await _spawn(argv, full_env, self.workdir, subprocess.PIPE, self.kill_grace, self.spares)
            except OSError as err:
                log.write(f"cannot start {argv[0]!r}: {err}\n".encode())
                return self.finish(judge(objective=self.objective, value=None, failure=launch_failure(argv[0], err)))
            self.procs[trial.name] = proc
            try:
                _record(self.trial_dir, list(self.procs.values()))
            except OSError as err:
                self.warn(f"{self.trial_dir / _RECORD}: {err.strerror or err}; a resume after a crash of this "
                          "runner could not kill what this trial leaves running")
            pump = asyncio.ensure_future(self._pump(proc, collecting, log))
            tail = asyncio.ensure_future(self._tail(proc, collecting))
            # the trial lasts as long as its main process (and, under the supervisor, as the processes
            # it left behind, for their short grace); not as long as whoever holds its output open
            try:
                rc = await asyncio.wait_for(proc.exited(), container.timeout)
            except asyncio.TimeoutError:
                timed_out = True
                self.signal(signal.SIGTERM)
                try:
                    rc = await asyncio.wait_for(proc.exited(), self.kill_grace)
                except asyncio.TimeoutError:
                    self.signal(signal.SIGKILL)
                    rc = await proc.exited()
            await self._drain(pump, log)
        finally:
            for task in (tail, pump):
                if task is not None:
                    task.cancel()
            if proc is not None:
                proc.close()
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

    async def _drain(self, pump: asyncio.Future[None], log: Any) -> None:
        """The rest of the output, once the trial's processes are gone (a process outside the trial
        holding the pipe open, handed it over a socket, does not keep the trial running)."""
        try:
            await asyncio.wait_for(asyncio.shield(pump), _EOF_WAIT)
        except asyncio.TimeoutError:
            log.write(b"\n[hp-tune: the trial ended; a process outside it still held its output open]\n")

    async def _start_workers(self, env: dict[str, str]) -> list[_Proc]:
        """Start a PyTorchJob's worker processes (ranks 1..n), each logging to worker-<rank>.log."""
        procs = []
        for rank, worker in enumerate(self.workers, start=1):
            try:
                log: Any = open(self.trial_dir / f"worker-{rank}.log", "wb")
            except OSError as err:
                self.warn(f"{self.trial_dir / f'worker-{rank}.log'}: {err.strerror or err}; the worker logs nowhere")
                log = subprocess.DEVNULL
            try:
                proc = await _spawn(worker.argv, {**env, **worker.env, "RANK": str(rank)}, self.workdir, log,
                                    self.kill_grace)
            finally:
                if not isinstance(log, int):
                    log.close()
            self.procs[f"rank-{rank}"] = proc
            procs.append(proc)
        return procs

    async def _finish_workers(self, procs: list[_Proc]) -> list[int]:
        """Wait for the workers once the master ended (killing them after the grace period)."""
        if not procs:
            return []
        try:
            await asyncio.wait_for(asyncio.gather(*(p.exited() for p in procs)), self.kill_grace)
        except asyncio.TimeoutError:
            for p in procs:
                p.kill()
        return [await p.exited() for p in procs]

    async def _pump(self, proc: _Proc, collecting: Collector, log: Any) -> None:
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

    async def _tail(self, proc: _Proc, collecting: Collector) -> None:
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
