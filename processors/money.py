"""Exact money: Decimal arithmetic, ISO 4217 currencies and one rounding rule.

Amounts are rounded once per billing line, half-even, to the currency's minor
unit. Rates and quantities keep their own scale until then, so a rate of
``0.0125`` is never rounded before it is multiplied.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation
from typing import Final

# Wide enough that no product of a catalog rate and an event quantity is ever
# rounded by the arithmetic itself; only ``round_money`` rounds. Numbers on events and
# in the catalog have at most MAX_INTEGER_DIGITS digits before the point; should a
# result still not fit (say, a quantity with 50 decimals), Inexact is raised instead of
# rounding twice, and the caller rejects the event (processors/pipeline.py).
_EXACT = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, Inexact])
_ROUNDING = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation])

# The largest number an event or the catalog may carry has this many digits before the
# decimal point (below 10**18): beyond any real quantity, rate or quota, and far inside
# what _EXACT holds exactly.
MAX_INTEGER_DIGITS: Final = 18
# And at most this many digits after it (trailing zeros aside). With both bounds, a rate
# times a quantity has at most 72 digits, of which any realistic pair uses far fewer, and
# a sum of millions of quantities or rounded amounts (tiers, quotas, the aggregates, the
# billing history, the reports) stays within 60: exact, never Inexact downstream.
MAX_FRACTION_DIGITS: Final = 18

ZERO = Decimal(0)


def too_large(value: Decimal) -> bool:
    """True when ``value`` has more than MAX_INTEGER_DIGITS digits before the point."""
    return value.adjusted() >= MAX_INTEGER_DIGITS and not value.is_zero()


def too_fine(value: Decimal) -> bool:
    """True when ``value`` has more than MAX_FRACTION_DIGITS digits after the point, not
    counting trailing zeros (``1.50`` has one)."""
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or exponent >= -MAX_FRACTION_DIGITS:
        return False  # not finite (the callers refuse it first), or few enough
    return exponent + _trailing_zeros(digits) < -MAX_FRACTION_DIGITS


def _trailing_zeros(digits: tuple[int, ...]) -> int:
    count = 0
    for digit in reversed(digits):
        if digit != 0:
            break
        count += 1
    return count


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    minor_units: int

    @property
    def quantum(self) -> Decimal:
        """The smallest amount: ``0.01`` for USD, ``1`` for JPY."""
        quantum = _QUANTA.get(self.minor_units)
        return Decimal(1).scaleb(-self.minor_units) if quantum is None else quantum


# Built once: round_money runs three times per rated event.
_QUANTA = {units: Decimal(1).scaleb(-units) for units in range(5)}


_TWO_DECIMALS = [
    "USD", "EUR", "GBP", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN", "CZK",
    "HUF", "RON", "BGN", "INR", "CNY", "HKD", "SGD", "MXN", "BRL", "ZAR", "TRY", "ILS",
    "AED", "SAR", "THB", "MYR", "PHP", "IDR",
]  # fmt: skip
_NO_DECIMALS = ["JPY", "KRW", "ISK", "CLP", "VND", "UGX", "XAF", "XOF"]
_THREE_DECIMALS = ["KWD", "BHD", "OMR", "JOD", "TND", "LYD", "IQD"]

_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_TWO_DECIMALS, 2),
    **dict.fromkeys(_NO_DECIMALS, 0),
    **dict.fromkeys(_THREE_DECIMALS, 3),
}

CURRENCIES: dict[str, Currency] = {
    code: Currency(code, units) for code, units in sorted(_MINOR_UNITS.items())
}


def currency(code: str) -> Currency | None:
    """The known currency with this ISO code, or None."""
    return CURRENCIES.get(code)


def multiply(a: Decimal, b: Decimal) -> Decimal:
    return _EXACT.multiply(a, b)


def add(a: Decimal, b: Decimal) -> Decimal:
    return _EXACT.add(a, b)


def subtract(a: Decimal, b: Decimal) -> Decimal:
    return _EXACT.subtract(a, b)


def round_money(amount: Decimal, cur: Currency) -> Decimal:
    """Round half-even to the currency's minor unit (the per-line rule)."""
    return _ROUNDING.quantize(amount, cur.quantum)  # the context rounds half-even


def fits_minor_unit(amount: Decimal, cur: Currency) -> bool:
    """True when ``amount`` needs no rounding in this currency (e.g. 1.5 JPY does)."""
    return round_money(amount, cur) == amount
