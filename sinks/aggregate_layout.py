"""The period aggregates' Redis layout: keys, hash fields and exact decimal totals.

Shared by the writer (sinks/aggregates.py, which documents the layout) and the
readers (the REST API). Pure except :func:`read_period`, the one read path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import redis

from processors.money import ZERO, add

DEFAULT_PREFIX = "rating"
# Key placeholder for a record without provider / product (platform services). Catalog
# identifiers start with a letter or digit, so "-" can never be a real one; a producer's
# free-text "-" is escaped (see key_component) and cannot collide with it either.
NO_VALUE = "-"
PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
AMOUNT_FIELDS = ("net_amount", "markup_amount", "gross_amount", "credit_applied",
                 "charged_amount")


@dataclass(frozen=True, slots=True)
class AggregateGroup:
    """What one aggregate hash totals: a month, a seller, a customer, a currency."""

    billing_period: str
    provider: str | None
    product: str | None
    account: str
    currency: str  # amounts in different currencies never add

    def sort_key(self) -> tuple[str, str, str, str, str]:
        return (self.billing_period, self.provider or "", self.product or "", self.account,
                self.currency)


@dataclass(frozen=True, slots=True)
class Totals:
    count: int
    quantity: Decimal
    net_amount: Decimal
    markup_amount: Decimal
    gross_amount: Decimal
    credit_applied: Decimal
    charged_amount: Decimal
    units: frozenset[str]  # units of measure summed into ``quantity``

    def plus(self, other: Totals) -> Totals:
        """Exact: decimal addition in the money context (60 digits), never a float."""
        return Totals(
            count=self.count + other.count,
            quantity=add(self.quantity, other.quantity),
            net_amount=add(self.net_amount, other.net_amount),
            markup_amount=add(self.markup_amount, other.markup_amount),
            gross_amount=add(self.gross_amount, other.gross_amount),
            credit_applied=add(self.credit_applied, other.credit_applied),
            charged_amount=add(self.charged_amount, other.charged_amount),
            units=self.units | other.units,
        )


NO_TOTALS = Totals(0, ZERO, ZERO, ZERO, ZERO, ZERO, ZERO, frozenset())


@dataclass(frozen=True, slots=True)
class Aggregate:
    group: AggregateGroup
    totals: Totals
    updated_from: str  # <topic>:<partition>:<offset> of the last record added


# -- from a rated record ----------------------------------------------------------

def group_of(rated: Mapping[str, Any]) -> AggregateGroup:
    """The group of a decoded RatedUsage record (schemas/rated_usage.avsc)."""
    return AggregateGroup(billing_period=str(rated["billing_period"]),
                          provider=rated.get("provider") or None,
                          product=rated.get("product") or None,
                          account=str(rated["account_id"]), currency=str(rated["currency"]))


def totals_of(rated: Mapping[str, Any]) -> Totals:
    """One record's contribution; raises ValueError/ArithmeticError when a decimal is bad."""
    amounts = {name: _decimal(rated[name]) for name in AMOUNT_FIELDS}
    return Totals(count=1, quantity=_decimal(rated["quantity"]),
                  units=frozenset({str(rated["unit_of_measure"])}), **amounts)


def _decimal(text: object) -> Decimal:
    value = Decimal(str(text))
    if not value.is_finite():
        raise ValueError(f"not a finite decimal: {text!r}")
    return value


# -- keys ----------------------------------------------------------------------------

def key_component(value: str | None) -> str:
    """A key part: ``-`` for none; ``%`` and ``:`` percent-escaped (catalog identifiers may
    contain ``:``), so distinct groups always get distinct keys."""
    if value is None:
        return NO_VALUE
    escaped = value.replace("%", "%25").replace(":", "%3A")
    return "%2D" if escaped == NO_VALUE else escaped


def aggregate_key(prefix: str, group: AggregateGroup) -> str:
    parts = (group.billing_period, group.provider, group.product, group.account, group.currency)
    return f"{prefix}:agg:" + ":".join(key_component(part) for part in parts)


def period_index_key(prefix: str, period: str) -> str:
    return f"{prefix}:agg-index:{period}"


def periods_key(prefix: str) -> str:
    return f"{prefix}:agg-periods"


def offsets_key(prefix: str) -> str:
    return f"{prefix}:aggregates:offsets"


# -- hash fields ----------------------------------------------------------------------

def aggregate_fields(aggregate: Aggregate) -> dict[str, str]:
    group, totals = aggregate.group, aggregate.totals
    return {
        "billing_period": group.billing_period, "provider": group.provider or "",
        "product": group.product or "", "account": group.account, "currency": group.currency,
        "count": str(totals.count), "quantity": _text(totals.quantity),
        "units": ",".join(sorted(totals.units)),
        **{name: _text(getattr(totals, name)) for name in AMOUNT_FIELDS},
        "updated_from": aggregate.updated_from,
    }


def parse_aggregate(fields: Mapping[str, str]) -> Aggregate:
    """The hash back; raises KeyError/ValueError when it is not an aggregate hash."""
    group = AggregateGroup(billing_period=fields["billing_period"],
                           provider=fields["provider"] or None,
                           product=fields["product"] or None, account=fields["account"],
                           currency=fields["currency"])
    units = frozenset(unit for unit in fields["units"].split(",") if unit)
    totals = Totals(count=int(fields["count"]), quantity=_decimal(fields["quantity"]),
                    units=units, **{name: _decimal(fields[name]) for name in AMOUNT_FIELDS})
    return Aggregate(group, totals, fields.get("updated_from", ""))


def _text(value: Decimal) -> str:
    return format(value, "f")


# -- reading (the API) ------------------------------------------------------------------

def read_period(client: redis.Redis, prefix: str, period: str) -> list[Aggregate]:
    """Every aggregate of ``period`` from its index (no SCAN), ordered by group.

    The client must decode responses (``decode_responses=True``). A hash listed in the
    index but gone (only possible if someone deleted it by hand) is left out.
    """
    members = sorted(_str(m) for m in client.smembers(period_index_key(prefix, period)))
    with client.pipeline(transaction=False) as reads:
        for member in members:
            reads.hgetall(member)
        rows: list[dict[str, str]] = reads.execute() if members else []
    found = [parse_aggregate(row) for row in rows if row]
    return sorted(found, key=lambda aggregate: aggregate.group.sort_key())


def read_periods(client: redis.Redis, prefix: str) -> list[str]:
    return sorted(_str(member) for member in client.smembers(periods_key(prefix)))


def _str(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def sum_by_currency(aggregates: Iterable[Aggregate]) -> dict[str, Totals]:
    """Totals of several aggregates per currency (a period's grand total)."""
    out: dict[str, Totals] = {}
    for aggregate in aggregates:
        currency = aggregate.group.currency
        out[currency] = out.get(currency, NO_TOTALS).plus(aggregate.totals)
    return out
