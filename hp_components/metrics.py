"""Katib-compatible metrics collection and a trial wrapper, in one standard-library-only file.

This module is shipped as a single file into training images (only ``python3`` is needed)
and run there as the trial's entry point. It parses metrics the way Katib v1beta1's
metrics collectors do:

* **StdOut / File collector, TEXT format** - every line that contains one of the metric
  names is matched with the filters (default :data:`DEFAULT_FILTER`, i.e. ``name=value``);
  group 1 is the metric name, group 2 its value. A line may start with an RFC 3339
  timestamp followed by a space (``2024-05-01T10:00:00Z accuracy=0.9``). Filters are RE2
  (Go's ``regexp``, as in Katib): matched with google-re2 where it is installed, otherwise
  with Python's ``re`` in a child process, each line within :data:`FILTER_TIME_BUDGET`
  seconds, so a filter that backtracks cannot stall the wrapper, its signals or its deadline.
* **File collector, JSON format** - every line is a JSON object; keys named like the
  metrics hold the values (numbers or numeric strings); an optional ``timestamp`` key
  holds an RFC 3339 string or Unix seconds.

Values that are not finite numbers are ignored. Per metric the minimum, maximum and
latest value are kept, and Katib's observation is built from them
(``{"metrics": [{"name": ..., "min": ..., "max": ..., "latest": ...}]}``). As in Katib,
"latest" is the value with the newest timestamp (a value without one counts as
``0001-01-01T00:00:00Z``; on ties the later line wins).

Library use::

    from hp_components.metrics import MetricsParser, objective_value

    parser = MetricsParser(["accuracy", "loss"])
    parser.feed_text("epoch 1: accuracy=0.81 loss=0.52\\nepoch 2: accuracy=0.87 loss=0.41\\n")
    obs = parser.observation()
    objective_value(obs, "accuracy", "max")  # -> 0.87

As a trial wrapper (the command runs without a shell; its output is passed through)::

    python3 metrics.py --objective accuracy --metric loss --strategy accuracy=max \\
        --timeout 3600 --output /tmp/observation.json -- python3 train.py --lr 0.01

The wrapper exits 0 whenever the trial ran (the outcome is in the output JSON, even for a
failed training process) and 2 for invalid wrapper arguments. With ``--stop-rule`` (Katib's
early-stopping rule, ``name;value;less|greater|equal;startStep``, see :class:`StopRules`) and
``--objective-type maximize|minimize`` it stops the training process group once the rule holds
(SIGTERM, SIGKILL after ``--kill-grace`` seconds) and records the trial ``EarlyStopped``; the JSON
also holds the objective's ``intermediateValues``.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and sys.path:  # pragma: no cover - only when run as a script
    # Files next to this script (e.g. a user's ``json.py``) must not shadow the standard library.
    # Run as ``python3 -c "<this source>"`` there is no ``__file__`` and sys.path[0] is "" (the
    # working directory, where the user's training code lives): drop that entry as well.
    _file = globals().get("__file__")
    _here = os.path.dirname(os.path.abspath(_file)) if _file else None
    if (_here is None and sys.path[0] == "") or (
            _here is not None and os.path.abspath(sys.path[0] or os.curdir) == _here):
        del sys.path[0]

import argparse
import json
import math
import re
import signal
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from collections import deque
from typing import IO, Any, Callable, Deque, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

__all__ = ["DEFAULT_FILTER", "COLLECTORS", "Collector", "FileCollector", "LineSplitter", "MetricsParser", "collector",
           "Outcome", "judge", "StopRule", "StopRules", "MAX_REPORTS", "launch_failure", "objective_value", "run_trial",
           "main"]

#: Katib's default TEXT filter: ``name=value``, group 1 = name, group 2 = value.
DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
#: JSON key holding a line's timestamp (Katib's ``TimeStampJsonKey``).
TIMESTAMP_KEY = "timestamp"
STRATEGIES = ("min", "max", "latest")
FILE_FORMATS = ("TEXT", "JSON")
#: Longer lines are cut to this many characters (bytes for ``bytes`` input) before matching.
MAX_LINE = 64 * 1024

#: values kept per metric for :meth:`MetricsParser.values` (the latest; min, max and latest cover all of them)
MAX_VALUES = 10_000

_READ_CHUNK = 64 * 1024
_KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL when a trial is stopped
_DRAIN_GRACE = 2.0  # seconds to wait for leftover processes holding the output pipe
_ZERO_TIME_KEY = (-62135596800, 0)  # Go's zero time 0001-01-01T00:00:00Z, used by Katib when no timestamp
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_DEFAULT_RE = re.compile(DEFAULT_FILTER, re.ASCII)
# Same filter, but only starting at the beginning of a run of name characters: keeps the
# search linear on long runs such as base64 blobs (see _default_matches).
_DEFAULT_AT_RUN_START_RE = re.compile(r"(?<![\w|-])" + DEFAULT_FILTER, re.ASCII)
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|([+-])(\d{2}):(\d{2}))", re.ASCII
)

Matcher = Callable[[str], Iterator[Tuple[Optional[str], Optional[str]]]]
TimeKey = Tuple[int, int]  # (Unix seconds, nanoseconds)


# --------------------------------------------------------------------------- values & times


def _finite(value: float) -> Optional[float]:
    """``value`` if it is a finite float, else None."""
    return value if math.isfinite(value) else None


def _parse_number(text: str) -> Optional[float]:
    """A decimal number (``1``, ``-.5``, ``2e-3``) as a finite float; None for anything else."""
    text = text.strip()
    if not _NUMBER_RE.fullmatch(text):
        return None
    try:
        return _finite(float(text))
    except (ValueError, OverflowError):
        return None


def _to_float(value: Any) -> Optional[float]:
    """A JSON value (number or numeric string) as a finite float; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return _finite(float(value))
        except OverflowError:
            return None
    if isinstance(value, str):
        return _parse_number(value)
    return None


def _parse_rfc3339(text: str) -> Optional[TimeKey]:
    """The (seconds, nanoseconds) of an RFC 3339 timestamp, or None if ``text`` is not one."""
    m = _RFC3339_RE.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    nanos = int((m.group(7) or "0")[:9].ljust(9, "0"))
    offset = timedelta(0)
    if m.group(8) != "Z":
        if int(m.group(10)) > 23 or int(m.group(11)) > 59:
            return None
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        offset = -offset if m.group(9) == "-" else offset
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
        delta = moment - _EPOCH
    except (ValueError, OverflowError):
        return None
    return delta.days * 86400 + delta.seconds, nanos


def _format_utc(key: TimeKey) -> Optional[str]:
    """RFC 3339 (nanosecond precision, trailing zeros trimmed) for a (seconds, nanoseconds) key."""
    try:
        moment = _EPOCH + timedelta(seconds=key[0])
    except OverflowError:
        return None
    if not 1 <= moment.year <= 9999:
        return None
    text = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    if key[1]:
        text += "." + f"{key[1]:09d}".rstrip("0")
    return text + "Z"


