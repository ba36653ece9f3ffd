"""Licence invoices: the seed's spreadsheets, one per product group, from the billing history.

A billing run's charges are billing-history rows like any other (source
``licences:<FY>:<run>``, memo fields written by processors/licences/billing.py).
Each invoice lists, per campus, every licence charge -- licence record
number, user, the active licences the user holds, the licence billed, how
its months were counted, amount -- then the campus total with the campus's
one billing target, and the invoice total. Pure: rows in, ``Report`` out;
reports/writers.py renders CSV and XLSX.

The control line compares the invoice total with the sum of the rows it was
built from; ``rating billing-run`` also checks the sum of all invoices
against the history's own total for the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from pathlib import Path

from processors.licences.billing import run_source
from processors.licences.fiscal import FiscalYear
from processors.money import ZERO
from reports.table import DETAIL, SUBTOTAL, TOTAL, ControlLine, Money, Report, Row, Sheet
from reports.writers import write_csv, write_xlsx
from sinks.history.model import BillingHistoryStore, HistoryFilter, HistoryRow

COLUMNS = ("campus", "campus billing target", "unit billing target", "licence record number",
           "user", "active licences", "licence billed", "provisioned on", "proration",
           "months", "monthly rate", "amount")
UNGROUPED = "ungrouped"  # a charge without a product group in its memo (never expected)


@dataclass(frozen=True)
class Invoice:
    group: str
    title: str
    report: Report
    totals: Mapping[str, Decimal]  # currency -> invoice total
    lines: int


def run_rows(store: BillingHistoryStore, year: FiscalYear, run: str) -> list[HistoryRow]:
    """Every charge the run has billed so far, in history order."""
    return list(store.iter_rows(HistoryFilter(source=run_source(year, run))))


def build_invoices(rows: Iterable[HistoryRow], year: FiscalYear, run: str,
                   titles: Mapping[str, str]) -> list[Invoice]:
    """One invoice per product group of ``titles`` (empty ones too), plus any group the rows
    name that the catalog no longer has."""
    by_group: dict[str, list[HistoryRow]] = {group: [] for group in titles}
    for row in rows:
        by_group.setdefault(row.memo.get("product_group", UNGROUPED), []).append(row)
    return [_invoice(group, titles.get(group, group), lines, year, run)
            for group, lines in by_group.items()]


def _invoice(group: str, title: str, rows: list[HistoryRow], year: FiscalYear,
             run: str) -> Invoice:
    table: list[Row] = []
    totals: dict[str, Decimal] = {}
    for campus, charges in groupby(sorted(rows, key=_line_order), key=_campus):
        # A total per billing target the campus's lines were charged to: one as a rule,
        # but a run re-billed after the catalog moved the campus to another speedtype has
        # lines on each, and one total on the last one would charge it the others' too.
        campus_totals: dict[tuple[str, str], Decimal] = {}
        last = None
        for row in charges:
            table.append(_line(campus, row))
            key = (row.memo.get("billing_target", ""), row.currency)
            campus_totals[key] = campus_totals.get(key, ZERO) + row.charged_amount
            last = row
        assert last is not None  # groupby never yields an empty group
        for (target, currency), amount in campus_totals.items():
            table.append(_total_row(f"campus total {last.memo.get('campus_name', campus)}",
                                    target, Money(amount, currency), SUBTOTAL))
            totals[currency] = totals.get(currency, ZERO) + amount
    table += [_total_row(f"invoice total {title}", "", Money(amount, currency), TOTAL)
              for currency, amount in totals.items()]
    lines = len(rows)

    def control() -> tuple[ControlLine, ...]:
        listed = sum((row.charged_amount for row in rows), ZERO)
        invoiced = sum(totals.values(), ZERO)
        return (ControlLine(f"{title}: invoice total {invoiced} = {lines} licence charges of "
                            f"{run_source(year, run)} in the billing history ({listed})",
                            invoiced == listed),)

    sheet = Sheet(title=title, columns=COLUMNS, rows=tuple(table), control=control)
    report = Report(kind="licence-invoice", period=f"{year.label} {run}", sheets=(sheet,))
    return Invoice(group, title, report, totals, lines)


def _campus(row: HistoryRow) -> str:
    return row.memo.get("campus", row.account_id)


def _line_order(row: HistoryRow) -> tuple[str, str, str]:
    return _campus(row), row.service_item_id, row.event_id


def _line(campus: str, row: HistoryRow) -> Row:
    memo = row.memo
    return Row((campus, memo.get("billing_target", ""), memo.get("unit_billing_target", ""),
                row.service_item_id, row.requester, memo.get("active_licences", ""),
                memo.get("licence", row.product or ""), memo.get("provisioned_on", ""),
                memo.get("proration", ""), row.quantity, row.rate,
                Money(row.charged_amount, row.currency)), DETAIL)


def _total_row(label: str, target: str, amount: Money, level: str) -> Row:
    return Row((label, target) + ("",) * (len(COLUMNS) - 3) + (amount,), level)


def invoice_paths(out_dir: Path, year: FiscalYear, run: str, group: str) -> tuple[Path, Path]:
    stem = f"licence-invoice-{year.label}-{run}-{group}"
    return out_dir / f"{stem}.csv", out_dir / f"{stem}.xlsx"


def write_invoices(invoices: Iterable[Invoice], out_dir: Path, year: FiscalYear,
                   run: str) -> list[tuple[Path, tuple[ControlLine, ...]]]:
    """Each invoice as CSV and XLSX in ``out_dir``; (file, its control lines) per file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, tuple[ControlLine, ...]]] = []
    for invoice in invoices:
        csv_path, xlsx_path = invoice_paths(out_dir, year, run, invoice.group)
        with csv_path.open("w", newline="", encoding="utf-8") as out:
            written.append((csv_path, write_csv(invoice.report, out)))
        written.append((xlsx_path, write_xlsx(invoice.report, xlsx_path)))
    return written
