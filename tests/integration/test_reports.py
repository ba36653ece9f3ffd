"""Reports from the billing history equal what was rated, on SQLite and PostgreSQL.

A real processor rates a simulated month (November 2026, the example catalog:
platform services, marketplace products of three providers, credits); hand-made
RatedUsage records of May and June 2024 share the topic (licence charges reach
the history the same way). The sink stores them all; then `rating report`
writes the summary, the provider statements and the billing export for
November. Every total is checked against usage.rated read back from Kafka,
independently of the history and of the report code.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from stream.cli import main
from stream.settings import Connections
from tests.integration.events import order_independent_mix
from tests.integration.harness import Pipeline
from tests.integration.history_helpers import (
    Backend,
    backend,
    history_sink,
    produce_rated,
    stored_count,
    varied_values,
)

pytestmark = pytest.mark.integration
__all__ = ["backend"]  # the parametrized fixture (sqlite, postgres), imported for pytest

PERIOD = "2026-11"
AMOUNTS = ("net_amount", "markup_amount", "gross_amount", "credit_applied", "charged_amount")


@pytest.fixture(scope="module")
def rated_month(connections: Connections,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pipeline, list[Any]]]:
    """One processor run for the module: (pipeline, rated values read back from Kafka)."""
    pipeline = Pipeline(connections, tmp_path_factory.mktemp("reports"))
    try:
        pipeline.load_catalog()
        pipeline.publish(order_independent_mix(1500, seed=5))
        pipeline.start_processor("0")
        pipeline.wait_caught_up(timeout_s=180)
        produce_rated(pipeline, varied_values("other-period", 60))
        yield pipeline, [record.value for record in pipeline.rated()]
    finally:
        pipeline.stop_all()


def kafka_totals(values: list[Any], key: str) -> dict[tuple[str, str], dict[str, Decimal]]:
    """(group, currency) -> amount sums and count, from the rated records themselves."""
    totals: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(
        lambda: defaultdict(Decimal))
    for value in values:
        group = "" if key == "" else (value[key] or "(platform)")
        sums = totals[(group, value["currency"])]
        sums["records"] += 1
        for name in AMOUNTS:
            sums[name] += Decimal(value[name])
    return totals


def read_table(path: Path) -> list[dict[str, str]]:
    """The CSV's table, without the control lines under it."""
    with path.open(newline="") as f:
        lines = f.read().split("\n\n")[0]
    return list(csv.DictReader(lines.splitlines()))


def test_report_totals_equal_the_billing_history_of_the_period(
        rated_month: tuple[Pipeline, list[Any]], backend: Backend, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    pipeline, rated = rated_month
    month = [value for value in rated if value["billing_period"] == PERIOD]
    providers = {value["provider"] for value in month} - {None}
    assert len(month) > 500
    assert providers == {"acme", "bluefin", "nimbus"}
    assert any(value["provider"] is None for value in month)
    assert any(Decimal(value["credit_applied"]) > 0 for value in month)

    with history_sink(pipeline, backend.url) as sink:
        sink.wait_until(lambda: stored_count(backend) >= len(rated), "the history",
                        timeout_s=120)
    assert stored_count(backend) == len(rated)

    out = tmp_path / "reports"
    out.mkdir()
    for kind in ("summary", "provider", "export"):
        assert main(["report", kind, "--period", PERIOD, "--history-url", backend.url,
                     "--out", str(out)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert f"control OK: records: {len(month)} in this report, {len(month)} in the billing " \
           f"history for {PERIOD}" in printed
    assert "control FAILED" not in printed

    # Summary: the grand total per currency is the period's sum, record for record.
    by_currency = kafka_totals(month, "")
    summary = read_table(out / f"summary-{PERIOD}.csv")
    totals = {line["currency"]: line for line in summary if line["line"] == "total"}
    assert set(totals) == {currency for _, currency in by_currency}
    for (_, currency), sums in by_currency.items():
        assert int(totals[currency]["records"]) == sums["records"]
        for name in AMOUNTS:
            assert Decimal(totals[currency][name]) == sums[name], (currency, name)
    details = [line for line in summary if line["line"] == "detail"]
    assert sum(int(line["records"]) for line in details) == len(month)

    # Provider statements: each provider's total at net.
    by_provider = kafka_totals(month, "provider")
    statements = read_table(out / f"provider-{PERIOD}.csv")
    due = {(line["provider"], line["currency"]): line for line in statements
           if line["line"] == "total"}
    assert set(due) == {key for key in by_provider if key[0] != "(platform)"}
    for key, line in due.items():
        assert Decimal(line["net_amount"]) == by_provider[key]["net_amount"], key

    # Billing export: one line per charge of the month, gross and charged exactly as rated.
    export = read_table(out / f"billing-export-{PERIOD}.csv")
    rated_by_id = {value["event_id"]: value for value in month}
    assert sorted(line["charge_id"] for line in export) == sorted(rated_by_id)
    for line in export:
        value = rated_by_id[line["charge_id"]]
        assert (line["gross_amount"], line["credit_applied"], line["charged_amount"],
                line["quantity"], line["account_id"]) == (
            value["gross_amount"], value["credit_applied"], value["charged_amount"],
            value["quantity"], value["account_id"])

    # The same summary as a workbook: totals as numbers equal to the exact sums.
    assert main(["report", "summary", "--period", PERIOD, "--history-url", backend.url,
                 "--out", str(out / "summary.xlsx")]) == 0
    sheet = load_workbook(out / "summary.xlsx").worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    header = list(rows[0])
    for row in rows[1:]:
        if row[0] == "total":
            sums = by_currency[("", str(row[header.index("currency")]))]
            gross = row[header.index("gross_amount")]
            assert Decimal(str(gross)) == sums["gross_amount"]