def _json_timestamp(value: Any) -> Tuple[Optional[str], Optional[TimeKey]]:
    """A JSON ``timestamp`` (RFC 3339 string or Unix seconds) as (text, key); (None, None) if invalid."""
    if isinstance(value, str):
        key = _parse_rfc3339(value)
        return (value, key) if key is not None else (None, None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, None
    try:
        exact = Decimal(repr(float(value)))
        seconds = int(exact.to_integral_value(rounding="ROUND_FLOOR"))
        key = (seconds, int((exact - seconds) * 1_000_000_000))
    except (InvalidOperation, OverflowError, ValueError):
        return None, None
    text = _format_utc(key)
    return (text, key) if text is not None else (None, None)


def _line_timestamp(line: str) -> Tuple[Optional[str], Optional[TimeKey]]:
    """The RFC 3339 timestamp a TEXT line starts with (followed by a space), if any."""
    head, sep, _ = line.partition(" ")
    if not sep:
        return None, None
    key = _parse_rfc3339(head)
    return (head, key) if key is not None else (None, None)


def _format_value(value: float) -> str:
    """The shortest string that round-trips to ``value`` (Python's repr)."""
    return repr(float(value))


def _decode_line(line: Union[str, bytes, bytearray, memoryview]) -> Optional[str]:
    """One line as text: capped at MAX_LINE, invalid UTF-8 replaced, trailing newline dropped."""
    if isinstance(line, (bytes, bytearray, memoryview)):
        text = bytes(line[:MAX_LINE]).decode("utf-8", errors="replace")
    elif isinstance(line, str):
        text = line[:MAX_LINE]
    else:
        return None
    if text.endswith("\n"):
        text = text[:-1]
    return text[:-1] if text.endswith("\r") else text


# --------------------------------------------------------------------------- filters


def _default_matches(line: str) -> Iterator[Tuple[Optional[str], Optional[str]]]:
    """All matches of DEFAULT_FILTER in ``line`` (findall semantics) in linear time.

    A match of the default filter can only start where the previous match ended or at the
    start of a run of name characters, so the search tries the anchored position first and
    then only run starts; a plain ``finditer`` is quadratic on long runs of word characters.
    """
    pos = 0
    while pos < len(line):
        m = _DEFAULT_RE.match(line, pos) or _DEFAULT_AT_RUN_START_RE.search(line, pos)
        if m is None:
            return
        yield m.group(1), m.group(2)
        pos = m.end()


def _regex_matcher(regex: Any) -> Matcher:
    """A matcher yielding (group 1, group 2) of every match of a compiled filter (RE2 or Python's re)."""

    def matches(line: str) -> Iterator[Tuple[Optional[str], Optional[str]]]:
        for m in regex.finditer(line):
            yield m.group(1), m.group(2)

    return matches


def _load_re2() -> Any:
    """google-re2's module ``re2`` (Katib's engine: linear time), or None where it is not installed."""
    try:
        import re2  # type: ignore[import-not-found]
    except (ImportError, OSError):
        return None
    return re2 if hasattr(re2, "Options") and hasattr(re2, "error") else None  # not another package's "re2"


_RE2 = _load_re2()
#: Python's ``re`` flags for a filter where google-re2 is missing (RE2, like Go, has ASCII \w \d \s \b)
_RE_FLAGS = re.ASCII


def _compile_re2(pattern: str) -> Any:
    """The filter compiled by RE2 with the options of Go's ``regexp.Compile`` (Katib's
    ``GetFilterRegexpList``): Perl syntax, case-sensitive, leftmost-first, UTF-8, ``.`` not matching
    a newline, ``^``/``$`` at the ends of the line (RE2's defaults). ValueError with RE2's message."""
    options = _RE2.Options()
    options.log_errors = False
    try:
        return _RE2.compile(pattern, options)
    except _RE2.error as err:
        why = err.args[0].decode("utf-8", "replace") if err.args and isinstance(err.args[0], bytes) else str(err)
        raise ValueError(f"{pattern!r} is not a valid regular expression for RE2 (Katib's engine): {why}") from None


def _compile_re(pattern: str) -> "re.Pattern[str]":
    """The filter compiled by Python's ``re`` as the wrapper uses it without google-re2; ValueError if
    ``re`` cannot read it, or would read it otherwise than RE2 (a nested set such as ``[[:alpha:]]``)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return re.compile(pattern, _RE_FLAGS)
        except (re.error, ValueError, OverflowError, RecursionError, FutureWarning, DeprecationWarning) as err:
            raise ValueError(
                f"{pattern!r} is not a valid regular expression for Python's re, which trial images without "
                f"google-re2 use: {err} (write it in the syntax both share)") from None


def _compile_filter(pattern: str) -> Matcher:
    """A matcher for one filter; ValueError naming the filter if it is unusable.

    The filter must compile with RE2 (matched with it where google-re2 is installed: the runner, the
    validator) and with Python's ``re`` (the wrapper in an image without google-re2 matches with it in
    a child process, a time budget per line: see :class:`_IsolatedMatcher`)."""
    if not isinstance(pattern, str):
        raise ValueError(f"metrics filter {pattern!r} must be a string")
    if pattern == DEFAULT_FILTER:
        return _default_matches
    regex = _compile_re2(pattern) if _RE2 is not None else None
    fallback = _compile_re(pattern)
    groups = regex.groups if regex is not None else fallback.groups
    if groups < 2:
        raise ValueError(f"{pattern!r} needs two groups (metric name, metric value), it has {groups}")
    if regex is not None:
        return _regex_matcher(regex)
    return _IsolatedMatcher(pattern)


#: seconds a filter may take on one line when Python's ``re`` matches it (no google-re2); the line is skipped past it
FILTER_TIME_BUDGET = 1.0
#: lines a filter may overrun its budget on before it is no longer used for the trial (the output keeps flowing)
FILTER_MAX_OVERRUNS = 10

#: the matching child of :class:`_IsolatedMatcher`: reads lines, writes their (group 1, group 2) pairs as JSON
_MATCHER_SOURCE = r"""
import json, os, re, sys
try:  # Linux: die with the wrapper, even when it is killed with SIGKILL
    import ctypes
    ctypes.CDLL(None).prctl(1, 9)
except Exception:
    pass
if os.getppid() != int(sys.argv[3]):
    sys.exit(0)
regex = re.compile(sys.argv[1], int(sys.argv[2]))
out = sys.stdout.buffer
for raw in sys.stdin.buffer:
    line = raw[:-1].decode("utf-8", "replace")
    out.write(json.dumps([[m.group(1), m.group(2)] for m in regex.finditer(line)]).encode() + b"\n")
    out.flush()
