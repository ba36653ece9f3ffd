"""The usage event as the domain sees it (decoded, typed, validated).

Mirrors ``schemas/usage_event.avsc``; ``stream/`` converts between the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from processors.errors import EventRejected, ReasonCode
from processors.money import MAX_FRACTION_DIGITS, MAX_INTEGER_DIGITS, too_fine, too_large

AttributeValue = Decimal | str


# UsageEvent and RatedUsage are not frozen, unlike most records: they are built for
# every event (UsageEvent twice: by the router and by the rater), and a frozen slotted
# dataclass costs about seven times as much to build (object.__setattr__ per field).
# The same goes for the per-event results EventOutcome, StateChange, QuotaDecision and
# QuotaChange. Treat them as immutable all the same: nothing changes one after it is
# built (use dataclasses.replace). These two were not hashable before either (mapping
# fields); records that are kept in state or used as keys stay frozen.
#
# They also write their own ``__init__`` (``init=False``): mypyc compiles that one to C,
# while the ``__init__`` @dataclass generates is interpreted Python called through a
# keyword dict, about ten times the cost of building the record (0.5 against 0.05 µs for
# three fields, measured). @dataclass still gives them ``__eq__``, ``__repr__``,
# ``fields`` and ``replace``; tests/unit/stream/test_compiled.py checks that the
# compiled build keeps these constructors native.
@dataclass(slots=True, init=False)
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
    account_id: str | None
    provider: str | None
    product: str | None

    def __init__(self, event_id: str, event_time: datetime, service_item_type: str,
                 service_item_id: str, operation: str,
                 attributes: Mapping[str, AttributeValue], requester: str, home_ou: str,
                 source: str, account_id: str | None = None, provider: str | None = None,
                 product: str | None = None) -> None:
        self.event_id = event_id
        self.event_time = event_time
        self.service_item_type = service_item_type
        self.service_item_id = service_item_id
        self.operation = operation
        self.attributes = attributes
        self.requester = requester
        self.home_ou = home_ou
        self.source = source
        self.account_id = account_id
        self.provider = provider
        self.product = product

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


def utc(moment: datetime) -> datetime:
    """An aware ``moment`` in UTC (itself when it already is)."""
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def iso_text(moment: datetime) -> str:
    """``moment.isoformat()``, written out for UTC times of years 1000 to 9999.

    ``isoformat`` of an aware datetime asks the tzinfo for its offset and formats
    through ``PyUnicode_FromFormat``: about 2.3 µs, twice per rated event (payload
    fingerprint, changelog entry). This is about 1 µs. Any other time goes to
    ``isoformat`` itself; tests/unit/processors/test_fast_paths.py compares the two.
    """
    year = moment.year
    if moment.tzinfo is not UTC or year < 1000:
        return moment.isoformat()
    micros = moment.microsecond
    fraction = "" if micros == 0 else "." + str(1_000_000 + micros)[1:]
    return (f"{year}-{_TWO_DIGITS[moment.month]}-{_TWO_DIGITS[moment.day]}"
            f"T{_TWO_DIGITS[moment.hour]}:{_TWO_DIGITS[moment.minute]}:"
            f"{_TWO_DIGITS[moment.second]}{fraction}+00:00")


_TWO_DIGITS = [f"{n:02d}" for n in range(100)]


def parse_number(raw: str, *, event_id: str, attribute: str) -> Decimal:
    """A finite Decimal from a wire string, or a rejection naming the attribute."""
    try:
        value: Decimal | None = Decimal(raw)
    except InvalidOperation:
        value = None
    problem = _number_problem(value, raw)
    if problem is not None or value is None:
        raise EventRejected(ReasonCode.INVALID_EVENT,
                            f"event {event_id}: attribute {attribute!r} {problem}",
                            {"attribute": attribute})
    if value.is_zero() and value.is_signed():
        return value.copy_abs()  # "-0" is 0: no minus sign on a record
    return value


def _number_problem(value: Decimal | None, raw: str) -> str | None:
    """What is wrong with a number attribute, as the end of a sentence; None if nothing."""
    if value is None:
        return f"is not a decimal number: {raw!r}"
    if not value.is_finite():
        return f"is not finite: {raw!r}"
    if too_large(value):
        return (f"is out of range: {raw!r} (at most {MAX_INTEGER_DIGITS} digits before the "
                "decimal point)")
    if too_fine(value):
        return (f"is out of range: {raw!r} (at most {MAX_FRACTION_DIGITS} digits after the "
                "decimal point)")
    return None


@dataclass(slots=True, init=False)  # one per event: not frozen, own __init__, see above
class Origin:
    """Where an event was read from; carried onto every output for audit."""

    topic: str
    partition: int
    offset: int

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset


@dataclass(slots=True, init=False)  # part of RatedUsage: not frozen, own __init__, see above
class TierCharge:
    tier_from: Decimal
    tier_to: Decimal | None
    quantity: Decimal
    rate: Decimal
    amount: Decimal

    def __init__(self, tier_from: Decimal, tier_to: Decimal | None, quantity: Decimal,
                 rate: Decimal, amount: Decimal) -> None:
        self.tier_from = tier_from
        self.tier_to = tier_to
        self.quantity = quantity
        self.rate = rate
        self.amount = amount


@dataclass(slots=True, init=False)  # not frozen, own __init__: see UsageEvent
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
    tiers: tuple[TierCharge, ...]
    minimum_charge_applied: bool
    memo: Mapping[str, str]
    quota_note: str | None  # NO_AGREEMENT / NO_QUOTA when allowed by policy

    def __init__(self, event: UsageEvent, rated_at: datetime, account_id: str,
                 account_kind: str, billing_period: str, fiscal_period: str, rate_group: str,
                 rate_table: str, rate_code: str, unit_of_measure: str, pricing: str,
                 rate: Decimal, quantity: Decimal, currency: str, net_amount: Decimal,
                 markup_rate: Decimal, markup_amount: Decimal, gross_amount: Decimal,
                 credit_applied: Decimal, credit_remaining: Decimal, charged_amount: Decimal,
                 catalog_version: str, origin: Origin, tiers: tuple[TierCharge, ...] = (),
                 minimum_charge_applied: bool = False, memo: Mapping[str, str] | None = None,
                 quota_note: str | None = None) -> None:
        self.event = event
        self.rated_at = rated_at
        self.account_id = account_id
        self.account_kind = account_kind
        self.billing_period = billing_period
        self.fiscal_period = fiscal_period
        self.rate_group = rate_group
        self.rate_table = rate_table
        self.rate_code = rate_code
        self.unit_of_measure = unit_of_measure
        self.pricing = pricing
        self.rate = rate
        self.quantity = quantity
        self.currency = currency
        self.net_amount = net_amount
        self.markup_rate = markup_rate
        self.markup_amount = markup_amount
        self.gross_amount = gross_amount
        self.credit_applied = credit_applied
        self.credit_remaining = credit_remaining
        self.charged_amount = charged_amount
        self.catalog_version = catalog_version
        self.origin = origin
        self.tiers = tiers
        self.minimum_charge_applied = minimum_charge_applied
        self.memo = {} if memo is None else memo
        self.quota_note = quota_note
