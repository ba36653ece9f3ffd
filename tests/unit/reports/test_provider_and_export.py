"""Provider statements (net) and the BRM billing export (gross) on the hand-checked month."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from reports.export import COLUMNS as EXPORT_COLUMNS
from reports.export import build_billing_export
from reports.provider import build_provider_statements
from reports.table import PLATFORM
from reports.writers import write_csv
from tests.unit.reports.sample import PERIOD, may_rows


def test_each_provider_statement_totals_what_it_invoices_at_net() -> None:
    out = io.StringIO()
    report = build_provider_statements(may_rows(), PERIOD)
    controls = write_csv(report, out)
    assert [sheet.title for sheet in report.sheets] == ["acme", "nimbus"]  # not the platform
    assert out.getvalue() == """\
line,provider,product,account_id,currency,unit_of_measure,records,quantity,net_amount
detail,acme,acme-cache,acct-b,USD,GB-month,1,5,10.00
subtotal,acme,acme-cache,,USD,GB-month,1,5,10.00
detail,acme,acme-db,acct-a,USD,instances,1,1,100.00
detail,acme,acme-db,acct-b,USD,instances,1,2,200.00
subtotal,acme,acme-db,,USD,instances,2,3,300.00
total,acme,,,USD,,3,,310.00
detail,nimbus,nimbus-ai,acct-c,JPY,tokens,1,1000,1000
subtotal,nimbus,nimbus-ai,,JPY,tokens,1,1000,1000
total,nimbus,,,JPY,tokens,1,1000,1000

control OK: acme invoices 310.00 USD at net for 2024-05 (records: 3)
control OK: nimbus invoices 1000 JPY at net for 2024-05 (records: 1)
"""
    assert len(controls) == 2


def test_one_provider_or_the_platform_on_request() -> None:
    only = build_provider_statements(may_rows(), PERIOD, "nimbus")
    assert [sheet.title for sheet in only.sheets] == ["nimbus"]
    platform = build_provider_statements(may_rows(), PERIOD, PLATFORM)
    (sheet,) = platform.sheets
    totals = [row.cells for row in sheet.rows if row.level == "total"]
    assert totals == [("total", PLATFORM, "", "", "USD", "", 3, None,
                       totals[0][8])]
    assert str(totals[0][8].amount) == "62.50"  # type: ignore[union-attr]
    nobody = build_provider_statements(may_rows(), PERIOD, "nobody")
    assert [line.text for line in nobody.sheets[0].control()] == [
        "nobody: no usage in 2024-05, nothing to invoice"]


def test_the_billing_export_has_one_gross_line_per_charge() -> None:
    out = io.StringIO()
    report = build_billing_export(may_rows(), PERIOD)
    controls = write_csv(report, out)
    lines = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(lines[0]) == EXPORT_COLUMNS
    assert len(lines) == 7  # the plain table only: no control lines in the CSV
    assert lines[3] == {
        "billing_period": "2024-05", "charge_id": "ev-00003",
        "event_time": "2024-05-01T00:03:00.000Z", "account_id": "acct-a",
        "account_kind": "tenant", "provider": "acme", "product": "acme-db",
        "service_item_type": "MarketplaceApp", "service_item_id": "disk-3",
        "operation": "Create", "rate_code": "DISK-GB", "unit_of_measure": "instances",
        "quantity": "1", "currency": "USD", "gross_amount": "115.00",
        "credit_applied": "15.00", "charged_amount": "100.00", "requester": "alice",
        "home_ou": "eng/platform", "catalog_version": "v1",
        "history_position": "usage.rated:0:3"}
    assert (lines[0]["provider"], lines[0]["product"]) == (PLATFORM, "Storage")
    usd = [line for line in lines if line["currency"] == "USD"]
    assert sum(Decimal(line["gross_amount"]) for line in usd) == Decimal("419.00")
    assert sum(Decimal(line["charged_amount"]) for line in usd) == Decimal("399.00")
    assert [c.text for c in controls] == [
        "billing export layout v1, 2024-05: 7 charges",
        "JPY: gross 1100, credit applied 0, charged 1100 (charges: 1)",
        "USD: gross 419.00, credit applied 20.00, charged 399.00 (charges: 6)"]


def test_the_export_for_one_provider() -> None:
    out = io.StringIO()
    write_csv(build_billing_export(may_rows(), PERIOD, "acme"), out)
    ids = [line["charge_id"] for line in csv.DictReader(io.StringIO(out.getvalue()))]
    assert ids == ["ev-00003", "ev-00004", "ev-00005"]
