"""librdkafka's repeated lines: the first one shown, then at most one per kind each interval.

While a broker is down, every client logs each failed connection attempt, per broker
and thread, about as often as it retries (a dozen lines a second and more, for as long
as the outage lasts). An operator needs the first line and then how many more, not a
line each. ``KafkaLogFloodFilter`` sits on the ``librdkafka`` logger (stream/clients.py):
the first line of a kind passes at once; more of that kind within ``interval_s`` of the
last one shown are held back and counted; the first one after that passes, saying how
many like it were held back since (text: "(N more like this in the last S s were not
logged)", JSON: field ``unlogged``). A line of another kind is never held back by this
one. The count of a kind's last stretch comes with its next line, whenever that is.

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
_NUMBER = re.compile(r"\d+")

Kind = tuple[str, str, str]


def kind_of(record: logging.LogRecord) -> Kind:
    """(facility, client name, text with numbers replaced). confluent_kafka logs each
    librdkafka line as ``log(level, "%s [%s] %s", facility, client name, text)``."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 3:
        facility, client, text = (str(arg) for arg in args)
        return facility, client, _NUMBER.sub("#", text)
    return "", record.name, _NUMBER.sub("#", str(record.msg))


class KafkaLogFloodFilter(logging.Filter):
    """Thread-safe: clients hand their lines over on whichever thread polls them."""

    def __init__(self, interval_s: float = REPEAT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._kinds: dict[Kind, _Shown] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = kind_of(record)
        now = self._clock()
        with self._lock:
            shown = self._kinds.get(kind)
            if shown is None:
                self._forget_quiet_kinds(now)
                self._kinds[kind] = _Shown(now)
                return True
            if now - shown.at < self.interval_s:
                shown.held_back += 1
                return False
            held_back, since = shown.held_back, now - shown.at
            shown.at, shown.held_back = now, 0
        if held_back:
            record.msg = (f"{record.getMessage()} ({held_back} more like this in the last "
                          f"{since:.0f} s were not logged)")
            record.args = None
            record.__dict__["unlogged"] = held_back  # JSON field (stream/logs.py)
        return True

    def _forget_quiet_kinds(self, now: float) -> None:
        if len(self._kinds) < MAX_KINDS:
            return
        for kind, shown in list(self._kinds.items()):
            if not shown.held_back and now - shown.at >= self.interval_s:
                del self._kinds[kind]


class _Shown:
    """When a kind's last line was shown, and how many of it were held back since."""

    __slots__ = ("at", "held_back")

    def __init__(self, at: float) -> None:
        self.at = at
        self.held_back = 0
