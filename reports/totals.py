"""Exact running totals of billing-history rows, grouped by any key (pure)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from processors import money
from processors.money import ZERO
from sinks.history.model import HistoryRow

Key = tuple[str, ...]


@dataclass(slots=True)
class Totals:
    """What a group of rows adds up to. ``units`` tells whether quantities may be summed."""

    records: int = 0
    quantity: Decimal = ZERO
    net: Decimal = ZERO
    markup: Decimal = ZERO
    gross: Decimal = ZERO
    credit: Decimal = ZERO
    charged: Decimal = ZERO
    units: set[str] = field(default_factory=set)

    # Exact sums (processors.money.add): `+` rounds to the default 28 digits, and a
    # quantity may carry more (bytes as GB: 30 decimals).
    def add_row(self, row: HistoryRow) -> None:
        self.records += 1
        self.quantity = money.add(self.quantity, row.quantity)
        self.net = money.add(self.net, row.net_amount)
        self.markup = money.add(self.markup, row.markup_amount)
        self.gross = money.add(self.gross, row.gross_amount)
        self.credit = money.add(self.credit, row.credit_applied)
        self.charged = money.add(self.charged, row.charged_amount)
        self.units.add(row.unit_of_measure)

    def add(self, other: Totals) -> None:
        self.records += other.records
        self.quantity = money.add(self.quantity, other.quantity)
        self.net = money.add(self.net, other.net)
        self.markup = money.add(self.markup, other.markup)
        self.gross = money.add(self.gross, other.gross)
        self.credit = money.add(self.credit, other.credit)
        self.charged = money.add(self.charged, other.charged)
        self.units |= other.units

    @property
    def unit(self) -> str | None:
        """The one unit of measure of the group; None when units are mixed (hours + GB)."""
        return next(iter(self.units)) if len(self.units) == 1 else None

    @property
    def summable_quantity(self) -> Decimal | None:
        return self.quantity if self.unit is not None else None


class GroupedTotals:
    def __init__(self) -> None:
        self._groups: dict[Key, Totals] = {}

    def add_row(self, key: Key, row: HistoryRow) -> None:
        self.of(key).add_row(row)

    def add(self, key: Key, totals: Totals) -> None:
        self.of(key).add(totals)

    def of(self, key: Key) -> Totals:
        found = self._groups.get(key)
        if found is None:
            found = self._groups[key] = Totals()
        return found

    def items(self) -> Iterator[tuple[Key, Totals]]:
        """In key order: reports list groups sorted."""
        return iter(sorted(self._groups.items()))

    def __len__(self) -> int:
        return len(self._groups)