"""


class _IsolatedMatcher:
    """A custom filter matched by Python's ``re`` in a child process, each line within
    :data:`FILTER_TIME_BUDGET` seconds (for the wrapper where google-re2 is missing).

    Python's ``re`` can backtrack for hours (``(a+)+$``) inside one C call that holds the GIL: in the
    wrapper no signal handler, deadline or output thread could run. Here the wrapper only waits on a
    pipe; a line that takes longer is skipped (one warning on stderr) and the child is killed and
    started again for the next line. After :data:`FILTER_MAX_OVERRUNS` such lines the filter is no
    longer used, so that a trial printing many of them is not slowed to one line per budget.
    Without POSIX pipes or a Python to start, it matches in-process.
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._overruns = 0
        self._inline: Optional[re.Pattern[str]] = None

    def __call__(self, line: str) -> Iterator[Tuple[Optional[str], Optional[str]]]:
        if self._overruns >= FILTER_MAX_OVERRUNS:
            return iter(())
        if self._inline is not None:
            return ((m.group(1), m.group(2)) for m in self._inline.finditer(line))
        proc = self._proc or self._start()
        if proc is None:
            return self.__call__(line)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(line.encode("utf-8", "replace").replace(b"\n", b" ") + b"\n")
            proc.stdin.flush()
            reply = self._read_reply(proc.stdout.fileno())
        except OSError:
            reply = None
        if reply is None:
            self._skip()
            return iter(())
        return ((name, value) for name, value in json.loads(reply))

    def _start(self) -> Optional[subprocess.Popen[bytes]]:
        try:
            if os.name != "posix" or not sys.executable:  # select() waits on pipes on POSIX only
                raise OSError("no POSIX pipes or no Python executable")
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _MATCHER_SOURCE, self.pattern, str(int(_RE_FLAGS)), str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except (OSError, ValueError) as err:
            print(f"hp-components metrics: cannot start a process to match the filter {self.pattern!r} ({err}); "
                  "matching in this process (a filter that backtracks badly could stall the wrapper)",
                  file=sys.stderr, flush=True)
            self._inline = re.compile(self.pattern, _RE_FLAGS)
            return None
        return self._proc

    def _read_reply(self, fd: int) -> Optional[bytes]:
        """The child's reply to one line, or None if it took longer than the budget (or died)."""
        import select
        import time

        deadline = time.monotonic() + FILTER_TIME_BUDGET
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                return None
            data += chunk
        return data

    def _skip(self) -> None:
        """Kill the child (a new one matches the next line) and warn once."""
        self.close()
        self._overruns += 1
        if self._overruns == 1:
            print(f"hp-components metrics: the filter {self.pattern!r} took more than {FILTER_TIME_BUDGET:g} s on "
                  f"a line (Python's re backtracking; google-re2 in the image avoids it): such lines are skipped, "
                  f"and after {FILTER_MAX_OVERRUNS} of them the filter is no longer used", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Stop the matching child, if any."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass


# --------------------------------------------------------------------------- parser


class _Series:
    """The values reported for one metric, with running min / max / latest."""

    __slots__ = ("values", "stamps", "minimum", "maximum", "latest", "latest_key")

    def __init__(self) -> None:
        self.values: Deque[float] = deque(maxlen=MAX_VALUES)  # memory flat in the trial's output size
        self.stamps: Deque[Optional[str]] = deque(maxlen=MAX_VALUES)
        self.minimum = math.inf
        self.maximum = -math.inf
        self.latest = math.nan
        self.latest_key: Optional[TimeKey] = None

    def add(self, value: float, stamp: Optional[str], key: Optional[TimeKey]) -> None:
        self.values.append(value)
        self.stamps.append(stamp)
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        key = key if key is not None else _ZERO_TIME_KEY
        if self.latest_key is None or key >= self.latest_key:  # Katib: newest timestamp, later line on ties
            self.latest, self.latest_key = value, key


class MetricsParser:
    """Collects metric values from training output lines (TEXT) or JSON lines (JSON).

    >>> p = MetricsParser(["accuracy"])
    >>> p.feed("epoch 3: accuracy=0.9")
    [('accuracy', 0.9)]
    """

    def __init__(self, metric_names: Sequence[str], filters: Optional[Sequence[str]] = None,
                 file_format: str = "TEXT") -> None:
        self.metric_names = _check_names(metric_names)
        self._names = frozenset(self.metric_names)
        self.file_format = _check_format(file_format)
        if self.file_format == "JSON" and filters:
            raise ValueError("metrics filters cannot be used with the JSON format (Katib rejects them too)")
        self._matchers = [_compile_filter(f) for f in (filters or [DEFAULT_FILTER])]
        self._series: Dict[str, _Series] = {}
        #: non-empty JSON lines that were not a JSON object (not counted for TEXT)
        self.skipped_lines = 0
        #: metric values found but not recorded (not a finite number)
        self.ignored_values = 0

    def feed(self, line: Union[str, bytes]) -> List[Tuple[str, float]]:
        """Parse one line and record its values; returns the (name, value) pairs found. Never raises."""
        try:
            text = _decode_line(line)
            if text is None:
                return []
            return self._feed_json(text) if self.file_format == "JSON" else self._feed_text(text)
        except (RecursionError, MemoryError, ValueError, TypeError):  # pragma: no cover - defensive
            self.skipped_lines += 1
            return []

    def feed_text(self, text: Union[str, bytes]) -> None:
        """Parse many newline-separated lines."""
        newline = b"\n" if isinstance(text, (bytes, bytearray)) else "\n"
        for line in text.split(newline):  # type: ignore[arg-type]
            self.feed(line)

    def close(self) -> None:
        """Stop the processes that match filters for it, if any (fed again, it starts them again)."""
        for matcher in self._matchers:
            if isinstance(matcher, _IsolatedMatcher):
                matcher.close()

    def values(self, name: str) -> List[float]:
        """The values recorded for ``name``, in the order they were found (the last :data:`MAX_VALUES`)."""
        series = self._series.get(name)
        return list(series.values) if series else []

    def timestamps(self, name: str) -> List[Optional[str]]:
        """The timestamps (RFC 3339 text, or None) of :meth:`values`, in order."""
        series = self._series.get(name)
        return list(series.stamps) if series else []

    def summary(self) -> Dict[str, Dict[str, float]]:
        """``{name: {"min", "max", "latest"}}`` for every metric reported at least once."""
        return {
            name: {"min": s.minimum, "max": s.maximum, "latest": s.latest}
            for name, s in ((n, self._series.get(n)) for n in self.metric_names)
            if s is not None
        }

    def observation(self) -> Dict[str, List[Dict[str, str]]]:
        """Katib's observation: ``{"metrics": [{"name", "min", "max", "latest"}, ...]}`` (values as strings)."""
        metrics = [
            {"name": name, **{k: _format_value(v) for k, v in values.items()}}
            for name, values in self.summary().items()
        ]
        return {"metrics": metrics}

    def _record(self, name: str, value: Optional[float], stamp: Optional[str], key: Optional[TimeKey],
                found: List[Tuple[str, float]]) -> None:
        if value is None:
            self.ignored_values += 1
            return
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = _Series()
        series.add(value, stamp, key)
        found.append((name, value))

    def _feed_text(self, line: str) -> List[Tuple[str, float]]:
        if not any(name in line for name in self.metric_names):
            return []
        stamp, key = _line_timestamp(line)
        found: List[Tuple[str, float]] = []
        for matcher in self._matchers:
            for raw_name, raw_value in matcher(line):
                name = (raw_name or "").strip()
                if name in self._names:
                    self._record(name, _parse_number(raw_value or ""), stamp, key, found)
        return found

    def _feed_json(self, line: str) -> List[Tuple[str, float]]:
        if not line.strip():
            return []
        try:
            obj = json.loads(line, parse_int=float)
        except (ValueError, RecursionError):
            obj = None
        if not isinstance(obj, dict):
            self.skipped_lines += 1
            return []
        stamp, key = _json_timestamp(obj.get(TIMESTAMP_KEY))
        found: List[Tuple[str, float]] = []
        for name in self.metric_names:
            if name in obj:
                self._record(name, _to_float(obj[name]), stamp, key, found)
        return found


def _check_names(names: Sequence[str]) -> List[str]:
    """Metric names, duplicates dropped; ValueError if there are none or one is blank."""
    if isinstance(names, str) or not names:
        raise ValueError("metric_names must be a non-empty list of metric names")
    result: List[str] = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"invalid metric name {name!r}: it must be a non-empty string")
        if name not in result:
            result.append(name)
    return result


