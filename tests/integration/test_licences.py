"""Licences end to end on the real broker and PostgreSQL: licence changes on licence.events,
`rating process --stages subscriptions`, `rating sink billing-history`, `rating billing-run`.

The example catalog (config/catalog/licences.yaml): Salesforce Sales Cloud 125.00 USD a
month, Marketing Cloud 60.00, Cvent 35.00; fiscal year July-June; proration by month.
FY2027 = July 2026 - June 2027. Every amount below is checked by hand.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from processors.licences.model import LicenceAction
from sinks.history import HistoryFilter, HistoryRow, open_history_store
from stream.licence_publisher import LicencePublisher, new_licence_event
from stream.settings import REPO_ROOT
from tests.integration.harness import Pipeline

pytestmark = pytest.mark.integration
P, D, T = LicenceAction.PROVISIONED, LicenceAction.DEPROVISIONED, LicenceAction.TRANSFERRED
SALES, MARKETING, CVENT = "sf-sales-cloud", "sf-marketing-cloud", "cvent-events"

# Before FY2027: what the annual run bills (12 months each), and one licence gone in June.
BEFORE_JULY = [
    (P, "boulder", "B-1", "alice", SALES, date(2025, 2, 1)),  # 12 x 125.00 = 1500.00
    (P, "boulder", "B-2", "bob", MARKETING, date(2026, 3, 10)),  # 12 x 60.00 = 720.00
    (P, "boulder", "B-3", "carol", CVENT, date(2024, 9, 1)),  # 12 x 35.00 = 420.00
    (P, "denver", "D-1", "dan", SALES, date(2025, 11, 11)),  # 1500.00
    (P, "uccs", "U-1", "uma", CVENT, date(2025, 6, 30)),
    (D, "uccs", "U-1", "uma", CVENT, date(2026, 6, 30)),  # deprovisioned: not billed
]
ANNUAL = {"licence:FY2027:annual:boulder:B-1": "1500.00",
          "licence:FY2027:annual:boulder:B-2": "720.00",
          "licence:FY2027:annual:boulder:B-3": "420.00",
          "licence:FY2027:annual:denver:D-1": "1500.00"}
# August - December: transfers, net new licences, one provisioned and transferred.
AUTUMN = [
    (T, "boulder", "B-1", "erin", SALES, date(2026, 9, 1)),  # a transfer: not net new
    (P, "boulder", "B-4", "frank", SALES, date(2026, 9, 15)),  # net new: Sep-Jun, 10 months
    (T, "boulder", "B-4", "gus", SALES, date(2026, 11, 2)),  # ... billed once, to gus
    (P, "denver", "D-2", "hana", CVENT, date(2026, 12, 1)),  # net new: Dec-Jun, 7 x 35.00
    (T, "uccs", "U-2", "ivan", MARKETING, date(2026, 10, 5)),  # a new record from a transfer
]
JANUARY = {"licence:FY2027:true-up-january:boulder:B-4": "1250.00",
           "licence:FY2027:true-up-january:denver:D-2": "245.00"}


@pytest.fixture
def history_url(postgres_dsn: str) -> Iterator[str]:
    """A billing history of its own: a fresh PostgreSQL schema first on the search path."""
    schema = f"lic_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in postgres_dsn else "?"
    try:
        yield f"{postgres_dsn}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def _publish(pipeline: Pipeline, changes: list[tuple[LicenceAction, str, str, str, str,
                                                     date]]) -> None:
    with LicencePublisher.connect(pipeline.connections,
                                  pipeline.settings.topics.subscriptions.name) as publisher:
        for action, campus, record, user, product, on in changes:
            publisher.publish(new_licence_event(action=action, campus=campus,
                                                record_number=record, user=user,
                                                product=product, effective_date=on,
                                                source="test"))


class _Command:
    """A `rating` command in a child process with the pipeline's topics and group."""

    def __init__(self, pipeline: Pipeline, *args: str):
        self.log = pipeline.tmp_dir / f"{args[0]}-{uuid.uuid4().hex[:6]}.log"
        self._out = self.log.open("wb")
        self.popen = subprocess.Popen([sys.executable, "-m", "stream.cli", *args],
                                      cwd=REPO_ROOT, env=pipeline.env(), stdout=self._out,
                                      stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(30)
        self._out.close()


def _billing_run(pipeline: Pipeline, run: str, out: Path, url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "billing-run", "--fiscal-year", "2027", "--type",
         run, "--out", str(out), "--history-url", url, "--timeout", "120"],
        cwd=REPO_ROOT, env=pipeline.env(), capture_output=True, text=True, timeout=200,
        check=False)
    print(done.stdout)  # shown when the test fails
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _history(url: str, run: str) -> list[HistoryRow]:
    store = open_history_store(url)
    try:
        return list(store.iter_rows(HistoryFilter(source=f"licences:FY2027:{run}")))
    finally:
        store.close()


def _invoice_lines(out: Path, run: str, group: str) -> list[list[str]]:
    with (out / f"licence-invoice-FY2027-{run}-{group}.csv").open() as handle:
        return list(csv.reader(handle))


