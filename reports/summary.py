"""The monthly summary: usage by provider, product and customer account (the control report).

Finance records the month's revenue from its grand totals, so the report
checks itself against the billing history and says so under the table:

1. it holds as many records as the billing history has for the period (a
   count query run by the caller, independent of the rows summed here);
2. per currency, the grand total (the sum of the report's lines) equals the
   sum taken straight from the rows;
3. per currency, net + markup = gross and gross - credit applied = charged.

Lines, sorted by provider, product, account, currency and unit of measure:
``detail`` per (provider, product, account, currency, unit), a ``subtotal``
per product and per provider (each per currency), and a ``total`` per
currency. Quantities are summed only within one unit of measure (a subtotal
mixing hours and GB leaves quantity empty).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

from reports.table import (
    DETAIL,
    SUBTOTAL,
    TOTAL,
    ControlLine,
    Money,
    Report,
    ReportError,
    Row,
    Sheet,
    product_label,
    provider_label,
)
from reports.totals import GroupedTotals, Key, Totals
from sinks.history.model import HistoryRow

COLUMNS = ("line", "provider", "product", "account_id", "currency", "unit_of_measure",
           "records", "quantity", "net_amount", "markup_amount", "gross_amount",
           "credit_applied", "charged_amount")


def build_summary(rows: Iterable[HistoryRow], period: str, history_count: int) -> Report:
    """The summary of ``rows`` (every billing-history row of ``period``);
    ``history_count`` is the billing history's own count of them."""
    details = GroupedTotals()  # (provider, product, account, currency, unit)
    straight = GroupedTotals()  # (currency,): summed from the rows, for the control
    for row in rows:
        check_period(row, period)
        details.add_row(summary_key(row), row)
        straight.add_row((row.currency,), row)
    lines, grand = _lines(details)
    sheet = Sheet(title=f"summary {period}", columns=COLUMNS, rows=tuple(lines),
                  control=lambda: _control(period, grand, straight, history_count))
    return Report(kind="summary", period=period, sheets=(sheet,))


def check_period(row: HistoryRow, period: str) -> None:
    if row.billing_period != period:
        raise ReportError(f"row {row.event_id} belongs to {row.billing_period}, not {period}: "
                          "read the history with billing_period set")


def _lines(details: GroupedTotals) -> tuple[list[Row], GroupedTotals]:
    lines: list[Row] = []
    grand = GroupedTotals()  # (currency,): the sum of the report's detail lines
    for provider, of_provider in groupby(details.items(), key=lambda item: item[0][0]):
        provider_totals = GroupedTotals()
        for product, of_product in groupby(of_provider, key=lambda item: item[0][1]):
            product_totals = GroupedTotals()
            for (_, _, account, currency, unit), totals in of_product:
                lines.append(_row(DETAIL, provider, product, account, currency, totals, unit))
                product_totals.add((currency,), totals)
                provider_totals.add((currency,), totals)
                grand.add((currency,), totals)
            lines += [_row(SUBTOTAL, provider, product, "", currency, totals)
                      for (currency,), totals in product_totals.items()]
        lines += [_row(SUBTOTAL, provider, "", "", currency, totals)
                  for (currency,), totals in provider_totals.items()]
    lines += [_row(TOTAL, "", "", "", currency, totals) for (currency,), totals in grand.items()]
    return lines, grand


def _row(level: str, provider: str, product: str, account: str, currency: str,
         totals: Totals, unit: str | None = None) -> Row:
    unit = unit if unit is not None else totals.unit
    return Row(level=level, cells=(
        level, provider, product, account, currency, unit or "", totals.records,
        totals.summable_quantity, Money(totals.net, currency), Money(totals.markup, currency),
        Money(totals.gross, currency), Money(totals.credit, currency),
        Money(totals.charged, currency)))


def _control(period: str, grand: GroupedTotals, straight: GroupedTotals,
             history_count: int) -> tuple[ControlLine, ...]:
    in_report = sum(totals.records for _, totals in grand.items())
    checks = [ControlLine(f"records: {in_report} in this report, {history_count} in the "
                          f"billing history for {period}", in_report == history_count)]
    straight_totals = dict(straight.items())
    for key, totals in grand.items():
        (currency,) = key
        direct = straight_totals.get(key, Totals())
        same = _amounts(totals) == _amounts(direct)
        checks.append(ControlLine(
            f"{currency}: grand total = sum of the period's billing-history rows (net "
            f"{direct.net}, markup {direct.markup}, gross {direct.gross}, credit applied "
            f"{direct.credit}, charged {direct.charged})", same))
        checks.append(ControlLine(
            f"{currency}: net + markup = gross ({totals.net} + {totals.markup} = "
            f"{totals.gross})", totals.net + totals.markup == totals.gross))
        checks.append(ControlLine(
            f"{currency}: gross - credit applied = charged ({totals.gross} - {totals.credit} "
            f"= {totals.charged})", totals.gross - totals.credit == totals.charged))
    passed = all(check.passed for check in checks)
    verdict = (f"the grand totals are the revenue to record for {period}" if passed else
               f"do not record revenue for {period} from this report")
    return (*checks, ControlLine(verdict, passed))


def _amounts(totals: Totals) -> tuple[object, ...]:
    return (totals.records, totals.net, totals.markup, totals.gross, totals.credit,
            totals.charged)


def summary_key(row: HistoryRow) -> Key:
    """The detail line a row lands on (tests and the API can group the same way)."""
    return (provider_label(row.provider), product_label(row.product, row.service_item_type),
            row.account_id, row.currency, row.unit_of_measure)
