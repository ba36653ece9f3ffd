"""Licence invoices from billing-history rows: one per product group, campus totals with
the campus's billing target, totals equal to the rows; CSV and XLSX."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

from openpyxl import load_workbook

from processors.licences.fiscal import FiscalYear
from processors.licences.state import SubscriptionState
from reports.licence_invoices import build_invoices, write_invoices
from sinks.history.model import HistoryRow
from sinks.history.rows import row_from_rated
from stream.codec import rated_to_avro
from tests.unit.processors.licences.factories import CATALOG as CATALOG_TEXT
from tests.unit.processors.licences.factories import apply_all, bill, licence_catalog, provision

CATALOG = licence_catalog()
FY2027 = FiscalYear(2027, 7)
TITLES = {"crm": "CRM", "events": "Events"}


def _history_rows() -> list[HistoryRow]:
    state = SubscriptionState()
    apply_all(CATALOG, state,
              provision("N-2", "ann", date(2025, 3, 1)),
              provision("N-1", "bo", date(2024, 1, 1), unit_billing_target="U-9"),
              provision("N-E", "ann", date(2025, 3, 1), product="events"),
              provision("S-1", "cy", date(2025, 3, 1), campus="south"))
    outcome = bill(CATALOG, state, "annual")
    # As the billing-history sink stores them: through the Avro record, as decimals.
    return [row_from_rated(rated_to_avro(record), "usage.rated", 0, offset)
            for offset, record in enumerate(outcome.charges)]


def test_one_invoice_per_group_with_campus_totals_and_targets(tmp_path: Path) -> None:
    invoices = build_invoices(_history_rows(), FY2027, "annual", TITLES)
    assert [(i.group, i.lines, dict(i.totals)) for i in invoices] == [
        ("crm", 3, {"USD": Decimal("3600.00")}), ("events", 1, {"USD": Decimal("360.00")})]
    written = write_invoices(invoices, tmp_path, FY2027, "annual")
    assert [path.name for path, _ in written] == [
        "licence-invoice-FY2027-annual-crm.csv", "licence-invoice-FY2027-annual-crm.xlsx",
        "licence-invoice-FY2027-annual-events.csv", "licence-invoice-FY2027-annual-events.xlsx"]
    assert all(line.passed for _, controls in written for line in controls)

    with (tmp_path / "licence-invoice-FY2027-annual-crm.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:6] == ["campus", "campus billing target", "unit billing target",
                           "licence record number", "user", "active licences"]
    table = [(r[0], r[1], r[2], r[3], r[4], r[5], r[-1]) for r in rows[1:6]]
    assert table == [
        ("north", "SPD-N-1", "U-9", "N-1", "bo", "CRM Cloud", "1200.00"),
        ("north", "SPD-N-1", "", "N-2", "ann", "CRM Cloud", "1200.00"),
        ("campus total North Campus", "SPD-N-1", "", "", "", "", "2400.00"),
        ("south", "SPD-S-2", "", "S-1", "cy", "CRM Cloud", "1200.00"),
        ("campus total South Campus", "SPD-S-2", "", "", "", "", "1200.00"),
    ]
    assert (rows[6][0], rows[6][-1]) == ("invoice total CRM", "3600.00")
    assert rows[-1][0].startswith("control OK: CRM: invoice total 3600.00 = 3 licence")

    sheet = load_workbook(tmp_path / "licence-invoice-FY2027-annual-crm.xlsx").active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "campus"
    assert (values[6][0], values[6][-1]) == ("invoice total CRM", 3600)


def test_a_campus_billed_to_two_targets_has_a_total_for_each() -> None:
    """The annual run re-run after the catalog moved North to another speedtype: the
    campus's lines are on two targets, and one total on the last would charge the new
    speedtype 2,400.00, 1,200.00 of which the old one was billed."""
    state = SubscriptionState()
    apply_all(CATALOG, state, provision("N1", "ann", date(2025, 1, 1)))
    first = bill(CATALOG, state, "annual")
    moved = licence_catalog(text=CATALOG_TEXT.replace("billing_target: SPD-N-1",
                                                      "billing_target: SPD-N-NEW"))
    apply_all(moved, state, provision("N3", "cal", date(2026, 7, 20)))
    second = bill(moved, state, "annual")
    rows = [row_from_rated(rated_to_avro(record), "usage.rated", 0, offset)
            for offset, record in enumerate([*first.charges, *second.charges])]
    (crm, _) = build_invoices(rows, FY2027, "annual", TITLES)
    totals = [(row.cells[1], row.cells[-1]) for row in crm.report.sheets[0].rows
              if str(row.cells[0]).startswith("campus total")]
    assert [(target, str(money.amount)) for target, money in totals] == [
        ("SPD-N-1", "1200.00"), ("SPD-N-NEW", "1200.00")]


def test_an_empty_run_still_gives_every_groups_invoice(tmp_path: Path) -> None:
    invoices = build_invoices([], FY2027, "true-up-june", TITLES)
    assert [(i.group, i.lines, dict(i.totals)) for i in invoices] == [
        ("crm", 0, {}), ("events", 0, {})]
    written = write_invoices(invoices, tmp_path, FY2027, "true-up-june")
    assert len(written) == 4
