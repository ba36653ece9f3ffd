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

from processors.events import AttributeValue, UsageEvent

DEFAULT_WINDOW = timedelta(days=35)


class Verdict(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class SeenEvent:
    fingerprint: str
    event_time: datetime


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
        f'"event_time":{_json(event.event_time.astimezone(UTC).isoformat())},'
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


class DedupWindow:
    def __init__(self, window: timedelta = DEFAULT_WINDOW) -> None:
        self.window = window
        self._seen: dict[str, SeenEvent] = {}
        # (event time, id) of every entry, oldest first, for cheap expiry.
        # Entries replaced or removed since are skipped when popped.
        self._by_time: list[tuple[datetime, str]] = []
        self._newest: datetime | None = None
        self._horizon: datetime | None = None  # _newest - window, kept with _newest

    @property
    def horizon(self) -> datetime | None:
        """Events before this instant are late: their ids may have been forgotten."""
        return self._horizon

    def check(self, event_id: str, fingerprint: str) -> Verdict:
        seen = self._seen.get(event_id)
        if seen is None:
            return Verdict.NEW
        return Verdict.DUPLICATE if seen.fingerprint == fingerprint else Verdict.CONFLICT

    def record(self, event_id: str, fingerprint: str, event_time: datetime) -> list[str]:
        """Remember an event; returns the ids that fell out of the window as a result."""
        self.put(event_id, SeenEvent(fingerprint, event_time))
        return self._expire()

    def get(self, event_id: str) -> SeenEvent | None:
        return self._seen.get(event_id)

    def ids(self) -> list[str]:
        return list(self._seen)

    def put(self, event_id: str, seen: SeenEvent) -> None:
        """Store an entry as is (also how state is restored); does not expire others."""
        self._seen[event_id] = seen
        heapq.heappush(self._by_time, (seen.event_time, event_id))
        if self._newest is None or seen.event_time > self._newest:
            self._newest = seen.event_time
            self._horizon = seen.event_time - self.window

    def remove(self, event_id: str) -> None:
        self._seen.pop(event_id, None)

    def _expire(self) -> list[str]:
        horizon = self._horizon
        expired: list[str] = []
        if horizon is None or not self._by_time or self._by_time[0][0] >= horizon:
            return expired  # the usual case: nothing has left the window
        while self._by_time and self._by_time[0][0] < horizon:
            event_time, event_id = heapq.heappop(self._by_time)
            seen = self._seen.get(event_id)
            if seen is not None and seen.event_time == event_time:
                del self._seen[event_id]
                expired.append(event_id)
        return expired
