"""Rating one usage event: from the event and the catalog to a priced record.

``rate`` follows the billing operator's steps in order -- duplicate check,
billable operation, account, rate group of the fiscal period, rate table,
most specific row, quantity, pricing mode and tiers, minimum charge,
rounding, marketplace markup, usage credit -- and explains each step on the
record. It computes everything first and changes the state last, so an
event rejected at any step leaves the state exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from processors.accounts import ResolvedAccount
from processors.catalog import Account, Catalog, FiscalPeriod, Product, RateRow, RateTable
from processors.catalog.model import MARKETPLACE_FIELDS
from processors.catalog.pricing import Charge, charge
from processors.catalog.resolve import (
    billable_item,
    find_row,
    marketplace_product,
    memo,
    priced_quantity,
    rate_group_at,
)
from processors.dedup import Verdict, payload_fingerprint
from processors.errors import EventRejected, RatingError, ReasonCode
from processors.events import AttributeValue, Origin, RatedUsage, UsageEvent
from processors.lookups import PerCatalog, paying_account
from processors.money import ZERO, add, multiply, round_money, subtract
from processors.state import (
    AccumulationKey,
    CreditKey,
    RatingState,
    StateChange,
    billing_period,
)

NOT_BILLABLE = "not_billable"
DUPLICATE = "duplicate"
# Estimates are not read from a topic; their records say so.
ESTIMATE_ORIGIN = Origin(topic="", partition=-1, offset=-1)


# One per event: not frozen, own __init__ (see processors/events.py).
@dataclass(slots=True, init=False)
class Rated:
    record: RatedUsage

    def __init__(self, record: RatedUsage) -> None:
        self.record = record


@dataclass(slots=True, init=False)
class Skipped:
    reason: str  # NOT_BILLABLE or DUPLICATE

    def __init__(self, reason: str) -> None:
        self.reason = reason


RatingOutcome = Rated | Skipped


class NotBillableError(RatingError):
    """An estimate was asked for an operation that is never charged."""


def rate(
    event: UsageEvent,
    origin: Origin,
    catalog: Catalog,
    state: RatingState,
    rated_at: datetime,
    *,
    checked_fingerprint: str | None = None,
    quota_note: str | None = None,
    routed_account: str | None = None,
) -> RatingOutcome:
    """Rate ``event`` and record it in ``state``; raises ``EventRejected`` when it cannot.

    Callers park events for which ``state.is_late(event.event_time)`` holds
    instead of rating them: their id may have left the dedup window and their
    month's tiers and credit may have been dropped. A caller that has already
    checked the event against the dedup window passes its fingerprint as
    ``checked_fingerprint`` (the check is not repeated); ``quota_note`` goes on
    the record; ``routed_account`` is the account the router keyed the event by
    (``processors.lookups.paying_account``).
    """
    fingerprint = checked_fingerprint
    if fingerprint is None:
        fingerprint = payload_fingerprint(event)
        verdict = state.dedup.check(event.event_id, fingerprint)
        if verdict is Verdict.DUPLICATE:
            return Skipped(DUPLICATE)
        if verdict is Verdict.CONFLICT:
            raise EventRejected(
                ReasonCode.DUPLICATE_CONFLICT,
                f"event {event.event_id}: this id was already rated with a different payload",
                {"event_id": event.event_id},
            )
    try:
        priced = _price(event, catalog, state, routed_account)
        if priced is None:
            return Skipped(NOT_BILLABLE)
        record = priced.record(origin, rated_at, catalog.version, quota_note)
    except ArithmeticError as error:  # see processors/money.py
        raise inexact(event, error) from None
    # The only write, after every step that can reject has passed.
    state.apply(priced.change(fingerprint))
    return Rated(record)


def inexact(event: UsageEvent, error: ArithmeticError) -> EventRejected:
    """The rejection of an event whose amounts cannot be computed exactly: Decimal
    arithmetic beyond ``processors.money``'s precision is an error, never rounded."""
    return EventRejected(
        ReasonCode.BAD_ATTRIBUTE,
        f"event {event.event_id}: an amount for its quantities cannot be computed exactly "
        f"({type(error).__name__}: a quantity or rate out of range)",
        {"event_id": event.event_id},
    )


