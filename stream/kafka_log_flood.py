"""librdkafka's repeated lines: the first one shown, then at most one per kind each interval.

While a broker is down, every client logs each failed connection attempt, per broker
and thread, about as often as it retries (a dozen lines a second and more, for as long
as the outage lasts). An operator needs the first line and then how many more, not a
line each. ``KafkaLogFloodFilter`` sits on the ``librdkafka`` logger (stream/clients.py):
the first line of a kind passes at once; more of that kind within ``interval_s`` of the
last one shown are held back and counted; the first one after that passes, saying how
many like it were held back since (text: "(N more like this in the last S s were not
logged)", JSON: field ``unlogged``). A line of another kind is never held back by this
one.

A flood's last stretch is reported too, without waiting for a line of its kind that may
never come (the broker is back): once a kind's interval has passed with lines held back,
one line at their level says "N more like this in the last S s were not logged: <the last
one held back>" (field ``unlogged`` too). It comes with the next librdkafka line of any
kind, or from a daemon timer that runs only while something is held back, whichever is
first (``flush_due``); at shutdown, ``flush_all`` reports every count still pending
(``rating`` calls it when its command ends, before any error line; stream/clients.py
registers it with atexit too). Each held-back line is counted in exactly one report, and
these reports pass the filter untouched.

A kind is the librdkafka facility, the client's name and the text with every number
replaced, so "(after 0ms ...)", "(after 12ms ...)", ports and retry counts do not make
a new kind of each line.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

REPEAT_INTERVAL_S = 30.0
# Past this many kinds, the quiet ones (nothing held back, interval over) are forgotten,
# which loses nothing: their next line would be shown at once either way.
MAX_KINDS = 1000
# The timer waits at least this long (were it to wake a hair before a count is due, it
# would otherwise spin until it is).
MIN_TICK_S = 0.05
_NUMBER = re.compile(r"\d+")
# Set on the records this filter logs itself, which pass it untouched.
_REPORT = "kafka_log_flood_report"

Kind = tuple[str, str, str]


def kind_of(record: logging.LogRecord) -> Kind:
    """(facility, client name, text with numbers replaced). confluent_kafka logs each
    librdkafka line as ``log(level, "%s [%s] %s", facility, client name, text)``."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 3:
        facility, client, text = (str(arg) for arg in args)
        return facility, client, _NUMBER.sub("#", text)
    return "", record.name, _NUMBER.sub("#", str(record.msg))


def unlogged_text(held_back: int, since_s: float) -> str:
    return f"{held_back} more like this in the last {since_s:.0f} s were not logged"


class KafkaLogFloodFilter(logging.Filter):
    """Thread-safe: clients hand their lines over on whichever thread polls them.

    ``logger`` is the one the filter sits on: the late counts are logged through it.
    ``ticker``: a daemon timer reports due counts while nothing else comes (off where
    ``clock`` is not the real one)."""

    def __init__(self, logger: logging.Logger, interval_s: float = REPEAT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic, *, ticker: bool = True) -> None:
        super().__init__()
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._ticker = ticker
        self._lock = threading.Lock()
        self._kinds: dict[Kind, _Shown] = {}
        self._held: set[Kind] = set()  # the kinds with lines held back
        self._timer: threading.Timer | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.__dict__.get(_REPORT):
            return True
        kind = kind_of(record)
        now = self._clock()
        with self._lock:
            passes, held_back, since = self._admit(kind, record, now)
            reports = self._take(now, due_only=True)
        self._log(reports)
        if held_back:
            record.msg = f"{record.getMessage()} ({unlogged_text(held_back, since)})"
            record.args = None
            record.__dict__["unlogged"] = held_back  # JSON field (stream/logs.py)
        return passes

    def flush_due(self) -> None:
        """Log the count of every kind whose interval has passed with lines held back."""
        now = self._clock()
        with self._lock:
            reports = self._take(now, due_only=True)
            self._tick_later(now)
        self._log(reports)

    def flush_all(self) -> None:
        """Log every count still held back, due or not (at shutdown); stop the timer."""
        now = self._clock()
        with self._lock:
            reports = self._take(now, due_only=False)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._log(reports)

    def _admit(self, kind: Kind, record: logging.LogRecord,
               now: float) -> tuple[bool, int, float]:
        """Whether ``record`` passes, and how many of its kind it is to say were held back
        over how many seconds. Under the lock."""
        shown = self._kinds.get(kind)
        if shown is None:
            self._forget_quiet_kinds(now)
            self._kinds[kind] = _Shown(now)
            return True, 0, 0.0
        if now - shown.at < self.interval_s:
            shown.held_back += 1
            shown.last = record
            self._held.add(kind)
            self._tick_later(now)
            return False, 0, 0.0
        held_back, since = shown.held_back, now - shown.at
        shown.reset(now)
        self._held.discard(kind)
        return True, held_back, since

    def _take(self, now: float, *, due_only: bool) -> list[_Report]:
        """The counts to log now, each taken out of the kind (so logged once). Under the
        lock."""
        reports = []
        for kind in list(self._held):
            shown = self._kinds[kind]
            if due_only and now - shown.at < self.interval_s:
                continue
            if shown.last is not None:
                reports.append(_Report(shown.held_back, now - shown.at, shown.last))
            shown.reset(now)
            self._held.discard(kind)
        return reports

    def _log(self, reports: list[_Report]) -> None:
        """Through the logger, outside the lock: the filter sees these records again."""
        for report in reports:
            last = report.last
            record = self.logger.makeRecord(
                last.name, last.levelno, last.pathname, last.lineno,
                f"{unlogged_text(report.held_back, report.since_s)}: {last.getMessage()}",
                (), None, last.funcName,
                extra={"unlogged": report.held_back, _REPORT: True})
            self.logger.handle(record)

    def _tick_later(self, now: float) -> None:
        """A timer for the first count due, unless one is set or nothing is held back.
        Under the lock."""
        if not self._ticker or self._timer is not None or not self._held:
            return
        first_due = min(self._kinds[kind].at for kind in self._held) + self.interval_s
        self._timer = threading.Timer(max(first_due - now, MIN_TICK_S), self._tick)
        self._timer.name = "kafka-log-flood"
        self._timer.daemon = True
        self._timer.start()

    def _tick(self) -> None:
        with self._lock:
            if self._timer is threading.current_thread():  # not one set since
                self._timer = None
        self.flush_due()  # sets the next timer if anything is still held back

    def _forget_quiet_kinds(self, now: float) -> None:
        if len(self._kinds) < MAX_KINDS:
            return
        for kind, shown in list(self._kinds.items()):
            if not shown.held_back and now - shown.at >= self.interval_s:
                del self._kinds[kind]


class _Shown:
    """When a kind's last line was shown (or its count reported), how many of it were
    held back since, and the last of those."""

    __slots__ = ("at", "held_back", "last")
    at: float
    held_back: int
    last: logging.LogRecord | None

    def __init__(self, at: float) -> None:
        self.reset(at)

    def reset(self, at: float) -> None:
        self.at = at
        self.held_back = 0
        self.last = None


class _Report:
    """A count taken out of a kind, to be logged: how many, over how long, the last one."""

    __slots__ = ("held_back", "last", "since_s")

    def __init__(self, held_back: int, since_s: float, last: logging.LogRecord) -> None:
        self.held_back = held_back
        self.since_s = since_s
        self.last = last