def _check_format(file_format: str) -> str:
    """``TEXT`` or ``JSON`` (any case); ValueError otherwise."""
    fmt = file_format.upper() if isinstance(file_format, str) else ""
    if fmt not in FILE_FORMATS:
        raise ValueError(f"invalid metrics format {file_format!r}: use TEXT or JSON")
    return fmt


def objective_value(observation: Dict[str, Any], name: str, strategy: str) -> Optional[float]:
    """The value of metric ``name`` under ``strategy`` (min, max, latest) in a Katib observation.

    None when the metric is absent or its value is not a finite number (e.g. Katib's
    ``"unavailable"``).
    """
    strategy = _check_strategy(strategy)
    metrics = observation.get("metrics") if isinstance(observation, dict) else None
    for metric in metrics if isinstance(metrics, list) else []:
        if isinstance(metric, dict) and metric.get("name") == name:
            return _to_float(metric.get(strategy))
    return None


def _check_strategy(strategy: str) -> str:
    """A metric strategy in lower case; ValueError if it is not min, max or latest."""
    value = strategy.lower() if isinstance(strategy, str) else ""
    if value not in STRATEGIES:
        raise ValueError(f"invalid metric strategy {strategy!r}: use min, max or latest")
    return value


# --------------------------------------------------------------------------- collectors


class Collector:
    """One trial's metrics collector, the same object for the local runner, the trial wrapper and the
    validator. The StdOut kind parses the training output; :class:`FileCollector` reads a file.

    >>> c = collector("StdOut", ["loss"])
    >>> c.feed_output("epoch 1: loss=0.5")
    [('loss', 0.5)]
    >>> c.finish(), c.observation()["metrics"][0]["latest"]
    ('', '0.5')

    Its life: :meth:`prepare` the command and environment, :meth:`feed_output` each output line,
    :meth:`finish` once the process ended, then :meth:`observation`. A new kind is a subclass
    registered in :data:`COLLECTORS`.
    """

    kind = "StdOut"

    def __init__(self, metric_names: Sequence[str], *, filters: Optional[Sequence[str]] = None,
                 file_path: Optional[str] = None, file_format: str = "TEXT") -> None:
        self.parser = MetricsParser(metric_names, filters, file_format)

    def prepare(self, argv: List[str], env: Dict[str, str], trial_dir: Optional[str] = None) -> Tuple[List[str], Dict[str, str]]:
        """The command and environment to run (``trial_dir``: where this trial may keep files)."""
        return argv, env

    def feed_output(self, line: Union[str, bytes]) -> List[Tuple[str, float]]:
        """One line of the training output; the (name, value) pairs it reported."""
        return self.parser.feed(line)

    def poll(self) -> List[Tuple[str, float]]:
        """While the trial runs: what it reported elsewhere than its output since the last poll."""
        return []

    def finish(self) -> str:
        """After the process ended: read what is left; a note on what went wrong, or ""."""
        self.parser.close()
        if self.parser.ignored_values:
            return f"{self.parser.ignored_values} value(s) that are not finite numbers were ignored"
        return ""

    def observation(self) -> Dict[str, List[Dict[str, str]]]:
        """Katib's observation of what was collected."""
        return self.parser.observation()


class FileCollector(Collector):
    """Katib's File collector: metrics from ``file_path`` (TEXT or JSON lines), not from the output.

    Katib gives each trial pod its own file; locally :meth:`prepare` does the same, rewriting the path
    in the command and environment to a file in the trial's folder (``path_in_trial_dir``)."""

    kind = "File"

    def __init__(self, metric_names: Sequence[str], *, filters: Optional[Sequence[str]] = None,
                 file_path: Optional[str] = None, file_format: str = "TEXT") -> None:
        if not file_path:
            raise ValueError("the File collector needs the path of the metrics file")
        super().__init__(metric_names, filters=filters, file_format=file_format)
        self.spec_path = file_path
        self.path = file_path
        self._offset = 0
        self._lines = LineSplitter()
        self._seen = False

    def names_path(self, argv: Sequence[str], env: Dict[str, str]) -> bool:
        """Whether the command or its environment names the file (so each trial can get its own)."""
        return any(self.spec_path in a for a in [*argv, *env.values()])

    def prepare(self, argv: List[str], env: Dict[str, str], trial_dir: Optional[str] = None) -> Tuple[List[str], Dict[str, str]]:
        if trial_dir is None or not self.names_path(argv, env):
            return argv, env
        self.path = os.path.join(os.path.abspath(trial_dir), os.path.basename(self.spec_path))
        if os.path.exists(self.path):
            os.unlink(self.path)
        return ([a.replace(self.spec_path, self.path) for a in argv],
                {k: v.replace(self.spec_path, self.path) for k, v in env.items()})

    def feed_output(self, line: Union[str, bytes]) -> List[Tuple[str, float]]:
        return []

    def poll(self) -> List[Tuple[str, float]]:
        """The complete lines the trial added to its file since the last poll (Katib's collector tails
        the file while the trial runs, so early stopping sees the values as they come)."""
        found: List[Tuple[str, float]] = []
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                while True:
                    chunk = fh.read(_READ_CHUNK)
                    if not chunk:
                        break
                    self._offset += len(chunk)
                    for line in self._lines.feed(chunk):
                        found += self.parser.feed(line)
        except OSError:
            return found
        self._seen = True
        return found

    def finish(self) -> str:
        self.poll()
        last = self._lines.flush()
        if last:
            self.parser.feed(last)
        if not self._seen:
            note = _parse_file(self.parser, self.path)  # says why the file cannot be read
            self.parser.close()
            return note
        return super().finish()


