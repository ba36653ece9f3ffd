"""What travels on the subscriptions topic, as the domain sees it.

Mirrors ``schemas/subscription_event.avsc``; ``stream/licence_codec.py``
converts between the two. Two kinds of record share the topic so that one
customer's licence changes and the billing runs that read them are ordered
in the same partition: licence changes (keyed by campus) and billing-run
requests (one copy per partition, published by ``rating billing-run``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum


class LicenceAction(StrEnum):
    PROVISIONED = "LICENCE_PROVISIONED"
    DEPROVISIONED = "LICENCE_DEPROVISIONED"
    TRANSFERRED = "LICENCE_TRANSFERRED"


@dataclass(frozen=True, slots=True)
class LicenceEvent:
    """A licence record provisioned to a user, taken away, or transferred to another user.

    ``effective_date`` is the provisioning date for PROVISIONED, the date the
    new holder got the licence for TRANSFERRED, the last day for DEPROVISIONED.
    """

    event_id: str
    action: LicenceAction
    event_time: datetime  # when it was published (UTC); dates that bill are effective_date
    source: str
    campus: str
    record_number: str
    user: str
    product: str
    effective_date: date
    previous_user: str | None = None  # TRANSFERRED: who held the licence before
    billing_target: str | None = None  # when given, must be the campus's one target
    unit_billing_target: str | None = None  # the user's unit speedtype, shown on invoices


@dataclass(frozen=True, slots=True)
class BillingRunRequest:
    """Bill ``run`` (a run of the catalog's licence_billing) for fiscal year ``fiscal_year``."""

    request_id: str
    fiscal_year: int
    run: str
    event_time: datetime
    source: str


SubscriptionRecord = LicenceEvent | BillingRunRequest


@dataclass(frozen=True, slots=True)
class Licence:
    """One licence record of a campus as the state holds it.

    ``provisioned_on`` is when the licence itself started (a transfer to a new
    holder keeps it); ``from_transfer`` is True when the record came into
    being through a transfer, which makes it never net new. ``ended_on`` is
    set once deprovisioned (kept, so a repeated deprovisioning is recognised).
    """

    campus: str
    record_number: str
    user: str
    product: str
    provisioned_on: date
    holder_since: date
    from_transfer: bool
    last_event_id: str
    previous_user: str | None = None
    unit_billing_target: str | None = None
    ended_on: date | None = None

    @property
    def active(self) -> bool:
        """Not deprovisioned (even with a date still to come): the record's state."""
        return self.ended_on is None

    def active_on(self, day: date) -> bool:
        """Held on ``day``: a deprovisioning dated after it has not happened yet then."""
        return self.ended_on is None or self.ended_on > day

    @property
    def transferred(self) -> bool:
        """Came from a transfer, or changed holder by one."""
        return self.from_transfer or self.previous_user is not None


@dataclass(frozen=True, slots=True)
class PaidMark:
    """Licence ``record_number`` of ``campus`` is paid for fiscal year ``fiscal_year``."""

    fiscal_year: int
    campus: str
    record_number: str
    run: str
    event_id: str