def estimate(event: UsageEvent, catalog: Catalog, state: RatingState, at: datetime) -> RatedUsage:
    """What ``event`` would cost now, given the account's tiers and credit so far.

    The same engine as ``rate``; reads ``state`` but never changes it, and does
    not check for duplicates. ``at`` is the record's ``rated_at``; the event's
    own time chooses the period, rate group and billing month.
    """
    try:
        priced = _price(event, catalog, state, None)
        if priced is None:
            raise NotBillableError(f"event {event.event_id}: {event.service_item_type} "
                                   f"{event.operation} is not billable")
        return priced.record(ESTIMATE_ORIGIN, at, catalog.version)
    except ArithmeticError as error:  # see processors/money.py
        raise inexact(event, error) from None


# The private records below are built for every event: plain classes with their own
# __init__, which mypyc compiles (see processors/events.py).
class _Located:
    """Where the catalog prices the event: account, group, table, row, product."""

    def __init__(self, account: ResolvedAccount, fiscal_period: str, rate_group: str,
                 table: RateTable, row: RateRow, product: Product | None) -> None:
        self.account = account
        self.fiscal_period = fiscal_period
        self.rate_group = rate_group
        self.table = table
        self.row = row
        self.product = product


class _Credit:
    def __init__(self, applied: Decimal, remaining: Decimal,
                 used_after: tuple[CreditKey, Decimal] | None) -> None:
        self.applied = applied
        self.remaining = remaining
        self.used_after = used_after  # None: nothing drawn, nothing to write


class _Priced:
    def __init__(self, event: UsageEvent, where: _Located, charge: Charge, net: Decimal,
                 minimum_applied: bool, markup_rate: Decimal, markup: Decimal, gross: Decimal,
                 credit: _Credit, accumulation: tuple[AccumulationKey, Decimal] | None,
                 month: str) -> None:
        self.event = event
        self.where = where
        self.charge = charge
        self.net = net
        self.minimum_applied = minimum_applied
        self.markup_rate = markup_rate
        self.markup = markup
        self.gross = gross
        self.credit = credit
        self.accumulation = accumulation
        self.month = month  # the billing period

    def change(self, fingerprint: str) -> StateChange:
        return StateChange(
            event_id=self.event.event_id,
            fingerprint=fingerprint,
            event_time=self.event.event_time,
            accumulation=self.accumulation,
            credit=self.credit.used_after,
        )

    def record(self, origin: Origin, rated_at: datetime, catalog_version: str,
               quota_note: str | None = None) -> RatedUsage:
        where = self.where
        return RatedUsage(
            event=self.event,
            rated_at=rated_at,
            account_id=where.account.account_id,
            account_kind=str(where.account.kind),
            billing_period=self.month,
            fiscal_period=where.fiscal_period,
            rate_group=where.rate_group,
            rate_table=where.table.name,
            rate_code=where.row.rate_code,
            unit_of_measure=where.row.unit_of_measure,
            pricing=str(where.table.pricing),
            rate=self.charge.rate,
            quantity=self.charge.quantity,
            currency=where.table.currency.code,
            net_amount=self.net,
            markup_rate=self.markup_rate,
            markup_amount=self.markup,
            gross_amount=self.gross,
            credit_applied=self.credit.applied,
            credit_remaining=self.credit.remaining,
            charged_amount=subtract(self.gross, self.credit.applied),
            catalog_version=catalog_version,
            origin=origin,
            tiers=self.charge.tiers,
            minimum_charge_applied=self.minimum_applied,
            memo=memo(self.event, where.table),
            quota_note=quota_note,
        )


def _locate(event: UsageEvent, catalog: Catalog, routed_account: str | None
            ) -> _Located | None:
    """Steps up to the rate row; None when the operation is not billable."""
    item = billable_item(event, catalog)
    if item is None:
        return None
    account = paying_account(event, catalog, routed_account)
    period, group = _rate_group_at(event, catalog, catalog.accounts[account.account_id])
    table = catalog.rate_table_for(group, item.name, event.operation)
    if table is None:
        raise EventRejected(
            ReasonCode.NO_RATE_TABLE,
            f"event {event.event_id}: rate group {group!r} has no rate table for "
            f"{item.name} {event.operation}",
            {"rate_group": group, "service_item_type": item.name, "operation": event.operation},
        )
    product = marketplace_product(event, catalog, item)
    return _Located(account, period, group, table, _find_row(event, table, catalog), product)


def _group_of(catalog: Catalog, account_period: tuple[Account, FiscalPeriod]) -> str | None:
    return catalog.rate_group_for(*account_period)


