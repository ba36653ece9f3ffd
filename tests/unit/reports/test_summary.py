"""The monthly summary (control report) on a hand-checked month."""

from __future__ import annotations

import io
from dataclasses import replace
from decimal import Decimal

import pytest

from reports.summary import build_summary
from reports.table import ReportError
from reports.writers import write_csv
from tests.unit.reports.sample import PERIOD, may_rows

EXPECTED_CSV = """\
line,provider,product,account_id,currency,unit_of_measure,records,quantity,\
net_amount,markup_amount,gross_amount,credit_applied,charged_amount
detail,(platform),Storage,acct-a,USD,GB,2,5,50.00,0.00,50.00,5.00,45.00
subtotal,(platform),Storage,,USD,GB,2,5,50.00,0.00,50.00,5.00,45.00
detail,(platform),VirtualMachine,acct-b,USD,hours,1,10,12.50,0.00,12.50,0.00,12.50
subtotal,(platform),VirtualMachine,,USD,hours,1,10,12.50,0.00,12.50,0.00,12.50
subtotal,(platform),,,USD,,3,,62.50,0.00,62.50,5.00,57.50
detail,acme,acme-cache,acct-b,USD,GB-month,1,5,10.00,1.50,11.50,0.00,11.50
subtotal,acme,acme-cache,,USD,GB-month,1,5,10.00,1.50,11.50,0.00,11.50
detail,acme,acme-db,acct-a,USD,instances,1,1,100.00,15.00,115.00,15.00,100.00
detail,acme,acme-db,acct-b,USD,instances,1,2,200.00,30.00,230.00,0.00,230.00
subtotal,acme,acme-db,,USD,instances,2,3,300.00,45.00,345.00,15.00,330.00
subtotal,acme,,,USD,,3,,310.00,46.50,356.50,15.00,341.50
detail,nimbus,nimbus-ai,acct-c,JPY,tokens,1,1000,1000,100,1100,0,1100
subtotal,nimbus,nimbus-ai,,JPY,tokens,1,1000,1000,100,1100,0,1100
subtotal,nimbus,,,JPY,tokens,1,1000,1000,100,1100,0,1100
total,,,,JPY,tokens,1,1000,1000,100,1100,0,1100
total,,,,USD,,6,,372.50,46.50,419.00,20.00,399.00

"control OK: records: 7 in this report, 7 in the billing history for 2024-05"
"control OK: JPY: grand total = sum of the period's billing-history rows \
(net 1000, markup 100, gross 1100, credit applied 0, charged 1100)"
control OK: JPY: net + markup = gross (1000 + 100 = 1100)
control OK: JPY: gross - credit applied = charged (1100 - 0 = 1100)
"control OK: USD: grand total = sum of the period's billing-history rows \
(net 372.50, markup 46.50, gross 419.00, credit applied 20.00, charged 399.00)"
control OK: USD: net + markup = gross (372.50 + 46.50 = 419.00)
control OK: USD: gross - credit applied = charged (419.00 - 20.00 = 399.00)
control OK: the grand totals are the revenue to record for 2024-05
"""


def test_summary_by_provider_product_and_account_with_subtotals_and_control() -> None:
    out = io.StringIO()
    controls = write_csv(build_summary(may_rows(), PERIOD, history_count=7), out)
    assert out.getvalue() == EXPECTED_CSV
    assert all(line.passed for line in controls)


def test_a_count_that_differs_from_the_history_fails_the_control() -> None:
    controls = build_summary(may_rows(), PERIOD, history_count=8).sheets[0].control()
    assert not controls[0].passed
    assert "7 in this report, 8 in the billing history" in controls[0].text
    assert not controls[-1].passed
    assert "do not record revenue" in controls[-1].text


def test_inconsistent_amounts_fail_the_control() -> None:
    rows = may_rows()
    rows[0] = replace(rows[0], charged_amount=Decimal("19.99"))  # gross 20.00, no credit
    controls = build_summary(rows, PERIOD, history_count=7).sheets[0].control()
    failed = [line.text for line in controls if not line.passed]
    assert failed[0] == "USD: gross - credit applied = charged (419.00 - 20.00 = 398.99)"


def test_an_empty_month_is_a_passing_empty_report() -> None:
    out = io.StringIO()
    controls = write_csv(build_summary([], PERIOD, history_count=0), out)
    assert out.getvalue().splitlines()[1:] == [
        "", '"control OK: records: 0 in this report, 0 in the billing history for 2024-05"',
        "control OK: the grand totals are the revenue to record for 2024-05"]
    assert all(line.passed for line in controls)


def test_rows_of_another_period_are_refused() -> None:
    with pytest.raises(ReportError, match="belongs to 2024-05, not 2024-06"):
        build_summary(may_rows(), "2024-06", history_count=7)
