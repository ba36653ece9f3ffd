"""Recognising a re-delivered event by its id, within a window of event time.

Publishers re-send with the same ``event_id``. The same id with the same
payload is a duplicate (skip it); with a different payload it is a conflict
(reject it: one of the two is wrong and a person must decide). Ids are kept
for ``window`` of event time behind the newest event seen, which bounds the
state; an event older than that horizon is late and the caller must park it,
because it can no longer be recognised as a duplicate.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from json.encoder import encode_basestring as _json  # json.dumps' own string escaping
from typing import Protocol

from processors.events import AttributeValue, UsageEvent, iso_text, utc

DEFAULT_WINDOW = timedelta(days=35)


class Verdict(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(slots=True, init=False)  # one per event written: see processors/events.py
class SeenEvent:
    fingerprint: str
    event_time: datetime

    def __init__(self, fingerprint: str, event_time: datetime) -> None:
        self.fingerprint = fingerprint
        self.event_time = event_time


def payload_fingerprint(event: UsageEvent) -> str:
    """SHA-256 of a canonical JSON of every field of the event.

    Canonical: keys sorted, time in UTC, numbers normalised (``4`` and
    ``4.0`` are the same quantity) and tagged apart from text (``"4"``).
    The JSON is exactly ``json.dumps(payload, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` of that payload (see
    ``canonical_payload``), written out field by field: the fingerprints
    stored in the dedup state must not change.
    """
    attributes = ",".join([_attribute(name, value)
                           for name, value in sorted(event.attributes.items())])
    canonical = (
        f'{{"account_id":{_optional(event.account_id)},"attributes":{{{attributes}}},'
        f'"event_id":{_json(event.event_id)},'
        f'"event_time":{_json(iso_text(utc(event.event_time)))},'
        f'"home_ou":{_json(event.home_ou)},"operation":{_json(event.operation)},'
        f'"product":{_optional(event.product)},"provider":{_optional(event.provider)},'
        f'"requester":{_json(event.requester)},'
        f'"service_item_id":{_json(event.service_item_id)},'
        f'"service_item_type":{_json(event.service_item_type)},"source":{_json(event.source)}}}'
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def canonical_payload(event: UsageEvent) -> dict[str, object]:
    """What the fingerprint is of, as a JSON-ready dict (the reference for the tests)."""
    return {
        "event_id": event.event_id,
        "event_time": event.event_time.astimezone(UTC).isoformat(),
        "service_item_type": event.service_item_type,
        "service_item_id": event.service_item_id,
        "operation": event.operation,
        "attributes": {
            name: ["n", _number(value)] if isinstance(value, Decimal) else ["s", value]
            for name, value in event.attributes.items()
        },
        "requester": event.requester,
        "home_ou": event.home_ou,
        "source": event.source,
        "account_id": event.account_id,
        "provider": event.provider,
        "product": event.product,
    }


def _attribute(name: str, value: AttributeValue) -> str:
    """One attribute of the canonical JSON, memoised: the same few (name, value) pairs
    recur in most events. Equal numbers (4, 4.0) share a key and also a text ("4")."""
    key = (name, value)
    text = _ATTRIBUTES.get(key)
    if text is None:
        if len(_ATTRIBUTES) >= 10_000:
            _ATTRIBUTES.clear()
        text = _ATTRIBUTES[key] = (f'{_json(name)}:["n",{_json(_number(value))}]'
                                   if isinstance(value, Decimal)
                                   else f'{_json(name)}:["s",{_json(value)}]')
    return text


_ATTRIBUTES: dict[tuple[str, AttributeValue], str] = {}


def _optional(value: str | None) -> str:
    return "null" if value is None else _json(value)


def _number(value: Decimal) -> str:
    return "0" if value.is_zero() else str(value.normalize())


class OlderIds(Protocol):
    """Where a ``DedupWindow`` keeps the ids older than its memory span (local disk:
    ``stream.seen_ids_on_disk``). Entries are (id, event time in µs since the epoch,
    fingerprint as 32 bytes); holding an id again replaces it."""

    def add(self, entries: list[tuple[str, int, bytes]]) -> None: ...

    def find(self, event_id: str) -> tuple[int, bytes] | None: ...

    def discard(self, event_id: str) -> None: ...

    def expire(self, horizon_us: int) -> list[tuple[str, int]]: ...

    def ids(self) -> list[str]: ...

    def size_bytes(self) -> int: ...


class DedupWindow:
    """The ids seen within ``window`` of event time behind the newest event.

    Memory is what bounds the window (README, Known limits), so each id costs one dict
    entry and one int: the event time in microseconds since the epoch and the 256-bit
    fingerprint packed together (about 200 bytes per id with the id itself, half of a
    record object holding a hex string and a datetime). Fingerprints are SHA-256 hex
    (``payload_fingerprint``); anything else is a ValueError.

    Expiry is exact as far as any caller can tell: an entry older than the horizon is
    never a duplicate (``check`` says NEW), also after a restore. Memory is freed a
    minute of event time at a time: ids are listed per minute of their event time, and
    a minute is dropped (its ids returned by ``record``, for tombstones) once the
    horizon has passed its end.

    With ``older`` and a ``memory_span`` shorter than the window, memory holds only the
    ids of the last ``memory_span`` of event time: a minute that falls behind it moves
    to ``older`` (local disk), where ``check`` looks for an id it does not hold in
    memory. Memory then wins: an id put again is held in memory with its newer entry,
    and an older copy left in ``older`` is never read while it is. The verdicts are
    the same as with every id in memory (tests/unit/stream/test_seen_ids_on_disk.py).
    """

    def __init__(self, window: timedelta = DEFAULT_WINDOW, older: OlderIds | None = None,
                 memory_span: timedelta | None = None) -> None:
        self.window = window
        self._window_us = _micros(window)
        # Ids move to ``older`` once their event time is memory_span behind the newest.
        self._older = older if older is not None and memory_span is not None \
            and memory_span < window else None
        self._memory_span_us = _micros(memory_span) if self._older is not None \
            and memory_span is not None else self._window_us
        self._memory_horizon_us: int | None = None  # _newest_us - memory span
        self._older_held = False  # anything moved to ``older`` (else no need to look)
        self._older_expired_minute = 0  # ``older`` holds nothing before this minute
        self._seen: dict[str, int] = {}  # id -> event time (µs) << 256 | fingerprint
        self._minutes: dict[int, list[str]] = {}  # minute of event time -> ids put in it
        self._minute_heap: list[int] = []  # the keys of _minutes, oldest first
        self._newest_us: int | None = None
        self._horizon_us: int | None = None  # _newest_us - window, kept with _newest_us
        self._horizon: datetime | None = None
        # The entries recorded since forget_recent(): id -> (fingerprint as given, event
        # time in µs). The changelog writes them at the end of the batch, and unpacking
        # costs more than keeping them (tuples: 10x cheaper to build than a SeenEvent).
        self._recent: dict[str, tuple[str, int]] = {}

    @property
    def horizon(self) -> datetime | None:
        """Events before this instant are late: their ids may have been forgotten."""
        if self._horizon is None and self._horizon_us is not None:  # set by a restore
            self._horizon = _EPOCH + timedelta(microseconds=self._horizon_us)
        return self._horizon

    @property
    def horizon_us(self) -> int | None:
        """``horizon`` in microseconds since the epoch: an entry with an event time
        before it is out of the window (``check`` says NEW)."""
        return self._horizon_us

    def check(self, event_id: str, fingerprint: str) -> Verdict:
        packed = self._seen.get(event_id)
        if packed is None:
            if not self._older_held:
                return Verdict.NEW
            packed = self._find_older(event_id)
            if packed is None:
                return Verdict.NEW
        horizon_us = self._horizon_us
        if horizon_us is not None and packed >> _FINGERPRINT_BITS < horizon_us:
            return Verdict.NEW  # out of the window, just not dropped yet
        if packed & _FINGERPRINT_MASK == _fingerprint_int(fingerprint):
            return Verdict.DUPLICATE
        return Verdict.CONFLICT

    def record(self, event_id: str, fingerprint: str, event_time: datetime) -> list[str]:
        """Remember an event; returns the ids that fell out of the window as a result."""
        self._recent[event_id] = (fingerprint,
                                  self._put(event_id, event_time, _fingerprint_int(fingerprint)))
        return self._expire()

    def knows(self, event_id: str) -> bool:
        """True when ``event_id`` is held (``check`` then tells what it is)."""
        return event_id in self._seen or (self._older_held
                                          and self._find_older(event_id) is not None)

    def moves_older(self) -> bool:
        """True when ids older than a memory span move out of memory (to ``older``)."""
        return self._older is not None

    def held_in_memory(self) -> int:
        """How many ids memory holds (the rest, if any, are on disk: ``older_bytes``)."""
        return len(self._seen)

    def older_bytes(self) -> int:
        """What the ids moved out of memory take on disk (0 without ``older``)."""
        return self._older.size_bytes() if self._older is not None else 0

    @property
    def memory_horizon_us(self) -> int | None:
        """Ids with an event time before this are not held in memory (``older`` has
        them); the same as ``horizon_us`` when everything stays in memory."""
        return self._memory_horizon_us if self._older is not None else self._horizon_us

    def recent(self) -> dict[str, tuple[str, int]]:
        """The entries recorded since ``forget_recent``, in order: id -> (fingerprint,
        event time in µs since the epoch). The window's own dict: read it, do not keep it."""
        return self._recent

    def forget_recent(self) -> None:
        """The batch's entries are written: ``get`` may unpack them from now on."""
        self._recent.clear()

    def get(self, event_id: str) -> SeenEvent | None:
        packed = self._seen.get(event_id)
        if packed is None:
            packed = self._find_older(event_id) if self._older_held else None
            if packed is None:
                return None
        recent = self._recent.get(event_id)
        fingerprint = recent[0] if recent is not None else format(packed & _FINGERPRINT_MASK,
                                                                    "064x")
        return SeenEvent(fingerprint, _EPOCH + timedelta(microseconds=packed >> _FINGERPRINT_BITS))

    def entry(self, event_id: str) -> tuple[str, int] | None:
        """A held id's fingerprint and event time in µs since the epoch (None when not
        held): what the changelog keeps of it."""
        packed = self._seen.get(event_id)
        if packed is None:
            packed = self._find_older(event_id) if self._older_held else None
            if packed is None:
                return None
        return format(packed & _FINGERPRINT_MASK, "064x"), packed >> _FINGERPRINT_BITS

    def ids(self) -> list[str]:
        held = list(self._seen)
        if self._older is not None and self._older_held:
            in_memory = self._seen
            held.extend([event_id for event_id in self._older.ids()
                         if event_id not in in_memory])
        return held

    def put(self, event_id: str, seen: SeenEvent) -> None:
        """Store an entry as is (also how state is restored); does not expire others.
        The fingerprint is checked strictly here: it comes from outside (a changelog)."""
        self._recent.pop(event_id, None)
        self._put_us(event_id, micros_since_epoch(seen.event_time),
                     _strict_fingerprint_int(seen.fingerprint), seen.event_time)

    def put_micros(self, event_id: str, fingerprint: str, event_us: int) -> None:
        """``put`` with the event time in µs since the epoch (as the changelog keeps it)."""
        self._recent.pop(event_id, None)
        self._put_us(event_id, event_us, _strict_fingerprint_int(fingerprint))

    def remove(self, event_id: str) -> None:
        self._seen.pop(event_id, None)
        self._recent.pop(event_id, None)
        if self._older is not None and self._older_held:
            self._older.discard(event_id)

    def _put(self, event_id: str, event_time: datetime, fingerprint: int) -> int:
        """Hold an entry; returns its event time in µs since the epoch."""
        event_us = micros_since_epoch(event_time)
        self._put_us(event_id, event_us, fingerprint, event_time)
        return event_us

    def _put_us(self, event_id: str, event_us: int, fingerprint: int,
                event_time: datetime | None = None) -> None:
        self._seen[event_id] = event_us << _FINGERPRINT_BITS | fingerprint
        minute = event_us // _MINUTE_US
        ids = self._minutes.get(minute)
        if ids is None:
            ids = self._minutes[minute] = []
            heapq.heappush(self._minute_heap, minute)
        ids.append(event_id)
        if self._newest_us is None or event_us > self._newest_us:
            self._newest_us = event_us
            self._horizon_us = event_us - self._window_us
            # Without the datetime (a restore), ``horizon`` builds it when asked.
            self._horizon = event_time - self.window if event_time is not None else None
            if self._older is not None:
                self._memory_horizon_us = event_us - self._memory_span_us
        # An entry behind the memory span (the newest moved on, or an event out of order)
        # moves out at once, with its whole minute.
        memory_horizon_us = self._memory_horizon_us
        if memory_horizon_us is not None \
                and (self._minute_heap[0] + 1) * _MINUTE_US <= memory_horizon_us:
            self._move_older(memory_horizon_us)

    def _move_older(self, memory_horizon_us: int) -> None:
        """Move the minutes wholly behind the memory span to ``older`` (also during a
        restore, so memory never holds more than the span)."""
        older = self._older
        assert older is not None
        heap, seen = self._minute_heap, self._seen
        moving: list[tuple[str, int, bytes]] = []
        oldest_us: int | None = None
        while heap and (heap[0] + 1) * _MINUTE_US <= memory_horizon_us:
            for event_id in self._minutes.pop(heapq.heappop(heap)):
                packed = seen.get(event_id)
                # Skip ids removed since, or put again with a newer time.
                if packed is not None and packed >> _FINGERPRINT_BITS < memory_horizon_us:
                    del seen[event_id]  # (``recent`` keeps it: the changelog must write it)
                    event_us = packed >> _FINGERPRINT_BITS
                    if oldest_us is None or event_us < oldest_us:
                        oldest_us = event_us
                    moving.append((event_id, event_us,
                                   (packed & _FINGERPRINT_MASK).to_bytes(32, "big")))
        if moving:
            older.add(moving)
            self._older_held = True
            assert oldest_us is not None
            # An entry behind what ``older`` has already expired (put after a record, or
            # recorded late): expire ``older`` again at the next ``_expire``, as memory would.
            self._older_expired_minute = min(self._older_expired_minute,
                                             oldest_us // _MINUTE_US)

    def _find_older(self, event_id: str) -> int | None:
        """An id's entry in ``older``, packed as in memory (None when not there)."""
        older = self._older
        if older is None:
            return None
        found = older.find(event_id)
        if found is None:
            return None
        return found[0] << _FINGERPRINT_BITS | int.from_bytes(found[1], "big")

    def _expire_older(self, horizon_us: int) -> list[str]:
        """Drop from ``older`` what the horizon has passed, a minute at a time."""
        older = self._older
        minute = horizon_us // _MINUTE_US
        if older is None or not self._older_held or minute <= self._older_expired_minute:
            return []
        self._older_expired_minute = minute
        seen, recent = self._seen, self._recent
        expired = []
        for event_id, _ in older.expire(minute * _MINUTE_US):
            if event_id not in seen:  # else held in memory with a newer time: not expired
                recent.pop(event_id, None)  # as for an id expired from memory
                expired.append(event_id)
        return expired

    def _expire(self) -> list[str]:
        horizon_us = self._horizon_us
        expired: list[str] = []
        if self._older_held and horizon_us is not None:
            expired = self._expire_older(horizon_us)
        heap = self._minute_heap
        if horizon_us is None or not heap or (heap[0] + 1) * _MINUTE_US > horizon_us:
            return expired  # the usual case: no whole minute has left the window
        # Whole minutes only, by an id's current event time (as ``older`` expires): an id
        # put again in a later minute goes with that minute, not with its first one.
        cutoff_us = horizon_us // _MINUTE_US * _MINUTE_US
        while heap and (heap[0] + 1) * _MINUTE_US <= horizon_us:
            for event_id in self._minutes.pop(heapq.heappop(heap)):
                packed = self._seen.get(event_id)
                # Skip ids removed since, or put again with a newer time.
                if packed is not None and packed >> _FINGERPRINT_BITS < cutoff_us:
                    del self._seen[event_id]
                    self._recent.pop(event_id, None)
                    expired.append(event_id)
        return expired


_FINGERPRINT_BITS = 256
_FINGERPRINT_MASK = (1 << _FINGERPRINT_BITS) - 1
_MINUTE_US = 60_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _micros(span: timedelta) -> int:
    return (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds


def micros_since_epoch(moment: datetime) -> int:
    """Exact (no float): microseconds from the epoch to an aware datetime."""
    return _micros(moment - _EPOCH)


def _strict_fingerprint_int(fingerprint: str) -> int:
    """``_fingerprint_int`` for a fingerprint from outside (a changelog): hex digits only."""
    if not _HEX_DIGITS.issuperset(fingerprint):
        raise ValueError(f"not a SHA-256 hex digest: {fingerprint!r}")
    return _fingerprint_int(fingerprint)


def _fingerprint_int(fingerprint: str) -> int:
    """A SHA-256 hex digest (64 hex digits) as an int; ValueError for most anything else
    (``put`` also refuses the rest: signs, spaces, underscores, a 0x prefix)."""
    if len(fingerprint) != 64:
        raise ValueError(f"not a SHA-256 hex digest: {fingerprint!r}")
    return int(fingerprint, 16)
