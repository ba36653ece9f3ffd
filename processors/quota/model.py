"""What a quota decision is made of: instances held, usage per quota, alerts.

Mirrors ``schemas/quota_alert.avsc`` for alerts; ``stream/`` converts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from processors.errors import EventRejected, ReasonCode

INSTANCE = "qi"  # qi|<account>|<service item type>|<service item id>
USAGE = "qu"  # qu|<account>|<agreement>|<quota id>
# What became of an instance the account does not hold (see Gone).
BLOCKED = "blocked"  # its create was refused by quota
RELEASED = "released"  # it was deleted
WITHDRAWN = "withdrawn"  # its create was refused by quota, then it was deleted


class UnknownInstances(StrEnum):
    """What to do with a resize or delete of an instance the account neither holds nor
    remembers as blocked or deleted (setting ``processor.unknown_instances``)."""

    # Refuse it (UNKNOWN_INSTANCE, usage.rejected, not billed). The default: the same
    # instance's events may name different accounts (another requester's home OU, a
    # project account on some events only), and an instance adopted by one account is
    # never released by a delete billed to another.
    REJECT = "reject"
    # Bill it: a resize adopts the instance (counted, blocked like a create when it does
    # not fit), a delete gives nothing back; quota_note UNKNOWN_INSTANCE. For instances
    # older than quota tracking, where each instance's events name one account.
    ADOPT = "adopt"


# Keys are NamedTuples, not dataclasses: dict keys on the per-event path hash and compare
# in C (see processors/state.py). Immutable and ordered alike.
class InstanceKey(NamedTuple):
    account: str
    service_item_type: str
    service_item_id: str  # last: it is the only part that may contain "|"

    def encode(self) -> str:
        return "|".join((INSTANCE, self.account, self.service_item_type, self.service_item_id))


class Gone(NamedTuple):
    """An instance the account does not hold, remembered for the dedup window after its
    last event (its delete, for RELEASED and WITHDRAWN): its create was refused by quota
    (BLOCKED), it was deleted (RELEASED), or both (WITHDRAWN).

    This is what tells a resize of an instance quota has never seen (it predates quota
    tracking: refused or adopted, by setting) from one of a blocked or deleted instance
    (refused), also when the resize is replayed after the delete.
    """

    kind: str  # BLOCKED | RELEASED | WITHDRAWN
    at_us: int  # the event time of its latest event (delete), µs since the epoch


class UsageKey(NamedTuple):
    account: str
    agreement: str
    quota: str  # e.g. VirtualMachine:count, VirtualMachine:sum:vcpu

    def encode(self) -> str:
        return "|".join((USAGE, self.account, self.agreement, self.quota))


@dataclass(frozen=True, slots=True, order=True)
class Holding:
    """What one instance counts against one quota of one agreement."""

    agreement: str
    quota: str
    amount: Decimal

    @property
    def attribute(self) -> str | None:
        """The summed attribute (``VM:sum:vcpu`` -> ``vcpu``); None for a count."""
        parts = self.quota.split(":")
        return parts[2] if len(parts) == 3 else None


@dataclass(frozen=True, slots=True)
class Instance:
    """A live service item instance and everything it holds, released on delete.

    Holdings are recorded when the instance is created, so a later catalog
    change cannot make a delete give back something that was never taken.
    """

    holdings: tuple[Holding, ...]


@dataclass(frozen=True, slots=True)
class LastAlert:
    """The most recent alert of a quota: what the quota status view shows."""

    percent: int
    action: str
    raised_at: datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    used: Decimal
    fired: frozenset[int]  # threshold percents reached and alerted, not yet re-armed
    last_alert: LastAlert | None = None


@dataclass(frozen=True, slots=True)
class QuotaAlert:
    """One upward crossing of a quota-policy threshold (``quota_alert.avsc``)."""

    alert_id: str
    account_id: str
    agreement_id: str
    quota_id: str
    threshold_percent: int
    action: str  # notify | block
    used: Decimal
    limit: Decimal
    event_id: str
    event_time: datetime
    raised_at: datetime


@dataclass(slots=True, init=False)  # one per event: see processors/events.py
class QuotaChange:
    """Absolute new values, computed before anything is applied.

    ``gone`` is also applied for a refused decision: a blocked create is remembered."""

    instance: tuple[InstanceKey, Instance | None] | None  # None instance: released
    usage: tuple[tuple[UsageKey, QuotaUsage], ...]
    gone: tuple[InstanceKey, Gone | None] | None  # None Gone: forgotten (held again)

    def __init__(self, instance: tuple[InstanceKey, Instance | None] | None,
                 usage: tuple[tuple[UsageKey, QuotaUsage], ...],
                 gone: tuple[InstanceKey, Gone | None] | None = None) -> None:
        self.instance = instance
        self.usage = usage
        self.gone = gone


@dataclass(slots=True, init=False)  # one per event: see processors/events.py
class QuotaDecision:
    """May the event proceed, what it raises, and what it changes once accepted.

    ``missing`` is NO_AGREEMENT or NO_QUOTA when the event was allowed by an
    ``allow`` policy in spite of it, else UNKNOWN_INSTANCE when it was a resize or delete
    of an instance quota has not seen, or RELEASED_INSTANCE when it was a create older
    than the instance's delete: put it on the record.
    """

    event_id: str
    account_id: str
    allowed: bool
    alerts: tuple[QuotaAlert, ...]
    rejection: EventRejected | None
    change: QuotaChange | None
    missing: ReasonCode | None

    def __init__(self, event_id: str, account_id: str, allowed: bool,
                 alerts: tuple[QuotaAlert, ...] = (), rejection: EventRejected | None = None,
                 change: QuotaChange | None = None, missing: ReasonCode | None = None) -> None:
        self.event_id = event_id
        self.account_id = account_id
        self.allowed = allowed
        self.alerts = alerts
        self.rejection = rejection
        self.change = change
        self.missing = missing