#: collector kind (``metricsCollectorSpec.collector.kind``) -> class
COLLECTORS: Dict[str, Callable[..., Collector]] = {"StdOut": Collector, "File": FileCollector}


def collector(kind: str, metric_names: Sequence[str], *, filters: Optional[Sequence[str]] = None,
              file_path: Optional[str] = None, file_format: str = "TEXT") -> Collector:
    """A collector of ``kind``; ValueError saying what is wrong (an unknown kind, a bad filter)."""
    if kind not in COLLECTORS:
        raise ValueError(f"collector {kind} is not supported here; use {' or '.join(COLLECTORS)}")
    return COLLECTORS[kind](metric_names, filters=filters, file_path=file_path, file_format=file_format)


# --------------------------------------------------------------------------- early-stopping rules


#: Katib's comparison types (pkg/apis/controller/common/v1beta1/common_types.go ``ComparisonType``)
COMPARISONS = ("equal", "less", "greater")
#: intermediate values of the objective kept per trial (by the local runner and in the wrapper's result)
MAX_REPORTS = 10_000
_WIRE_REPORTS = 1_000  # the wrapper command's default: its result is a pipeline parameter (Argo, KFP)


class StopRule(NamedTuple):
    """One of Katib's ``EarlyStoppingRule``s: the trial stops once ``name`` is ``comparison`` (``less``,
    ``greater``, ``equal``) ``value``, judged at its ``start_step``-th report (0: at every report).

    Its text is the sidecar's ``-stop-rule`` flag, ``name;value;comparison;startStep``::

        >>> StopRule.parse("accuracy;0.71;less;4")
        StopRule(name='accuracy', value=0.71, comparison='less', start_step=4)
        >>> str(StopRule("loss", 0.5, "greater", 2))
        'loss;0.5;greater;2'
    """

    name: str
    value: float
    comparison: str
    start_step: int = 0

    def __str__(self) -> str:
        return f"{self.name};{_format_value(self.value)};{self.comparison};{self.start_step}"

    @classmethod
    def parse(cls, text: str) -> "StopRule":
        """A rule from its flag text; ValueError saying which of the four parts is wrong."""
        parts = str(text).rsplit(";", 3)
        if len(parts) != 4 or not parts[0]:
            raise ValueError(f"invalid stop rule {text!r}: use name;value;comparison;startStep")
        name, value, comparison, step = parts
        number = _parse_number(value.strip())
        if number is None or not math.isfinite(number):
            raise ValueError(f"invalid stop rule {text!r}: the value {value!r} is not a finite number")
        if comparison not in COMPARISONS:
            raise ValueError(f"invalid stop rule {text!r}: the comparison {comparison!r} is not one of {', '.join(COMPARISONS)}")
        if not step.strip().isdigit():
            raise ValueError(f"invalid stop rule {text!r}: the start step {step!r} is not a whole number >= 0")
        return cls(name, number, comparison, int(step))


class StopRules:
    """A trial's early-stopping rules checked as its values come, as Katib's metrics collector does
    (cmd/metricscollector/v1beta1/file-metricscollector/main.go ``watchMetricsFile``, ``updateStopRules``):

    * the objective is compared by its best value so far (max or min by ``objective_type``), any other
      metric by the value just reported;
    * a rule with a start step is judged once, at that metric's ``start_step``-th report; one without,
      at every report;
    * a rule whose comparison holds is met and dropped; the trial stops when every rule is met.

    The local runner (through :mod:`hp_components.earlystop`) and the trial wrapper both use it::

        >>> rules = StopRules([StopRule("acc", 0.6, "less", 2)], objective="acc", objective_type="maximize")
        >>> rules.feed("acc", 0.3), rules.feed("acc", 0.5)
        (False, True)
        >>> rules.message
        'acc: best so far 0.5 is less than 0.6 at report 2'
    """

    def __init__(self, rules: Sequence[StopRule], *, objective: str, objective_type: str) -> None:
        if objective_type not in ("maximize", "minimize"):
            raise ValueError(f"invalid objective type {objective_type!r}: use maximize or minimize")
        self.pending = list(rules)
        self.objective = objective
        self.maximize = objective_type == "maximize"
        self.stopped = False
        self.message = ""
        self._left = [r.start_step for r in self.pending]
        self._reports: Dict[str, int] = {}
        self._best: Optional[float] = None
        self._met: List[str] = []

    def feed(self, name: str, value: float) -> bool:
        """One reported value; True once every rule is met (and from then on)."""
        if self.stopped or not self.pending or all(r.name != name for r in self.pending):
            return self.stopped
        self._reports[name] = self._reports.get(name, 0) + 1
        if name == self.objective:
            if self._best is None or (value > self._best if self.maximize else value < self._best):
                self._best = value
            value = self._best
        keep: List[int] = []
        for i, rule in enumerate(self.pending):
            if rule.name != name:
                keep.append(i)
                continue
            if rule.start_step:
                self._left[i] -= 1
                if self._left[i] != 0:
                    keep.append(i)
                    continue
            if _compares(value, rule.comparison, rule.value):
                what = "best so far" if name == self.objective else "value"
                self._met.append(f"{name}: {what} {_format_value(value)} is {rule.comparison} than "
                                 f"{_format_value(rule.value)} at report {self._reports[name]}")
            else:
                keep.append(i)
        self.pending = [self.pending[i] for i in keep]
        self._left = [self._left[i] for i in keep]
        if not self.pending:
            self.stopped = True
            self.message = "; ".join(self._met).replace("is equal than", "equals")
        return self.stopped


def _compares(value: float, comparison: str, target: float) -> bool:
    if comparison == "less":
        return value < target
    if comparison == "greater":
        return value > target
    return value == target


# --------------------------------------------------------------------------- trial wrapper


