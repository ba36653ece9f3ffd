"""What a report is before it is a file: sheets of typed cells, plus its control lines.

Builders (summary.py, provider.py, export.py) make these from billing-history
rows without any I/O; writers.py renders them as CSV or XLSX. Money cells
carry their currency so that each writer can format them at its minor unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from processors.errors import RatingError
from processors.money import currency as known_currency

PLATFORM = "(platform)"  # the provider label of the platform's own services (no provider)

DETAIL, SUBTOTAL, TOTAL = "detail", "subtotal", "total"


class ReportError(RatingError):
    """A report cannot be made as asked (bad period, no such provider, failed control)."""


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str


Cell = str | int | Decimal | Money | None


@dataclass(frozen=True, slots=True)
class Row:
    cells: tuple[Cell, ...]
    level: str = DETAIL  # detail | subtotal | total: writers emphasise the last two


@dataclass(frozen=True, slots=True)
class ControlLine:
    text: str
    passed: bool


@dataclass(frozen=True)
class Sheet:
    """``rows`` may be lazy (the billing export streams); ``control`` is called only
    after every row was consumed, so it may report totals gathered on the way."""

    title: str
    columns: tuple[str, ...]
    rows: Iterable[Row]
    control: Callable[[], tuple[ControlLine, ...]] = field(default=lambda: ())


@dataclass(frozen=True)
class Report:
    kind: str  # summary | provider | billing-export
    period: str
    sheets: tuple[Sheet, ...]
    # True: the control lines go under the table (the summary: it IS the control report).
    # False: the table stays plain (the export: machines read it); XLSX puts them on a
    # "control" sheet, CSV leaves them out (the CLI prints them).
    control_below_table: bool = True


def money_text(amount: Decimal, currency_code: str) -> str:
    """Exact plain text at (at least) the currency's minor unit: 20 USD -> "20.00". Never
    rounds: an amount with more decimals than its currency has keeps them."""
    known = known_currency(currency_code)
    exponent = amount.as_tuple().exponent
    if known is not None and isinstance(exponent, int) and exponent > -known.minor_units:
        amount = amount.quantize(known.quantum)
    return format(amount, "f")


def decimal_text(number: Decimal) -> str:
    """Plain (never scientific) exact text: quantities and rates."""
    return format(number, "f")


def provider_label(provider: str | None) -> str:
    return PLATFORM if provider is None else provider


def product_label(product: str | None, service_item_type: str) -> str:
    """Platform services have no product: their service item type names what was used."""
    return service_item_type if product is None else product
