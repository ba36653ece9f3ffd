"""What quota remembers between events, for one partition of the account-keyed topic.

Two kinds of entry, persisted like ``processors/state.py`` (same protocol:
``dirty_keys`` / ``dump`` / ``load`` / ``clear_dirty`` / ``all_keys``):

- ``qi|<account>|<service item type>|<service item id>`` -> the live
  instance's holdings: ``{"holds": [{"agreement", "quota", "amount"}]}``; or, for an
  instance the account does not hold, ``{"at": <µs>, "gone": "blocked"}``: its create
  was refused (``blocked``), it was deleted (``released``) or both (``withdrawn``), and
  the event time of its latest event (of its delete, for ``released`` and
  ``withdrawn``; ``model.Gone``).
  Such an entry is kept while that time is within the dedup window, then deleted: an
  event older than the window is late, so it can never need the entry. (One key per
  instance: a delete writes one record, the instance's new value, not a tombstone and
  a second entry.)
- ``qu|<account>|<agreement>|<quota id>`` -> ``{"used": "12", "fired": [80]}``:
  the used amount and the thresholds alerted and not yet re-armed;

Values are compact JSON with decimals as strings; ``None`` is a tombstone
(a released instance, or a quota back at zero with nothing fired).
"""

from __future__ import annotations

import heapq
import json
from datetime import datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _json  # what json.dumps escapes with

from processors.dedup import DedupWindow
from processors.errors import RatingError
from processors.quota.model import (
    BLOCKED,
    INSTANCE,
    RELEASED,
    USAGE,
    WITHDRAWN,
    Gone,
    Holding,
    Instance,
    InstanceKey,
    LastAlert,
    QuotaDecision,
    QuotaUsage,
    UsageKey,
)

UNUSED = QuotaUsage(Decimal(0), frozenset())


class QuotaStateError(RatingError):
    """A changelog entry this version cannot read."""


class QuotaState:
    """``dedup``: the partition's dedup window, whose horizon bounds how long blocked and
    deleted instances are remembered (without one, they are kept for good)."""

    def __init__(self, dedup: DedupWindow | None = None) -> None:
        self._instances: dict[InstanceKey, Instance] = {}
        self._usage: dict[UsageKey, QuotaUsage] = {}
        self._gone: dict[InstanceKey, Gone] = {}
        self._gone_heap: list[tuple[int, InstanceKey]] = []  # (at_us, key), oldest first
        # The item types of the instances ever remembered here: only operations of these
        # need a look at _gone (a few names; an expired type costs one set lookup).
        self._gone_types: set[str] = set()
        self._dedup = dedup
        self._dirty: set[str] = set()

    # -- reading ----------------------------------------------------------
    def instance(self, key: InstanceKey) -> Instance | None:
        return self._instances.get(key)

    def usage(self, key: UsageKey) -> QuotaUsage:
        return self._usage.get(key, UNUSED)

    def gone(self, key: InstanceKey) -> Gone | None:
        """What became of an instance not held, if its latest event is within the window."""
        gone = self._gone.get(key)
        if gone is None:
            return None
        horizon_us = None if self._dedup is None else self._dedup.horizon_us
        return None if horizon_us is not None and gone.at_us < horizon_us else gone

    def remembers_gone(self, service_item_type: str) -> bool:
        """Cheap test before looking an instance up: may an instance of this item type be
        remembered? (False: none is; True: look it up.)"""
        return service_item_type in self._gone_types

    def gone_instances(self) -> dict[InstanceKey, Gone]:
        return dict(self._gone)

    def instances(self) -> dict[InstanceKey, Instance]:
        return dict(self._instances)

    def usages(self) -> dict[UsageKey, QuotaUsage]:
        return dict(self._usage)

    # -- changing ---------------------------------------------------------
    def apply(self, decision: QuotaDecision) -> None:
        """Record an allowed decision; of a rejected one, only what it says of an instance
        not held (a blocked create is remembered, ``QuotaChange.gone``)."""
        change = decision.change
        if change is None:
            return
        if change.gone is not None:
            self._set_gone(*change.gone)
        if not decision.allowed:
            return
        if change.instance is not None:
            key, instance = change.instance
            if instance is None:
                self._instances.pop(key, None)
            else:
                self._instances[key] = instance
            self._dirty.add(key.encode())
        for usage_key, usage in change.usage:
            if usage.used == UNUSED.used and usage.fired == UNUSED.fired:
                # Back at zero with nothing armed: the entry (and its last alert) goes.
                self._usage.pop(usage_key, None)
            else:
                self._usage[usage_key] = usage
            self._dirty.add(usage_key.encode())

    def _set_gone(self, key: InstanceKey, gone: Gone | None) -> None:
        if gone is None:
            if self._gone.pop(key, None) is None:
                return
        else:
            self._gone[key] = gone
            self._gone_types.add(key.service_item_type)
            heapq.heappush(self._gone_heap, (gone.at_us, key))
        self._dirty.add(key.encode())

    def expire(self) -> None:
        """Forget the blocked and deleted instances whose latest event has left the dedup
        window (deleted from the changelog with the batch). Call after each event."""
        heap = self._gone_heap
        horizon_us = None if self._dedup is None else self._dedup.horizon_us
        if not heap or horizon_us is None or heap[0][0] >= horizon_us:
            return  # the usual case
        while heap and heap[0][0] < horizon_us:
            at_us, key = heapq.heappop(heap)
            gone = self._gone.get(key)
            if gone is not None and gone.at_us == at_us:  # else a later event refreshed it
                del self._gone[key]
                self._dirty.add(key.encode())

    # -- persistence ------------------------------------------------------
    def all_keys(self) -> set[str]:
        return ({key.encode() for key in self._instances} | {key.encode() for key in self._usage}
                | {key.encode() for key in self._gone})

    def dirty_keys(self) -> set[str]:
        return set(self._dirty)

    def clear_dirty(self) -> None:
        self._dirty.clear()

    def dump(self, key: str) -> bytes | None:
        """The value to write for ``key``; None when it no longer exists (a tombstone)."""
        parsed = _parse_key(key)
        if isinstance(parsed, InstanceKey):
            instance = self._instances.get(parsed)
            if instance is not None:
                return _instance_json(instance).encode()
            gone = self._gone.get(parsed)
            return None if gone is None else _gone_json(gone).encode()
        usage = self._usage.get(parsed)
        return None if usage is None else _usage_json(usage).encode()

    def load(self, key: str, value: bytes | None) -> None:
        """Restore one changelog entry (None deletes). Does not mark anything dirty."""
        parsed = _parse_key(key)
        try:
            decoded = None if value is None else json.loads(value)
            if isinstance(parsed, InstanceKey):
                self._instances.pop(parsed, None)
                self._gone.pop(parsed, None)
                if decoded is not None and "gone" in decoded:
                    gone = _gone(decoded)
                    self._gone[parsed] = gone
                    self._gone_types.add(parsed.service_item_type)
                    heapq.heappush(self._gone_heap, (gone.at_us, parsed))
                elif decoded is not None:
                    holds = tuple(_holding(item) for item in decoded["holds"])
                    self._instances[parsed] = Instance(holds)
            elif decoded is None:
                self._usage.pop(parsed, None)
            else:
                fired = frozenset(int(p) for p in decoded["fired"])
                self._usage[parsed] = QuotaUsage(Decimal(str(decoded["used"])), fired,
                                                 _last_alert(decoded.get("last_alert")))
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise QuotaStateError(f"quota state entry {key!r} is unreadable: {exc!r}") from None