class LineSplitter:
    """Cuts a byte stream into lines (newline dropped), each cut at :data:`MAX_LINE` bytes: the one
    splitter of the wrapper, the local runner and the File collector. Memory stays flat however long
    a line is.

    >>> s = LineSplitter()
    >>> s.feed(b"loss=1\\nloss="), s.feed(b"2\\n"), s.flush()
    ([b'loss=1'], [b'loss=2'], b'')
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> List[bytes]:
        """The lines ``chunk`` completes."""
        *lines, pending = (self._pending + chunk).split(b"\n")
        self._pending = pending[:MAX_LINE]
        return [line[:MAX_LINE] for line in lines]

    def flush(self) -> bytes:
        """The unterminated last line (``b""`` if none); the splitter starts afresh."""
        last, self._pending = self._pending, b""
        return last


class _Sink:
    """Where the trial's output goes: our stdout, the log file and the collector.

    Thread-safe; after :meth:`close` everything is dropped, so an abandoned reader thread
    cannot touch the results.
    """

    def __init__(self, stdout: Optional[IO[Any]], log: Optional[IO[bytes]], parser: Optional[Collector],
                 on_values: Optional[Callable[[List[Tuple[str, float]]], None]] = None) -> None:
        self._stdout = stdout
        self._log = log
        self._parser = parser
        self._on_values = on_values
        self._lines = LineSplitter()
        self._lock = threading.Lock()
        self._open = True
        self._closing = False

    def write(self, chunk: bytes) -> None:
        with self._lock:
            if not self._open:
                return
            self._echo(chunk)
            if self._parser is None:
                return
            for line in self._lines.feed(chunk):
                if self._closing:  # close() is waiting for the lock: it waits for one line at most
                    return
                self._found(self._parser.feed_output(line))

    def close(self) -> None:
        """Parse the unterminated last line, then drop all further output."""
        self._closing = True
        with self._lock:
            last = self._lines.flush()
            if self._open and self._parser is not None and last:
                self._found(self._parser.feed_output(last))
            self._open = False

    def _echo(self, chunk: bytes) -> None:
        if self._stdout is not None:
            try:
                _write_binary(self._stdout, chunk)
            except (OSError, ValueError):  # closed or broken stdout: keep running, stop echoing
                self._stdout = None
        if self._log is not None:
            try:
                self._log.write(chunk)
                self._log.flush()
            except (OSError, ValueError):
                self._log = None

    def _found(self, pairs: List[Tuple[str, float]]) -> None:
        if pairs and self._on_values is not None:
            self._on_values(pairs)


def _write_binary(stream: IO[Any], chunk: bytes) -> None:
    """Write raw bytes to a text stream's buffer (or decoded, if it has none) and flush."""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        stream.flush()
        buffer.write(chunk)
        buffer.flush()
    else:
        stream.write(chunk.decode("utf-8", errors="replace"))
        stream.flush()


def _pump(fd: int, sink: _Sink) -> None:
    """Copy the child's output (fd) to the sink until end of file."""
    while True:
        try:
            chunk = os.read(fd, _READ_CHUNK)
        except OSError:
            return
        if not chunk:
            return
        sink.write(chunk)


def _check_command(command: Sequence[Any]) -> List[str]:
    """The argv list (path-likes converted); ValueError for a string or an empty command."""
    if isinstance(command, (str, bytes)):
        raise ValueError("command must be a list of arguments (it runs without a shell), not a string")
    argv = [os.fspath(a) if isinstance(a, os.PathLike) else a for a in command]
    if not argv:
        raise ValueError("command is empty: give the training command after '--'")
    for arg in argv:
        if not isinstance(arg, str):
            raise ValueError(f"command argument {arg!r} is not a string")
    return argv


def _check_timeout(timeout: Optional[float]) -> Optional[float]:
    """Seconds, or None for no limit (None or 0, as in Katib); ValueError if negative or not a number."""
    if timeout is None:
        return None
    try:
        seconds = float(timeout)
    except (TypeError, ValueError):
        raise ValueError(f"invalid timeout {timeout!r}: give seconds") from None
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"invalid timeout {timeout!r}: it must be >= 0 seconds (0 = no limit)")
    return seconds if 0 < seconds < math.inf else None


def _resolve_strategies(names: List[str], strategies: Optional[Dict[str, str]]) -> Dict[str, str]:
    """A strategy per metric: the given ones (validated), ``latest`` for the rest."""
    given = dict(strategies or {})
    for name in given:
        if name not in names:
            raise ValueError(f"strategy given for {name!r}, which is not one of the metrics {names}")
    return {name: _check_strategy(given.get(name, "latest")) for name in names}


def _launch(argv: List[str]) -> Tuple[Optional[subprocess.Popen[bytes]], Optional[Tuple[str, str]]]:
    """Start the command (no shell, own process group); (process, None) or (None, (reason, message))."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")  # a Python child's metrics reach us before a timeout kill
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, start_new_session=os.name == "posix",
        )
    except (OSError, ValueError) as err:
        return None, launch_failure(argv[0], err)
    return proc, None


def launch_failure(program: str, err: Exception) -> Tuple[str, str]:
    """``(reason, message)`` for a training command that could not start, as :func:`judge` takes it."""
    reason = ("CommandNotFound" if isinstance(err, FileNotFoundError) else
              "CommandNotExecutable" if isinstance(err, PermissionError) else "CommandNotStarted")
    return reason, f"cannot start {program!r}: {getattr(err, 'strerror', None) or err}"


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to the child's process group (POSIX) or the child itself."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, sig)
        elif sig == getattr(signal, "SIGKILL", None):  # pragma: no cover - Windows
            proc.kill()
        else:  # pragma: no cover - Windows
            proc.terminate()
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group, SIGKILL it if still alive after ``grace`` seconds, reap it."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, getattr(signal, "SIGKILL", signal.SIGTERM))
    proc.wait()


class _Watch:
    """What the wrapper sees of a running trial: the objective's intermediate values, checked against
    its stop rules. Called with each batch of (name, value) pairs, from the output reader thread and
    from the main thread (a File collector's polls)."""

    def __init__(self, objective: str, rules: Optional[StopRules], keep: int = MAX_REPORTS) -> None:
        self.objective = objective
        self.rules = rules
        self.keep = keep
        self.values: List[List[float]] = []  # [step, value]
        self._count = 0
        self.reached = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, pairs: List[Tuple[str, float]]) -> None:
        with self._lock:
            for name, value in pairs:
                if name == self.objective:
                    if len(self.values) < self.keep:
                        self.values.append([self._count, value])
                    self._count += 1
                if self.rules is not None and self.rules.feed(name, value):
                    self.reached.set()


#: seconds between checks of a running trial that has stop rules or a metrics file
_TICK = 0.1


def _wait(proc: subprocess.Popen[bytes], timeout: Optional[float], stop: Optional[threading.Event] = None,
          poll: Optional[Callable[[], None]] = None, grace: float = _KILL_GRACE) -> str:
    """Wait for the child: "" when it ended by itself; "timeout" past the deadline and "early" once
    ``stop`` is set (its stop rules are met); stopped means SIGTERM to its process group, SIGKILL
    after ``grace``.

    With ``stop`` or ``poll`` (reads a File collector's file while the trial runs) it checks every
    :data:`_TICK` seconds; otherwise it simply waits."""
    if stop is None and poll is None:
        try:
            proc.wait(timeout=timeout)
            return ""
        except subprocess.TimeoutExpired:
            _stop(proc, grace)
            return "timeout"
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if end is None else end - time.monotonic()
        try:
            proc.wait(timeout=_TICK if left is None else max(0.0, min(_TICK, left)))
            return ""
        except subprocess.TimeoutExpired:
            pass
        if poll is not None:
            poll()
        if stop is not None and stop.is_set():
            _stop(proc, grace)
            return "early"
        if end is not None and time.monotonic() >= end:
            _stop(proc, grace)
            return "timeout"


def _drain(reader: threading.Thread, proc: subprocess.Popen[bytes]) -> None:
    """Let the reader reach end of output; kill leftover processes still holding the pipe."""
    reader.join(_DRAIN_GRACE)
    if reader.is_alive():
        _signal_group(proc, getattr(signal, "SIGKILL", signal.SIGTERM))
        reader.join(_DRAIN_GRACE)


