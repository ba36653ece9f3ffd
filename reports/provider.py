"""Provider statements: what each marketplace provider invoices for a month, at NET.

Providers price at net (what they are owed); the marketplace bills customers
gross (net + markup). A statement lists, for one provider, usage by product
and customer account: records, quantity and net amount, with a subtotal per
product and the provider's total per currency: the amount the provider will
invoice. Markup, credits and gross are the marketplace's business and are left out.

The platform's own services (no provider) are not a provider's statement;
they appear only when asked for by their label, ``(platform)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

from reports.summary import check_period
from reports.table import (
    DETAIL,
    PLATFORM,
    SUBTOTAL,
    TOTAL,
    ControlLine,
    Money,
    Report,
    Row,
    Sheet,
    product_label,
    provider_label,
)
from reports.totals import GroupedTotals, Totals
from sinks.history.model import HistoryRow

COLUMNS = ("line", "provider", "product", "account_id", "currency", "unit_of_measure",
           "records", "quantity", "net_amount")


def build_provider_statements(rows: Iterable[HistoryRow], period: str,
                              provider: str | None = None) -> Report:
    """One statement (sheet) per provider of ``period``'s rows, or only ``provider``'s."""
    details = GroupedTotals()  # (provider, product, account, currency, unit)
    for row in rows:
        check_period(row, period)
        label = provider_label(row.provider)
        if (label == PLATFORM and provider != PLATFORM) or provider not in (None, label):
            continue
        details.add_row((label, product_label(row.product, row.service_item_type),
                         row.account_id, row.currency, row.unit_of_measure), row)
    sheets = [_statement(name, period, list(items))
              for name, items in groupby(details.items(), key=lambda item: item[0][0])]
    if not sheets:  # nothing due: still a statement, saying so
        sheets = [_statement(provider or "providers", period, [])]
    return Report(kind="provider", period=period, sheets=tuple(sheets))


def _statement(provider: str, period: str,
               items: list[tuple[tuple[str, ...], Totals]]) -> Sheet:
    lines: list[Row] = []
    due = GroupedTotals()  # (currency,)
    for product, of_product in groupby(items, key=lambda item: item[0][1]):
        product_totals = GroupedTotals()
        for (_, _, account, currency, unit), totals in of_product:
            lines.append(_row(DETAIL, provider, product, account, currency, totals, unit))
            product_totals.add((currency,), totals)
            due.add((currency,), totals)
        lines += [_row(SUBTOTAL, provider, product, "", currency, totals)
                  for (currency,), totals in product_totals.items()]
    lines += [_row(TOTAL, provider, "", "", currency, totals)
              for (currency,), totals in due.items()]
    return Sheet(title=provider, columns=COLUMNS, rows=tuple(lines),
                 control=lambda: _amount_due(provider, period, due))


def _row(level: str, provider: str, product: str, account: str, currency: str,
         totals: Totals, unit: str | None = None) -> Row:
    unit = unit if unit is not None else totals.unit
    return Row(level=level, cells=(level, provider, product, account, currency, unit or "",
                                   totals.records, totals.summable_quantity,
                                   Money(totals.net, currency)))


def _amount_due(provider: str, period: str, due: GroupedTotals) -> tuple[ControlLine, ...]:
    if not len(due):
        return (ControlLine(f"{provider}: no usage in {period}, nothing to invoice", True),)
    return tuple(ControlLine(f"{provider} invoices {totals.net} {currency} at net for "
                             f"{period} (records: {totals.records})", True)
                 for (currency,), totals in due.items())
