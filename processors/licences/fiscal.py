"""Fiscal years and the proration of a licence fee over what is left of one.

A fiscal year is named by the calendar year it ends in (the catalog's
convention: FY2027 = 2026-07-01 .. 2027-06-30 when it starts in July), so a
year starting in January is named by its own calendar year.

Proration of a licence provisioned on day *d* of fiscal year *Y*:

- ``month``: whole months from *d*'s month to the end of *Y*, counting *d*'s
  month in full (provisioned 2026-09-15 -> September..June = 10 months);
- ``day``: 12 x (days from *d*, itself included, to the last day of *Y*) /
  (days in *Y*: 365, or 366 when *Y* holds a 29 February), rounded half-even
  to 12 decimal places. The amount, rate x months, is then rounded once to
  the currency's minor unit; at 12 places that equals rounding
  rate x 12 x days / days-in-year itself for any rate below 10^7 with no more
  decimals than the currency (tests/unit/processors/licences check it for every day).

A licence provisioned before the year starts is billed the whole year: 12.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Context, Decimal

from processors.catalog.licence_model import Proration

FULL_YEAR = Decimal(12)
DAY_QUANTUM = Decimal("1e-12")
_CONTEXT = Context(prec=40, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class FiscalYear:
    number: int  # the calendar year the fiscal year ends in
    start_month: int  # 1..12

    @property
    def label(self) -> str:
        return f"FY{self.number}"

    @property
    def start(self) -> date:
        year = self.number - 1 if self.start_month > 1 else self.number
        return date(year, self.start_month, 1)

    @property
    def end(self) -> date:
        """The first day after the year (exclusive end)."""
        return date(self.start.year + 1, self.start_month, 1)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end

    def month_start(self, month: int) -> date:
        """The first day of calendar ``month`` inside this fiscal year."""
        year = self.start.year if month >= self.start_month else self.start.year + 1
        return date(year, month, 1)

    def month_end(self, month: int) -> date:
        """The first day after calendar ``month`` inside this fiscal year (exclusive)."""
        first = self.month_start(month)
        return date(first.year + (first.month == 12), first.month % 12 + 1, 1)

    @classmethod
    def of(cls, day: date, start_month: int) -> FiscalYear:
        """The fiscal year holding ``day``."""
        ends_in = day.year + 1 if day.month >= start_month > 1 else day.year
        return cls(ends_in, start_month)


@dataclass(frozen=True, slots=True)
class Prorated:
    """The months a fee is charged for, and how they were counted (for the record)."""

    months: Decimal
    explanation: str


def prorate(provisioned_on: date, year: FiscalYear, rule: Proration) -> Prorated:
    """Months of ``year`` left from ``provisioned_on`` under ``rule`` (12 before the year)."""
    if provisioned_on < year.start:
        return Prorated(FULL_YEAR, "full year")
    if provisioned_on >= year.end:
        raise ValueError(f"{provisioned_on} is after {year.label} ends")
    if rule is Proration.MONTH:
        whole = 12 - (provisioned_on.month - year.start_month) % 12
        return Prorated(Decimal(whole),
                        f"{whole} of 12 months from {provisioned_on.strftime('%Y-%m')}")
    days = (year.end - provisioned_on).days
    exact = _CONTEXT.divide(Decimal(12 * days), Decimal(year.days))
    months = exact.quantize(DAY_QUANTUM, context=_CONTEXT)
    if months == months.to_integral_value():
        months = months.to_integral_value()  # 12, not 12.000000000000
    return Prorated(months, f"{days} of {year.days} days from {provisioned_on.isoformat()}")