class _ForwardSignals:
    """While active, SIGTERM / SIGINT / SIGHUP sent to us are passed on to the child's process group."""

    _SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._saved: Dict[int, Any] = {}

    def __enter__(self) -> "_ForwardSignals":
        if threading.current_thread() is threading.main_thread():
            for name in self._SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._saved[sig] = signal.signal(sig, self._forward)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def _forward(self, signum: int, frame: Any) -> None:
        _signal_group(self._proc, signum)


def _run_process(argv: List[str], timeout: Optional[float], sink: _Sink, stop: Optional[threading.Event] = None,
                 poll: Optional[Callable[[], None]] = None,
                 grace: float = _KILL_GRACE) -> Tuple[Optional[int], str, Optional[Tuple[str, str]]]:
    """Run the command, streaming its output into ``sink``: (return code, how it was stopped (see
    :func:`_wait`), launch failure)."""
    proc, failure = _launch(argv)
    if proc is None:
        return None, "", failure
    assert proc.stdout is not None
    reader = threading.Thread(target=_pump, args=(proc.stdout.fileno(), sink), name="trial-output", daemon=True)
    reader.start()
    with _ForwardSignals(proc):
        stopped = _wait(proc, timeout, stop, poll, grace)
        _drain(reader, proc)
    sink.close()
    if not reader.is_alive():
        proc.stdout.close()
    return proc.returncode, stopped, None


def _parse_file(parser: MetricsParser, path: str) -> str:
    """Feed a metrics file to the parser line by line; returns a problem description or ""."""
    try:
        with open(path, "rb") as fh:
            lines = LineSplitter()
            for chunk in iter(lambda: fh.read(_READ_CHUNK), b""):
                for line in lines.feed(chunk):
                    parser.feed(line)
            parser.feed(lines.flush())
    except FileNotFoundError:
        return f"metrics file {path!r} does not exist"
    except OSError as err:
        return f"metrics file {path!r} cannot be read: {err.strerror or err}"
    return ""


def _exit_code(returncode: int) -> int:
    """A container-style exit code: 128 + N for a process killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Outcome(NamedTuple):
    """How a trial ended: Katib's condition, a reason (one CamelCase word) and a message for people."""

    condition: str
    reason: str
    message: str = ""


def _how(returncode: int) -> str:
    return f"was killed by {_signal_name(-returncode)}" if returncode < 0 else f"ended with exit code {returncode}"


def judge(*, objective: str, value: Optional[float], returncode: Optional[int] = None,
          failure: Optional[Tuple[str, str]] = None, early_stopped: str = "",
          stopped: Optional[Tuple[str, str, str]] = None, timed_out: Optional[float] = None,
          workers: Sequence[int] = (), note: str = "") -> Outcome:
    """The one judge of a finished trial, for every engine (local runner, trial wrapper, job launcher).

    The facts, most decisive first: ``failure`` ``(reason, message)``, the trial could not run or its
    job failed (``("TrialFailed", "BackoffLimitExceeded: ...")``); ``early_stopped``, the early-stopping
    rule's message; ``stopped`` ``(condition, reason, message)``, the runner stopped it (``Killed``,
    ``Interrupted``); ``timed_out``, the deadline in seconds it ran past; ``returncode`` of the
    training process (negative: killed by that signal); ``workers``, the return codes of the other
    replicas; ``value``, the objective's value (None: not reported, ``note`` says what was seen). ::

        judge(objective="loss", value=None, returncode=3)
        # Outcome(condition='Failed', reason='TrialFailed', message='the training process ended with exit code 3')
    """
    if failure:
        return Outcome("Failed", *failure)
    if early_stopped:
        return Outcome("EarlyStopped", "TrialEarlyStopped", early_stopped)
    if stopped:
        return Outcome(*stopped)
    if timed_out is not None:
        return Outcome("Failed", "DeadlineExceeded", f"did not finish within {timed_out:g} s (activeDeadlineSeconds)")
    if returncode:
        return Outcome("Failed", "TrialFailed", f"the training process {_how(returncode)}")
    for rank, code in enumerate(workers, start=1):
        if code:
            return Outcome("Failed", "TrialFailed", f"PyTorchJob worker (rank {rank}) {_how(code)}")
    if value is None:
        return Outcome("MetricsUnavailable", "MetricsUnavailable",
                       f"the objective metric {objective!r} was not reported" + (f" ({note})" if note else ""))
    return Outcome("Succeeded", "TrialSucceeded", "")


def _open_log(log_path: Optional[str]) -> Optional[IO[bytes]]:
    """The log file opened for writing (parent directories created), or None."""
    if not log_path:
        return None
    parent = os.path.dirname(os.path.abspath(log_path))
    os.makedirs(parent, exist_ok=True)
    return open(log_path, "wb")


def _check_rules(rules: Sequence[Union[str, StopRule]], names: List[str], objective_type: Optional[str]) -> List[StopRule]:
    """The stop rules (text parsed, "" skipped); ValueError for a bad one, a metric that is not
    collected, or a rule on the objective without its type."""
    if isinstance(rules, (str, bytes)):
        raise ValueError("stop_rules must be a list of rules, not a string")
    parsed = [r if isinstance(r, StopRule) else StopRule.parse(r) for r in rules if r != ""]
    for rule in parsed:
        if rule.name not in names:
            raise ValueError(f"stop rule {str(rule)!r}: {rule.name!r} is not one of the metrics {names}")
        if rule.name == names[0] and objective_type not in ("maximize", "minimize"):
            raise ValueError(f"stop rule {str(rule)!r} is on the objective: give its type (maximize or minimize)")
    return parsed


