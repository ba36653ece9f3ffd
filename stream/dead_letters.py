"""Dead-letter records: the reason, the original bytes and where they came from."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from confluent_kafka import Message

from stream import metrics
from stream.codec import rejection_to_bytes
from stream.messages import Output, origin_of
from stream.serde import AvroEncoder

log = logging.getLogger(__name__)

LOGGED_PER_MINUTE = 10


class LogBudget:
    """At most ``per_window`` log lines per key (stage, reason) in each ``window_s``.

    A publisher gone wrong can send thousands of bad events a second: each one is on
    the dead-letter topic with its origin and counted in the metrics, so the log needs
    the first few and a count of the rest, not a line each (a line costs about what
    rating an event does). ``admit`` says whether to log this one, whether it is the
    last one logged in this window, and how many of the key's previous window went
    unlogged (to be said once, when the next one comes)."""

    def __init__(self, per_window: int = LOGGED_PER_MINUTE, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}

    def admit(self, key: tuple[str, str]) -> tuple[bool, bool, int]:
        now = self._clock()
        window = self._windows.get(key)
        unlogged = 0
        if window is None or now - window.start >= self.window_s:
            if window is not None:
                unlogged = max(0, window.seen - self.per_window)
            window = self._windows[key] = _Window(now)
        window.seen += 1
        return window.seen <= self.per_window, window.seen == self.per_window, unlogged


class _Window:
    __slots__ = ("seen", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.seen = 0


_BUDGET = LogBudget()


def dead_letter(encoder: AvroEncoder, topic: str, *, stage: str, message: Message,
                reason: str, text: str, event_id: str | None, now: datetime,
                details: Mapping[str, str] | None = None) -> Output:
    """One dead-letter Output for ``message``, logged without a stack trace (the first
    ``LOGGED_PER_MINUTE`` of a stage and reason each minute, then a count: ``LogBudget``)."""
    origin = origin_of(message)
    timestamp_type, timestamp_ms = message.timestamp()
    logged, last, unlogged = _BUDGET.admit((stage, reason))
    if unlogged:
        log.warning("dead-letter %s: %d more at stage %s in the previous minute were not "
                    "logged one by one (each is on %s with its origin)", reason, unlogged,
                    stage, topic, extra={"stage": stage, "reason": reason,
                                         "unlogged": unlogged})
    if logged:
        log.warning("dead-letter %s at %s[%d]@%d event=%s: %s", reason, origin.topic,
                    origin.partition, origin.offset, event_id, text,
                    extra={"event_id": event_id, "topic": origin.topic,
                           "partition": origin.partition, "offset": origin.offset,
                           "stage": stage, "reason": reason})
    if last:
        log.warning("dead-letter %s: %d at stage %s within a minute; more in this minute "
                    "are counted, not logged one by one", reason, _BUDGET.per_window, stage,
                    extra={"stage": stage, "reason": reason})
    metrics.EVENTS_DEAD_LETTERED.labels(stage=stage, reason=reason).inc()
    value = rejection_to_bytes(
        encoder, reason=reason, message=text, stage=stage, origin=origin, key=message.key(),
        value=message.value(), event_id=event_id,
        source_timestamp_ms=timestamp_ms if timestamp_type else None,
        details=details or {}, rejected_at=now)
    return Output(topic=topic, key=message.key(), value=value)
