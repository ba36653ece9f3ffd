"""Fiscal years and proration, with amounts checked by hand at 100.00 USD a month.

FY2027 runs 2026-07-01 .. 2027-06-30 (365 days); FY2024 runs 2023-07-01 ..
2024-06-30 and holds 29 February 2024 (366 days).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import pytest

from processors.catalog.licence_model import Proration
from processors.licences.fiscal import FiscalYear, prorate
from processors.money import CURRENCIES, multiply, round_money

FY2027 = FiscalYear(2027, 7)
FY2024 = FiscalYear(2024, 7)
USD = CURRENCIES["USD"]
MONTHLY = Decimal("100.00")


def amount(months: Decimal, rate: Decimal = MONTHLY) -> Decimal:
    """What the engine does with a unit-priced line: rate x quantity, rounded once."""
    return round_money(multiply(rate, months), USD)


def test_fiscal_year_is_named_by_the_year_it_ends_in() -> None:
    assert (FY2027.start, FY2027.end, FY2027.days, FY2027.label) == (
        date(2026, 7, 1), date(2027, 7, 1), 365, "FY2027")
    assert FY2024.days == 366  # 29 February 2024
    assert FiscalYear.of(date(2026, 7, 1), 7) == FY2027
    assert FiscalYear.of(date(2027, 6, 30), 7) == FY2027
    assert FiscalYear.of(date(2026, 6, 30), 7) == FiscalYear(2026, 7)
    calendar = FiscalYear(2027, 1)
    assert (calendar.start, calendar.end) == (date(2027, 1, 1), date(2028, 1, 1))
    assert FiscalYear.of(date(2027, 12, 31), 1) == calendar


def test_month_bounds_fall_inside_the_fiscal_year() -> None:
    assert FY2027.month_start(7) == date(2026, 7, 1)
    assert FY2027.month_start(1) == date(2027, 1, 1)
    assert FY2027.month_end(12) == date(2027, 1, 1)
    assert FY2027.month_end(6) == date(2027, 7, 1)


# (provisioned on, fiscal year, months by month, amount by month, days, amount by day)
HAND_CHECKED = [
    # First day of a month: September..June = 10 months; 303 of 365 days.
    (date(2026, 9, 1), FY2027, "10", "1000.00", "303 of 365 days", "996.16"),
    # Mid-month: November counts in full by month (8 months); by day 15 + 212 = 227 days.
    (date(2026, 11, 16), FY2027, "8", "800.00", "227 of 365 days", "746.30"),
    # Leap year: from 29 February 2024, 123 of the 366 days of FY2024 (1200 x 123 / 366).
    (date(2024, 2, 29), FY2024, "5", "500.00", "123 of 366 days", "403.28"),
    # The same first of January in a leap and a common fiscal year.
    (date(2024, 1, 1), FY2024, "6", "600.00", "182 of 366 days", "596.72"),
    (date(2027, 1, 1), FY2027, "6", "600.00", "181 of 365 days", "595.07"),
    # The first day of the year: the whole year either way.
    (date(2026, 7, 1), FY2027, "12", "1200.00", "365 of 365 days", "1200.00"),
    # The last day of the year: one month, or one day.
    (date(2027, 6, 30), FY2027, "1", "100.00", "1 of 365 days", "3.29"),
]


@pytest.mark.parametrize(("provisioned", "year", "months", "by_month", "days", "by_day"),
                         HAND_CHECKED)
def test_hand_checked_proration(provisioned: date, year: FiscalYear, months: str,
                                by_month: str, days: str, by_day: str) -> None:
    monthly = prorate(provisioned, year, Proration.MONTH)
    daily = prorate(provisioned, year, Proration.DAY)
    assert (str(monthly.months), str(amount(monthly.months))) == (months, by_month)
    assert daily.explanation.startswith(days)
    assert str(amount(daily.months)) == by_day


def test_day_quantity_is_rounded_half_even_at_twelve_places() -> None:
    prorated = prorate(date(2026, 11, 16), FY2027, Proration.DAY)
    assert str(prorated.months) == "7.463013698630"  # 12 x 227 / 365 = 7.46301369863013...
    assert prorate(date(2026, 7, 1), FY2027, Proration.DAY).months == Decimal(12)
    assert str(prorate(date(2026, 7, 1), FY2027, Proration.DAY).months) == "12"


def test_before_the_year_is_the_whole_year_and_after_it_is_an_error() -> None:
    assert prorate(date(2020, 3, 3), FY2027, Proration.DAY).months == Decimal(12)
    assert prorate(date(2020, 3, 3), FY2027, Proration.MONTH).explanation == "full year"
    with pytest.raises(ValueError, match="after FY2027 ends"):
        prorate(date(2027, 7, 1), FY2027, Proration.DAY)


@pytest.mark.parametrize("year", [FY2027, FY2024])
@pytest.mark.parametrize("rate", ["100.00", "0.01", "33.33", "1234.57", "9999999.99"])
def test_day_proration_is_exact_to_the_cent_for_every_day(year: FiscalYear, rate: str) -> None:
    # One rounding per line: rate x (12 x days / N at 12 places) rounds to the same cent
    # as the exact fraction rate x 12 x days / N, for every provisioning day of the year.
    monthly = Decimal(rate)
    day = year.start
    while day < year.end:
        days = (year.end - day).days
        exact = Fraction(monthly) * 12 * days / year.days
        expected = Decimal(exact.numerator) / Decimal(exact.denominator)
        assert amount(prorate(day, year, Proration.DAY).months, monthly) == expected.quantize(
            USD.quantum, rounding=ROUND_HALF_EVEN), (day, rate)
        day += timedelta(days=1)