def run_trial(command: Sequence[str], *, objective: str, metrics: Sequence[str], filters: Optional[Sequence[str]] = None,
              file_path: Optional[str] = None, file_format: str = "TEXT", timeout: Optional[float] = None,
              strategies: Optional[Dict[str, str]] = None, log_path: Optional[str] = None,
              stop_rules: Sequence[Union[str, StopRule]] = (), objective_type: Optional[str] = None,
              kill_grace: float = _KILL_GRACE, keep_values: int = MAX_REPORTS) -> Dict[str, Any]:
    """Run one trial's training command and collect its metrics like Katib.

    The command runs without a shell in its own process group; its stdout and stderr are
    passed through to our stdout (and ``log_path``). Metrics come from that output
    (StdOut collector) or, with ``file_path``, from that file, read while the process runs
    (File collector). ``stop_rules`` (:class:`StopRule` or its text) are checked as values come,
    as Katib's metrics collector does (:class:`StopRules`); once all are met the process group gets
    SIGTERM, then SIGKILL after ``kill_grace`` seconds, and the trial is ``EarlyStopped``. Returns
    ``{"condition", "reason", "message", "exitCode", "metrics", "objectiveValue", "intermediateValues"}``
    (the outcome from :func:`judge`; ``intermediateValues``: ``[step, value]`` of the objective's
    first ``keep_values`` reports); a failing training process is a result, not an exception.
    ValueError / OSError are raised only for invalid arguments (or an unwritable log)::

        run_trial(["python3", "train.py"], objective="acc", metrics=[], strategies={"acc": "max"},
                  stop_rules=["acc;0.62;less;4"], objective_type="maximize")["condition"]   # 'EarlyStopped'
    """
    if isinstance(metrics, str):
        raise ValueError("metrics must be a list of metric names, not a string")
    names = _check_names([objective, *metrics])
    chosen = _resolve_strategies(names, strategies)
    rules = _check_rules(stop_rules, names, objective_type)
    kind = "File" if file_path else "StdOut"
    collecting = collector(kind, names, filters=filters, file_path=file_path, file_format=file_format)
    argv = _check_command(command)
    limit = _check_timeout(timeout)
    if not (isinstance(kill_grace, (int, float)) and 0 <= kill_grace < math.inf):
        raise ValueError(f"invalid kill grace {kill_grace!r}: give seconds >= 0")
    if not (isinstance(keep_values, int) and keep_values >= 0):
        raise ValueError(f"invalid keep_values {keep_values!r}: give a whole number >= 0")
    checker = StopRules(rules, objective=objective, objective_type=objective_type or "maximize") if rules else None
    watch = _Watch(objective, checker, keep_values)
    log = _open_log(log_path)
    try:
        sink = _Sink(sys.stdout, log, collecting, watch)
        poll = (lambda: watch(collecting.poll())) if kind == "File" else None
        returncode, stopped, failure = _run_process(argv, limit, sink, watch.reached if checker else None, poll,
                                                    kill_grace)
    finally:
        if log is not None:
            log.close()
    if not failure:
        watch(collecting.poll())  # what the trial wrote to its metrics file since the last read
    note = collecting.finish() if not failure else ""
    observation = collecting.observation()
    value = objective_value(observation, objective, chosen[objective])
    early = f"stopped by its early-stopping rules ({checker.message})" if checker and stopped == "early" else ""
    outcome = judge(objective=objective, value=value, returncode=returncode, failure=failure, early_stopped=early,
                    timed_out=limit if stopped == "timeout" else None, note=note)
    return {
        **outcome._asdict(),
        "exitCode": None if returncode is None else _exit_code(returncode),
        "metrics": observation["metrics"],
        "objectiveValue": value,
        "intermediateValues": watch.values,
    }


# --------------------------------------------------------------------------- command line


class _UsageError(Exception):
    """Invalid wrapper arguments."""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # no usage dump + sys.exit: main() reports it
        raise _UsageError(message)


def _cli_parser() -> _ArgumentParser:
    p = _ArgumentParser(
        prog=os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "metrics.py",
        usage="%(prog)s --objective NAME [options] -- COMMAND [ARGS...]",
        description="Run a training command as a Katib trial and collect its metrics.",
    )
    p.add_argument("--objective", required=True, help="objective metric name")
    p.add_argument("--metric", action="extend", nargs="+", default=[], metavar="NAME", help="additional metric names")
    p.add_argument("--filter", action="extend", nargs="+", default=[], metavar="REGEX",
                   help="metrics filter(s), group 1 = name, group 2 = value (TEXT only)")
    p.add_argument("--file", help="metrics file written by the training (File collector); default: parse the output")
    p.add_argument("--format", default="TEXT", help="metrics format: TEXT (default) or JSON")
    p.add_argument("--strategy", action="extend", nargs="+", default=[], metavar="NAME=min|max|latest",
                   help="metric strategy (default latest)")
    p.add_argument("--timeout", type=float, help="seconds before the trial is killed (DeadlineExceeded)")
    p.add_argument("--output", help="write the result JSON here (default: print it to stdout)")
    p.add_argument("--log", help="also write the training output to this file")
    p.add_argument("--name", help="the trial's name, copied into the result (to match results to trials)")
    p.add_argument("--stop-rule", action="append", default=[], metavar="NAME;VALUE;less|greater|equal;STARTSTEP",
                   help="an early-stopping rule, Katib's -stop-rule format (repeatable; \"\" for none)")
    p.add_argument("--objective-type", choices=("maximize", "minimize"),
                   help="the objective's direction (needed by a stop rule on the objective: its best value so far)")
    p.add_argument("--kill-grace", type=float, default=_KILL_GRACE,
                   help="seconds between SIGTERM and SIGKILL when the trial is stopped (default %(default)s)")
    p.add_argument("--keep-values", type=int, default=_WIRE_REPORTS, metavar="N",
                   help="intermediate values of the objective kept in the result (default %(default)s: it travels "
                        "as a pipeline parameter)")
    return p


def _parse_strategies(items: List[str]) -> Dict[str, str]:
    result: Dict[str, str] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        if not sep or not name:
            raise _UsageError(f"invalid --strategy {item!r}: use NAME=min|max|latest")
        result[name] = value
    return result


def _parse_cli(argv: List[str]) -> Tuple[argparse.Namespace, List[str]]:
    """Wrapper options and the training command (everything after the first ``--``)."""
    if "--" not in argv:
        if "-h" in argv or "--help" in argv:
            _cli_parser().parse_args(argv)  # prints help, raises SystemExit(0)
        raise _UsageError("missing '--' followed by the training command")
    split = argv.index("--")
    options = _cli_parser().parse_args(argv[:split])
    command = argv[split + 1:]
    if not command:
        raise _UsageError("no training command after '--'")
    options.strategies = _parse_strategies(options.strategy)
    return options, command


def _write_json_atomic(path: str, data: Dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file and os.replace."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _summary_line(result: Dict[str, Any], objective: str, strategy: str) -> str:
    value = result["objectiveValue"]
    shown = "unavailable" if value is None else _format_value(value)
    why = result["reason"] + (f": {result['message']}" if result.get("message") else "")
    return (f"trial {result['condition']} ({why}), exit code {result['exitCode']}, "
            f"{objective} ({strategy}) = {shown}")


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point; see the module docstring. Returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    prog = _cli_parser().prog
    try:
        options, command = _parse_cli(args)
        result = run_trial(
            command, objective=options.objective, metrics=options.metric, filters=options.filter or None,
            file_path=options.file, file_format=options.format, timeout=options.timeout,
            strategies=options.strategies, log_path=options.log, stop_rules=options.stop_rule,
            objective_type=options.objective_type, kill_grace=options.kill_grace,
            keep_values=options.keep_values,
        )
    except SystemExit as stop:  # --help
        return stop.code if isinstance(stop.code, int) else 0
    except (_UsageError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    if options.name:
        result["name"] = options.name
    strategy = options.strategies.get(options.objective, "latest").lower()
    try:
        if options.output:
            _write_json_atomic(options.output, result)
        else:
            print(json.dumps(result), flush=True)
    except OSError as err:
        print(f"{prog}: error: cannot write {options.output!r}: {err}", file=sys.stderr)
        return 1
    print(f"{prog}: {_summary_line(result, options.objective, strategy)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