_GROUPS: PerCatalog[tuple[str, str], tuple[Account, FiscalPeriod], str | None] = \
    PerCatalog(_group_of)


def _rate_group_at(event: UsageEvent, catalog: Catalog, account: Account) -> tuple[str, str]:
    """``rate_group_at``, with the group of each (account, fiscal period) memoised."""
    period = catalog.fiscal_period_at(event.event_time)
    group = None if period is None else _GROUPS(catalog, (account.id, period.name),
                                                (account, period))
    if period is None or group is None:
        return rate_group_at(event, catalog, account)  # raises NO_RATE_GROUP for this event
    return period.name, group


def _row_of(catalog: Catalog, table_values: tuple[RateTable, tuple[AttributeValue, ...]]
            ) -> RateRow | None:
    table, values = table_values
    return table.rows.find(values)


_ROWS: PerCatalog[tuple[str, tuple[AttributeValue, ...]],
                  tuple[RateTable, tuple[AttributeValue, ...]], RateRow | None] = \
    PerCatalog(_row_of)


def _find_row(event: UsageEvent, table: RateTable, catalog: Catalog) -> RateRow:
    """``find_row``, with the row of each (table, lookup values) memoised."""
    values = _lookup_values(event, table)
    row = None if values is None else _ROWS(catalog, (table.name, values), (table, values))
    return row if row is not None else find_row(event, table)  # raises for this event


def _lookup_values(event: UsageEvent, table: RateTable) -> tuple[AttributeValue, ...] | None:
    """The event's values of the table's lookup fields; None when one is missing."""
    values: list[AttributeValue] = []
    value: AttributeValue | None
    for name in table.lookup:
        if name in MARKETPLACE_FIELDS:
            value = event.provider if name == "provider" else event.product
        else:
            value = event.attributes.get(name)
        if value is None:
            return None
        values.append(value)
    return tuple(values)


def _price(event: UsageEvent, catalog: Catalog, state: RatingState,
           routed_account: str | None) -> _Priced | None:
    """Every rating step but the write; None when the operation is not billable."""
    where = _locate(event, catalog, routed_account)
    if where is None:
        return None
    table, row = where.table, where.row
    quantity = priced_quantity(event, table)
    month = billing_period(event.event_time)
    acc_key = (AccumulationKey(where.account.account_id, month, table.name, row.rate_code)
               if table.pricing.tiered else None)
    # Tiers see what the account used this month *before* this event.
    before = state.accumulated(acc_key) if acc_key is not None else ZERO
    priced = charge(table.pricing, row, quantity, before)
    exact = priced.amount
    minimum_applied = row.minimum_charge is not None and exact < row.minimum_charge
    if row.minimum_charge is not None and minimum_applied:
        exact = row.minimum_charge
    net = round_money(exact, table.currency)
    markup_rate = catalog.markup_for(where.product) if where.product is not None else ZERO
    markup = round_money(multiply(net, markup_rate), table.currency)
    gross = add(net, markup)
    return _Priced(
        event=event,
        where=where,
        charge=priced,
        net=net,
        minimum_applied=minimum_applied,
        markup_rate=markup_rate,
        markup=markup,
        gross=gross,
        credit=_draw_credit(catalog, state, where.account.account_id, month, table, gross),
        accumulation=(acc_key, add(before, quantity)) if acc_key is not None else None,
        month=month,
    )


def _draw_credit(catalog: Catalog, state: RatingState, account: str, month: str,
                 table: RateTable, gross: Decimal) -> _Credit:
    """Draw the account's monthly usage credit down by up to ``gross``.

    A credit only pays for records in its own currency: there is no exchange
    rate in the catalog, and guessing one would make amounts unexplainable.
    """
    plan_name = catalog.accounts[account].credit_plan
    plan = catalog.credit_plans[plan_name] if plan_name is not None else None
    if plan is None or plan.currency != table.currency:
        nothing = round_money(ZERO, table.currency)
        return _Credit(nothing, nothing, None)
    key = CreditKey(account, month)
    used = state.credit_used(key)
    available = max(subtract(plan.amount, used), ZERO)
    applied = round_money(min(gross, available), table.currency)
    used_after = (key, add(used, applied)) if applied > 0 else None
    remaining = round_money(subtract(available, applied), table.currency)
    return _Credit(applied, remaining, used_after)
