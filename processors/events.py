"""The usage event as the domain sees it (decoded, typed, validated).

Mirrors ``schemas/usage_event.avsc``; ``stream/`` converts between the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from processors.errors import EventRejected, ReasonCode

AttributeValue = Decimal | str


# UsageEvent and RatedUsage are not frozen, unlike most records: they are built for
# every event (UsageEvent twice: by the router and by the rater), and a frozen slotted
# dataclass costs about seven times as much to build (object.__setattr__ per field).
# The same goes for the per-event results EventOutcome, StateChange, QuotaDecision and
# QuotaChange. Treat them as immutable all the same: nothing changes one after it is
# built (use dataclasses.replace). These two were not hashable before either (mapping
# fields); records that are kept in state or used as keys stay frozen.
@dataclass(slots=True)
class UsageEvent:
    event_id: str
    event_time: datetime  # timezone-aware, UTC
    service_item_type: str
    service_item_id: str
    operation: str
    attributes: Mapping[str, AttributeValue]
    requester: str
    home_ou: str
    source: str
    account_id: str | None = None
    provider: str | None = None
    product: str | None = None

    def number(self, name: str) -> Decimal:
        """The numeric attribute ``name``; a clear rejection when absent or text."""
        value = self.attributes.get(name)
        if value is None:
            raise EventRejected(
                ReasonCode.BAD_ATTRIBUTE,
                f"event {self.event_id}: attribute {name!r} is missing",
                {"attribute": name},
            )
        if not isinstance(value, Decimal):
            raise EventRejected(
                ReasonCode.BAD_ATTRIBUTE,
                f"event {self.event_id}: attribute {name!r} must be a number, got text {value!r}",
                {"attribute": name},
            )
        return value

    def text(self, name: str) -> str | None:
        value = self.attributes.get(name)
        return None if value is None else str(value)


def parse_number(raw: str, *, event_id: str, attribute: str) -> Decimal:
    """A finite Decimal from a wire string, or a rejection naming the attribute."""
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise EventRejected(
            ReasonCode.INVALID_EVENT,
            f"event {event_id}: attribute {attribute!r} is not a decimal number: {raw!r}",
            {"attribute": attribute},
        ) from None
    if not value.is_finite():
        raise EventRejected(
            ReasonCode.INVALID_EVENT,
            f"event {event_id}: attribute {attribute!r} is not finite: {raw!r}",
            {"attribute": attribute},
        )
    return value


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an event was read from; carried onto every output for audit."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class TierCharge:
    tier_from: Decimal
    tier_to: Decimal | None
    quantity: Decimal
    rate: Decimal
    amount: Decimal


@dataclass(slots=True)  # not frozen: see UsageEvent
class RatedUsage:
    """One priced billable operation: the billing-history record.

    Mirrors ``schemas/rated_usage.avsc``. Every amount is explainable from
    the rate group, table, rate code, tiers, markup and credit fields.
    """

    event: UsageEvent
    rated_at: datetime
    account_id: str
    account_kind: str  # "tenant" | "project"
    billing_period: str  # YYYY-MM
    fiscal_period: str
    rate_group: str
    rate_table: str
    rate_code: str
    unit_of_measure: str
    pricing: str  # "flat" | "unit" | "graduated" | "volume"
    rate: Decimal
    quantity: Decimal
    currency: str
    net_amount: Decimal
    markup_rate: Decimal
    markup_amount: Decimal
    gross_amount: Decimal
    credit_applied: Decimal
    credit_remaining: Decimal
    charged_amount: Decimal
    catalog_version: str
    origin: Origin
    tiers: tuple[TierCharge, ...] = ()
    minimum_charge_applied: bool = False
    memo: Mapping[str, str] = field(default_factory=dict)
    quota_note: str | None = None  # NO_AGREEMENT / NO_QUOTA when allowed by policy
