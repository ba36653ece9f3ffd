"""Reports as files: CSV (exact decimal text) and XLSX (numbers with currency formats).

CSV: one table per file. Money is the exact decimal string at (at least) the
currency's minor unit (``money_text``), quantities their exact string, never
a float. Sheets with the same columns (provider statements) share one header.
When the report asks for it, the control lines follow after an empty row, one
per row: ``control OK: <check>`` or ``control FAILED: <check>``.

XLSX: one worksheet per sheet, written in streaming mode. Money and
quantities are NUMBER cells given as ``Decimal``: openpyxl writes them as
``%.16g`` text in the file, which is exact for up to 15 significant digits,
the precision Excel itself keeps. A value with more significant digits is
written as a right-aligned TEXT cell holding the exact decimal string rather
than rounded. Money cells get the number format of their currency's minor
unit (``#,##0.00`` for USD, ``#,##0`` for JPY, ``#,##0.000`` for KWD).
Control lines go under the table, or, for the billing export whose sheet must
stay a plain table, on a sheet of their own named ``control``.
"""

from __future__ import annotations

import csv
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from processors.money import currency as known_currency
from reports.table import (
    DETAIL,
    Cell,
    ControlLine,
    Money,
    Report,
    Sheet,
    decimal_text,
    money_text,
)

EXCEL_DIGITS = 15
SHEET_TITLE_CHARS = 31
_BAD_TITLE_CHARS = re.compile(r"[\[\]:*?/\\]")


def control_text(line: ControlLine) -> str:
    return f"control {'OK' if line.passed else 'FAILED'}: {line.text}"


# -- CSV ---------------------------------------------------------------------------

def write_csv(report: Report, out: TextIO) -> tuple[ControlLine, ...]:
    """Write ``report`` to ``out``; returns its control lines (known once rows are written)."""
    writer = csv.writer(out, lineterminator="\n")
    header: tuple[str, ...] | None = None
    for sheet in report.sheets:
        if sheet.columns != header:
            if header is not None:
                writer.writerow([])
            writer.writerow(sheet.columns)
            header = sheet.columns
        for row in sheet.rows:
            writer.writerow([csv_cell(cell) for cell in row.cells])
    controls = _controls(report)
    if report.control_below_table and controls:
        writer.writerow([])
        for line in controls:
            writer.writerow([control_text(line)])
    return controls


def csv_cell(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, Money):
        return money_text(cell.amount, cell.currency)
    if isinstance(cell, Decimal):
        return decimal_text(cell)
    return inert_text(str(cell))


# A spreadsheet opening a CSV runs a cell that starts with one of these as a formula
# (CSV injection: requester, service item id, source and memo values come from events).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert_text(text: str) -> str:
    """``text`` as a spreadsheet shows it and never runs it: a leading ``'``, as OWASP
    advises, when it would start a formula. Numbers are not text here: they never get it."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


# -- XLSX --------------------------------------------------------------------------

def write_xlsx(report: Report, path: Path) -> tuple[ControlLine, ...]:
    """Write ``report`` to the workbook ``path``; returns its control lines."""
    from openpyxl import Workbook  # only when writing XLSX: the CLI starts faster
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font

    bold = Font(bold=True)
    right = Alignment(horizontal="right")
    workbook = Workbook(write_only=True)
    titles: set[str] = set()

    def cell(sheet: Any, value: Cell, emphasis: bool) -> Any:
        written = WriteOnlyCell(sheet, value=None)
        number, number_format = xlsx_value(value)
        written.value = number
        if number_format is not None:
            written.number_format = number_format
        if isinstance(number, str):
            # Text is stored as text: openpyxl would store "=..." as a live formula.
            written.data_type = "s"
            if isinstance(value, Decimal | Money):
                written.alignment = right  # an exact number kept as text
        if emphasis:
            written.font = bold
        return written

    for sheet in report.sheets:
        worksheet = workbook.create_sheet(title=_unique_title(sheet.title, titles))
        worksheet.append([cell(worksheet, name, True) for name in sheet.columns])
        for row in sheet.rows:
            worksheet.append([cell(worksheet, value, row.level != DETAIL)
                              for value in row.cells])
        if report.control_below_table:
            _append_controls(worksheet, sheet)
    controls = _controls(report)
    if not report.control_below_table:
        worksheet = workbook.create_sheet(title="control")
        for line in controls:
            worksheet.append([control_text(line)])
    workbook.save(path)
    return controls


def xlsx_value(value: Cell) -> tuple[str | int | Decimal | None, str | None]:
    """The cell value and number format for a report cell (see the module docstring)."""
    if isinstance(value, Money):
        number = _exact_number(value.amount)
        return number, money_format(value.currency) if isinstance(number, Decimal) else None
    if isinstance(value, Decimal):
        return _exact_number(value), None
    return value, None


def money_format(currency_code: str) -> str:
    known = known_currency(currency_code)
    if known is None:
        return "General"
    return "#,##0" if known.minor_units == 0 else "#,##0." + "0" * known.minor_units


def _exact_number(number: Decimal) -> Decimal | str:
    if len(number.as_tuple().digits) <= EXCEL_DIGITS:
        return number
    return decimal_text(number)


def _append_controls(worksheet: Any, sheet: Sheet) -> None:
    lines = sheet.control()
    if lines:
        worksheet.append([])
        for line in lines:
            worksheet.append([control_text(line)])


def _controls(report: Report) -> tuple[ControlLine, ...]:
    return tuple(line for sheet in report.sheets for line in sheet.control())


def _unique_title(title: str, taken: set[str]) -> str:
    """Excel's rules: at most 31 characters, none of []:*?/\\, unique in the workbook."""
    base = _BAD_TITLE_CHARS.sub("_", title)[:SHEET_TITLE_CHARS] or "sheet"
    candidate, n = base, 2
    while candidate.lower() in taken:
        suffix = f" ({n})"
        candidate, n = base[:SHEET_TITLE_CHARS - len(suffix)] + suffix, n + 1
    taken.add(candidate.lower())
    return candidate