def _invoice_total(lines: list[list[str]]) -> Decimal:
    return sum((Decimal(line[-1]) for line in lines
                if line and line[0].startswith("invoice total")), Decimal(0))


def test_licences_are_billed_once_per_year_with_prorated_true_ups(
        pipeline: Pipeline, history_url: str, tmp_path: Path) -> None:
    pipeline.load_catalog()
    _publish(pipeline, BEFORE_JULY)
    processor = pipeline.start_processor("0", "--stages", "subscriptions")
    sink = _Command(pipeline, "sink", "billing-history", "--url", history_url)
    try:
        annual_out = tmp_path / "annual"
        printed = _billing_run(pipeline, "annual", annual_out, history_url)
        assert "billed now: 4 licences (4140.00 USD)" in printed
        annual = _history(history_url, "annual")
        assert {row.event_id: format(row.charged_amount, "f") for row in annual} == ANNUAL
        boulder = next(row for row in annual if row.service_item_id == "B-1")
        assert (boulder.requester, boulder.account_id, boulder.billing_period,
                boulder.rate_code, boulder.quantity, boulder.memo["billing_target"]) == (
            "alice", "acct-campus-boulder", "2026-07", "LIC-SF-SALES", Decimal(12),
            "SPD-11000101")
        # The spreadsheets: one per product group, totals equal to the billing history.
        sales = _invoice_lines(annual_out, "annual", "salesforce")
        cvent = _invoice_lines(annual_out, "annual", "cvent")
        assert _invoice_total(sales) == Decimal("3720.00")
        assert _invoice_total(cvent) == Decimal("420.00")
        assert _invoice_total(sales) + _invoice_total(cvent) == sum(
            (row.charged_amount for row in annual), Decimal(0))
        assert (annual_out / "licence-invoice-FY2027-annual-salesforce.xlsx").is_file()
        assert [line[:5] for line in sales[1:3]] == [
            ["boulder", "SPD-11000101", "", "B-1", "alice"],
            ["boulder", "SPD-11000101", "", "B-2", "bob"]]

        # A crash: the state comes back from licence.changelog.
        processor.kill()
        processor = pipeline.start_processor("0", "--stages", "subscriptions")
        # Running the annual again bills nothing twice; the invoices are the same.
        again = _billing_run(pipeline, "annual", tmp_path / "annual-again", history_url)
        assert "billed now: 0 licences; already paid this fiscal year: 4" in again
        assert len(_history(history_url, "annual")) == 4
        assert _invoice_lines(tmp_path / "annual-again", "annual", "salesforce") == sales

        _publish(pipeline, AUTUMN)
        january_out = tmp_path / "january"
        printed = _billing_run(pipeline, "true-up-january", january_out, history_url)
        assert "billed now: 2 licences (1495.00 USD)" in printed
        january = _history(history_url, "true-up-january")
        assert {row.event_id: format(row.charged_amount, "f") for row in january} == JANUARY
        frank_then_gus = next(row for row in january if row.service_item_id == "B-4")
        assert (frank_then_gus.requester, frank_then_gus.quantity,
                frank_then_gus.memo["provisioned_on"], frank_then_gus.memo["transferred"]) == (
            "gus", Decimal(10), "2026-09-15", "yes")
        assert _invoice_total(_invoice_lines(january_out, "true-up-january", "salesforce")) == (
            Decimal("1250.00"))
        assert _invoice_total(_invoice_lines(january_out, "true-up-january", "cvent")) == (
            Decimal("245.00"))
        rerun = _billing_run(pipeline, "true-up-january", tmp_path / "jan-2", history_url)
        assert "billed now: 0 licences" in rerun
        for path in sorted(tmp_path.glob("january/*.csv")):
            print(path.name, path.read_text(), sep="\n")
    finally:
        sink.stop()
    # On the broker too: every licence charge exactly once, nothing else rated.
    rated = [record.value for record in pipeline.rated()]
    assert sorted(value["event_id"] for value in rated) == sorted([*ANNUAL, *JANUARY])
    assert pipeline.dead_letters() == []


def test_a_bad_licence_change_is_dead_lettered_with_its_reason(pipeline: Pipeline) -> None:
    pipeline.load_catalog()
    _publish(pipeline, [(P, "mars", "M-1", "marvin", SALES, date(2026, 8, 1)),
                        (P, "boulder", "B-9", "zoe", "sf-service-cloud", date(2026, 8, 1)),
                        (P, "boulder", "B-1", "alice", SALES, date(2025, 2, 1)),
                        (D, "boulder", "B-1", "alice", SALES, date(2025, 1, 1))])
    processor = pipeline.start_processor("0", "--stages", "subscriptions")
    letters: list[tuple[str, str]] = []
    deadline = time.monotonic() + 60
    while len(letters) < 3 and time.monotonic() < deadline:
        processor.check_alive()
        time.sleep(0.5)
        letters = [(r.value["reason_code"], r.value["stage"]) for r in pipeline.dead_letters()]
    assert sorted(letters) == [("INVALID_EVENT", "subscriptions"),
                                        ("NO_ACCOUNT", "subscriptions"),
                                        ("UNKNOWN_PRODUCT", "subscriptions")]