# The two values below are ``json.dumps(value, separators=(",", ":"), sort_keys=True)`` of
# ``_instance_value`` / ``_usage_value``, written out directly (the same bytes, cheaper).
def _instance_json(instance: Instance) -> str:
    holds = ",".join(f'{{"agreement":{_json(h.agreement)},"amount":{_json(str(h.amount))},'
                     f'"quota":{_json(h.quota)}}}' for h in instance.holdings)
    return f'{{"holds":[{holds}]}}'


def _gone_json(gone: Gone) -> str:
    return f'{{"at":{gone.at_us},"gone":{_json(gone.kind)}}}'


def _gone(decoded: dict[str, object]) -> Gone:
    kind, at_us = decoded["gone"], decoded["at"]
    if (kind not in (BLOCKED, RELEASED, WITHDRAWN) or not isinstance(at_us, int)
            or isinstance(at_us, bool)):
        raise ValueError(f"expected gone 'blocked', 'released' or 'withdrawn' and an "
                         f"integer at, got {decoded!r}")
    return Gone(str(kind), at_us)


def _usage_json(usage: QuotaUsage) -> str:
    fired = ",".join(str(percent) for percent in sorted(usage.fired))
    last = ""
    if usage.last_alert is not None:
        alert = usage.last_alert
        last = (f'"last_alert":{{"action":{_json(alert.action)},'
                f'"event_id":{_json(alert.event_id)},"percent":{int(alert.percent)},'
                f'"raised_at":{_json(alert.raised_at.isoformat())}}},')
    return f'{{"fired":[{fired}],{last}"used":{_json(str(usage.used))}}}'


def _instance_value(instance: Instance) -> dict[str, object]:
    return {"holds": [_holding_value(h) for h in instance.holdings]}


def _usage_value(usage: QuotaUsage) -> dict[str, object]:
    value: dict[str, object] = {"used": str(usage.used), "fired": sorted(usage.fired)}
    if usage.last_alert is not None:
        alert = usage.last_alert
        value["last_alert"] = {"percent": alert.percent, "action": alert.action,
                               "raised_at": alert.raised_at.isoformat(),
                               "event_id": alert.event_id}
    return value


def _last_alert(raw: object) -> LastAlert | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TypeError(f"last_alert must be an object, got {raw!r}")
    return LastAlert(int(raw["percent"]), str(raw["action"]),
                     datetime.fromisoformat(str(raw["raised_at"])), str(raw["event_id"]))


def _holding_value(holding: Holding) -> dict[str, str]:
    return {"agreement": holding.agreement, "quota": holding.quota, "amount": str(holding.amount)}


def _holding(item: dict[str, str]) -> Holding:
    return Holding(str(item["agreement"]), str(item["quota"]), Decimal(str(item["amount"])))


def _parse_key(key: str) -> InstanceKey | UsageKey:
    kind, _, rest = key.partition("|")
    if kind == INSTANCE:
        parts = rest.split("|", 2)  # the item id comes last and may contain "|"
        if len(parts) == 3:
            return InstanceKey(*parts)
    elif kind == USAGE:
        parts = rest.split("|")
        if len(parts) == 3:
            return UsageKey(*parts)
    raise QuotaStateError(f"unknown or malformed quota state key {key!r}")
