"""A local trial's supervisor (Linux): the trial's processes live and die as one tree.

The runner starts this script (standard library only, ``python -I -S``) in a session of its own;
it makes itself a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so every process the trial
starts stays its descendant even after a double fork or ``setsid``, and runs the trial's command
as its child. Then:

* the trial ends when that main process ends: processes it left behind get SIGTERM, and SIGKILL
  after ``leftover_grace`` seconds; the supervisor exits with the main process's status (a signal
  that killed it, it raises on itself), once every descendant is gone;
* SIGTERM (the deadline, early stopping, Ctrl-C) goes to every descendant, SIGKILL follows after
  ``grace`` seconds; SIGUSR1 kills every descendant at once;
* the runner's death (even ``kill -9``) reaches it as SIGTERM (``PR_SET_PDEATHSIG``); the main
  process gets SIGKILL should the supervisor itself be killed.

Usage (what :mod:`hp_components._trial_process` runs)::

    python3 -I -S _reaper.py GRACE LEFTOVER_GRACE RUNNER_PID -- python3 train.py --lr=0.1

Without a command after ``--``, it is a spare, started before a trial needs it (its interpreter's
start, ~30 ms, is then off the trial's path): it reads one line from stdin, JSON
``{"argv": [...], "env": {...}, "cwd": "..."}``, and runs that as the command (stdin then reads
nothing); an empty stdin (the runner had no use for it) makes it exit 0.
"""

import ctypes
import json
import os
import resource
import signal
import sys

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_KILL_EVERY = 0.1  # seconds between sweeps that SIGKILL descendants born meanwhile


def process_table() -> dict:
    """pid -> (parent pid, process group, start time in clock ticks since boot) of every living
    process, zombies left out (Linux /proc)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if fields[0] not in (b"Z", b"X"):
            table[int(entry)] = (int(fields[1]), int(fields[2]), int(fields[19]))
    return table


def descendants() -> list:
    """The pids of every living descendant of this process."""
    children: dict = {}
    for pid, (ppid, _, _) in process_table().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [os.getpid()]
    while todo:
        for pid in children.get(todo.pop(), ()):
            found.append(pid)
            todo.append(pid)
    return found


def _children_left() -> bool:
    """Whether any process is still this one's child (a subreaper: every living descendant has an
    ancestor among them), without reading /proc (~10 ms with many processes on the machine)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _signal_all(sig: int) -> None:
    for pid in descendants():
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def _sweep(signum: int = 0, frame: object = None) -> None:
    """SIGALRM: kill every descendant now (again every _KILL_EVERY s, for those born meanwhile)."""
    _signal_all(signal.SIGKILL)


def _kill_after(seconds: float) -> None:
    current = signal.getitimer(signal.ITIMER_REAL)[0]
    if current == 0 or current > seconds:
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001), _KILL_EVERY)


def main(argv: list) -> int:
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    me = os.getpid()
    grace, leftover_grace, runner = float(argv[1]), float(argv[2]), int(argv[3])
    command, env = argv[5:], None
    prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if not command:  # a spare: the command comes on stdin
        if os.getppid() != runner:
            return 1
        line = sys.stdin.buffer.readline()
        if not line.strip():
            return 0
        job = json.loads(line)
        command, env = job["argv"], job["env"]
        os.chdir(job["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)

    stopping = []

    def stop(signum: int, frame: object) -> None:
        stopping.append(signum)
        _signal_all(signal.SIGTERM)
        _kill_after(grace)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    signal.signal(signal.SIGUSR1, lambda signum, frame: _kill_after(0))
    signal.signal(signal.SIGALRM, _sweep)
    if os.getppid() != runner:  # the runner died before the death signal was set
        return 1
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGALRM)
    signal.pthread_sigmask(signal.SIG_BLOCK, handled)  # a stop before the fork waits for the fork
    if stopping:
        return 128 + stopping[0]
    main_pid = os.fork()
    if main_pid == 0:
        try:
            for sig in handled:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, handled)
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != me:
                os._exit(137)
            if env is None:
                os.execvp(command[0], command)
            os.execvpe(command[0], command, env)
        except BaseException as err:  # noqa: BLE001 - the child must never return into the supervisor
            os.write(2, f"cannot start {command[0]!r}: {err}\n".encode())
        os._exit(127)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, handled)
    status = None
    while True:
        try:
            pid, code = os.waitpid(-1, 0)
        except ChildProcessError:
            break  # no descendant left
        if pid == main_pid:
            status = code
            if _children_left() and descendants():
                _signal_all(signal.SIGTERM)
                _kill_after(leftover_grace)
    signal.setitimer(signal.ITIMER_REAL, 0)
    if status is None:
        return 1
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # SIGKILL, SIGSTOP: default already
        os.kill(me, sig)
        return 128 + sig
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    os._exit(main(sys.argv))  # at once: nothing to flush (messages go through os.write), the runner waits for this exit
