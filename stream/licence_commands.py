"""`rating billing-run` and `rating licences produce|invoices`: the licence CLI.

billing-run, step by step (docs/licences.md):
 1. check the run against the catalog the processors use (the published version);
 2. publish one billing-run request into every partition of licence.events;
 3. wait for every partition's report on licence.runs (written in the same
    transaction as its charges, so the charges are on usage.rated by then);
 4. wait until the billing-history sink has stored every charge of the run;
 5. write the invoices (one per product group, CSV and XLSX) from the history,
    and check their totals against the history's.
Running it again bills nothing twice: every licence is billed at most once per
fiscal year (the stage's paid marks); the invoices are rewritten from the history.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, TopicPartition

from processors.catalog import Catalog, load_catalog_dir
from processors.catalog.licence_model import LicenceCatalog
from processors.errors import EventRejected, RatingError
from processors.licences.billing import billing_date, resolve_run, run_source
from processors.licences.fiscal import FiscalYear
from processors.licences.model import BillingRunRequest, LicenceAction, LicenceEvent
from processors.money import ZERO
from stream.catalog_feed import CatalogFeed
from stream.cli_types import fiscal_year
from stream.clients import admin_client, reading_consumer
from stream.licence_publisher import LicencePublisher, new_licence_event
from stream.readback import end_offsets
from stream.run_reports import RunReport
from stream.settings import Connections, Settings, connections_from_env, load_settings
from stream.topics import ensure_topics

if TYPE_CHECKING:  # serving sits on top: the history and reports are imported when used
    from sinks.history.model import BillingHistoryStore, HistoryRow

ACTIONS = {"provisioned": LicenceAction.PROVISIONED,
           "deprovisioned": LicenceAction.DEPROVISIONED,
           "transferred": LicenceAction.TRANSFERRED}
CATALOG_READ_TIMEOUT_S = 15.0
POLL_S = 0.5


def add_licence_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "billing-run", help="bill licences for a fiscal year (annual or true-up) and write the "
        "invoices; running it again bills nothing twice",
        description="Needs `rating process --stages subscriptions` and `rating sink "
        "billing-history` running. Exit 2 with one sentence when a licence could not be "
        "priced (it is on usage.dlq and stays unbilled: fix the catalog, run again).")
    run.add_argument("--fiscal-year", type=fiscal_year, required=True,
                     help="named by the year it ends in: 2027 = July 2026 - June 2027")
    run.add_argument("--type", dest="run", required=True, metavar="RUN",
                     help="a run of the catalog's licence_billing: annual, true-up-january, "
                     "true-up-june")
    _invoice_options(run)
    run.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                     help="how long to wait for the processors and the history (default 120)")
    run.set_defaults(handler=billing_run)

    licences = sub.add_parser("licences", help="publish licence changes, or rewrite a run's "
                              "invoices from the billing history")
    actions = licences.add_subparsers(dest="licence_command", required=True, metavar="ACTION")
    produce = actions.add_parser("produce", help="publish licence changes (JSON file or flags)")
    produce.add_argument("--file", type=Path, help="JSON: one change object or a list (fields "
                         "as the flags: action, campus, record_number, user, product, "
                         "effective_date, previous_user, billing_target, unit_billing_target)")
    produce.add_argument("--action", choices=sorted(ACTIONS))
    produce.add_argument("--campus")
    produce.add_argument("--record-number")
    produce.add_argument("--user")
    produce.add_argument("--product")
    produce.add_argument("--effective-date", help="YYYY-MM-DD")
    produce.add_argument("--previous-user")
    produce.add_argument("--billing-target")
    produce.add_argument("--unit-billing-target")
    produce.add_argument("--source", default="rating-cli")
    produce.set_defaults(handler=licences_produce)
    invoices = actions.add_parser("invoices", help="write a billing run's invoices from the "
                                  "billing history (bills nothing)")
    invoices.add_argument("--fiscal-year", type=fiscal_year, required=True)
    invoices.add_argument("--type", dest="run", required=True, metavar="RUN")
    invoices.add_argument("--dir", type=Path, default=None,
                          help="catalog folder (default: catalog_dir from the settings)")
    _invoice_options(invoices)
    invoices.set_defaults(handler=licences_invoices)


def _invoice_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("invoices"),
                        help="folder for the invoice files (default: %(default)s)")
    parser.add_argument("--history-url", default=None,
                        help="billing-history store (default: sinks.history_url, "
                        "RATING_HISTORY_URL)")


# -- billing-run -------------------------------------------------------------------------

def billing_run(args: argparse.Namespace) -> int:
    settings = load_settings(args.settings)
    return bill_licences(settings, connections_from_env(), fiscal_year=args.fiscal_year,
                         run=args.run, out_dir=args.out,
                         history_url=args.history_url or settings.sinks.history_url,
                         timeout_s=args.timeout)


def bill_licences(settings: Settings, connections: Connections, *, fiscal_year: int, run: str,
                  out_dir: Path, history_url: str, timeout_s: float,
                  source: str = "rating-cli") -> int:
    """Steps 1-5 above (`rating billing-run`, and `rating demo`); prints what it did."""
    from sinks.history import open_history_store
    from sinks.history.urls import redact

    topics = settings.topics
    ensure_topics(admin_client(connections), topics)
    catalog = _published_catalog(settings, connections)
    request = BillingRunRequest(request_id=str(uuid.uuid4()), fiscal_year=fiscal_year,
                                run=run, event_time=datetime.now(UTC), source=source)
    licences, year = _checked_run(request, catalog)
    _refuse_far_ahead(request, licences, year)
    # Before anything is billed: a mistyped history path must fail now, not after the
    # run, waiting on an empty history it created.
    store = open_history_store(history_url, must_exist=True)
    try:
        since = end_offsets(connections, topics.licence_runs.name)
        with LicencePublisher.connect(connections, topics.subscriptions.name) as publisher:
            landed = publisher.request_run(request)
        print(f"billing run {year.label} {request.run} requested ({request.request_id}) in "
              f"{len(landed)} partitions of {topics.subscriptions.name}")
        deadline = time.monotonic() + timeout_s
        reports = wait_for_reports(connections, topics.licence_runs.name, request.request_id,
                                   set(landed), since, deadline)
        refused = [report.error for report in reports if report.error]
        if refused:
            raise RatingError(f"the processors refused the run: {refused[0]}")
        billed = {charge["event_id"] for report in reports for charge in report.billed}
        _print_outcome(reports)
        rows = wait_for_history(store, year, request.run, billed, deadline, redact(history_url))
        _write(store, rows, licences, year, request.run, out_dir)
    finally:
        store.close()
    failed = [charge for report in reports for charge in report.failed]
    if failed:
        raise RatingError(f"{len(failed)} licences could not be priced and stay unbilled (on "
                          f"usage.dlq), e.g. {failed[0]['event_id']}: {failed[0]['message']}; "
                          "fix the catalog and run again: nothing is billed twice")
    return 0


def _published_catalog(settings: Settings, connections: Connections) -> Catalog:
    feed = CatalogFeed(reading_consumer(connections), settings.topics.catalog.name)
    try:
        return feed.wait_for_catalog(timeout_s=CATALOG_READ_TIMEOUT_S)
    finally:
        feed.close()


def _checked_run(request: BillingRunRequest,
                 catalog: Catalog) -> tuple[LicenceCatalog, FiscalYear]:
    try:
        licences, _ = resolve_run(request, catalog)
    except EventRejected as rejection:
        raise RatingError(rejection.message.split(": ", 1)[-1]) from None
    return licences, FiscalYear(request.fiscal_year, licences.fiscal_year_start_month)


RUN_AHEAD_DAYS = 31  # how early a run may be requested before its billing date


def _refuse_far_ahead(request: BillingRunRequest, licences: LicenceCatalog,
                      year: FiscalYear) -> None:
    """A run more than a month before its billing date is refused here, before it is
    requested: a mistyped --fiscal-year (2029 for 2027) would bill every licence for a
    year to come and close the late true-ups of the years two before it for good."""
    bills_as_of = billing_date(year, licences.runs[request.run])
    today = request.event_time.date()
    if bills_as_of > today + timedelta(days=RUN_AHEAD_DAYS):
        raise RatingError(f"--fiscal-year {request.fiscal_year} --type {request.run}: the run "
                          f"bills as of {bills_as_of}, more than {RUN_AHEAD_DAYS} days after "
                          f"today ({today}); a mistyped year? Nothing was requested")


def wait_for_reports(connections: Connections, topic: str, request_id: str,
                     partitions: set[int], since: dict[int, int],
                     deadline: float) -> list[RunReport]:
    """One report per partition of the subscriptions topic for ``request_id``."""
    consumer = reading_consumer(connections, **{"enable.partition.eof": False})
    found: dict[int, RunReport] = {}
    try:
        report_partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, since.get(p, -2)) for p in report_partitions])
        while set(found) != partitions and time.monotonic() < deadline:
            message = consumer.poll(POLL_S)
            if message is None:
                continue
            error: KafkaError | None = message.error()
            if error is not None or message.key() != request_id.encode():
                continue
            report = RunReport.decode(message.value())
            found[report.origin.partition] = report
    finally:
        consumer.close()
    missing = sorted(partitions - set(found))
    if missing:
        raise RatingError(f"no report for partitions {missing} of the billing run in time: is "
                          "`rating process --stages subscriptions` running? (the run is "
                          "published: it will be billed when it is; run again to get the "
                          "invoices, nothing is billed twice)")
    return [found[p] for p in sorted(found)]


def wait_for_history(store: BillingHistoryStore, year: FiscalYear, run: str,
                     billed: set[str], deadline: float, where: str) -> list[HistoryRow]:
    """The run's rows once every charge just billed is stored."""
    from reports.licence_invoices import run_rows

    while True:
        rows = run_rows(store, year, run)
        missing = billed - {row.event_id for row in rows}
        if not missing:
            return rows
        if time.monotonic() > deadline:
            raise RatingError(f"{len(missing)} charges of the run are not in the billing "
                              f"history at {where} in time: is `rating sink billing-history` "
                              "running? (they are on usage.rated; run `rating licences "
                              "invoices` once they are stored)")
        time.sleep(POLL_S)


def _print_outcome(reports: Iterable[RunReport]) -> None:
    listed = list(reports)
    totals: dict[str, Decimal] = {}
    for report in listed:
        for charge in report.billed:
            currency = charge["currency"]
            totals[currency] = totals.get(currency, ZERO) + Decimal(charge["amount"])
    billed = sum(len(report.billed) for report in listed)
    amounts = ", ".join(f"{amount} {currency}" for currency, amount in sorted(totals.items()))
    print(f"billed now: {_licences(billed)}{f' ({amounts})' if amounts else ''}; already paid "
          f"this fiscal year: {sum(r.already_paid for r in listed)}; could not be priced: "
          f"{sum(len(r.failed) for r in listed)}")


def _write(store: BillingHistoryStore, rows: list[HistoryRow], licences: LicenceCatalog,
           year: FiscalYear, run: str, out_dir: Path) -> None:
    from reports.licence_invoices import build_invoices, run_rows, write_invoices

    titles = {group.name: group.title for group in licences.groups.values()}
    invoices = build_invoices(rows, year, run, titles)
    for path, controls in write_invoices(invoices, out_dir, year, run):
        print(f"wrote {path}")
        for line in controls:
            if not line.passed:
                raise RatingError(f"{path}: control check failed: {line.text}")
    invoiced: dict[str, Decimal] = {}
    for invoice in invoices:
        amounts = ", ".join(f"{amount} {cur}" for cur, amount in invoice.totals.items())
        print(f"  {invoice.title}: {_licences(invoice.lines)}{f', {amounts}' if amounts else ''}")
        for cur, amount in invoice.totals.items():
            invoiced[cur] = invoiced.get(cur, ZERO) + amount
    history = _history_totals(run_rows(store, year, run))  # a second, independent read
    if invoiced != history:
        raise RatingError(f"invoice totals {invoiced} differ from the billing history's "
                          f"{history} for {run_source(year, run)}")
    print(f"control OK: invoices total the billing history of {run_source(year, run)}: "
          + (", ".join(f"{amount} {cur}" for cur, amount in sorted(history.items())) or "0"))


def _licences(count: int) -> str:
    return f"{count} licence{'' if count == 1 else 's'}"


def _history_totals(rows: Iterable[HistoryRow]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row.currency] = totals.get(row.currency, ZERO) + row.charged_amount
    return totals


# -- licences invoices / produce ---------------------------------------------------------

def licences_invoices(args: argparse.Namespace) -> int:
    from reports.licence_invoices import run_rows
    from sinks.history import open_history_store

    settings = load_settings(args.settings)
    catalog = load_catalog_dir(args.dir or settings.catalog_dir)
    request = BillingRunRequest("invoices", args.fiscal_year, args.run, datetime.now(UTC),
                                "rating-cli")
    licences, year = _checked_run(request, catalog)
    url = args.history_url or settings.sinks.history_url
    store = open_history_store(url, must_exist=True)  # a typo must not invoice an empty history
    try:
        _write(store, run_rows(store, year, args.run), licences, year, args.run, args.out)
    finally:
        store.close()
    return 0


def licences_produce(args: argparse.Namespace) -> int:
    settings, connections = load_settings(args.settings), connections_from_env()
    events = (_events_from_file(args.file, args.source) if args.file is not None
              else [_event_from_flags(args)])
    with LicencePublisher.connect(connections, settings.topics.subscriptions.name) as publisher:
        for event in events:
            publisher.publish(event)
    print(f"published {len(events)} licence changes to {settings.topics.subscriptions.name}")
    return 0


def _event_from_flags(args: argparse.Namespace) -> LicenceEvent:
    missing = [flag for flag in ("action", "campus", "record_number", "user", "product",
                                 "effective_date") if not getattr(args, flag)]
    if missing:
        raise RatingError(f"missing --{missing[0].replace('_', '-')} (or give --file)")
    return _event({name: getattr(args, name) for name in (
        "action", "campus", "record_number", "user", "product", "effective_date",
        "previous_user", "billing_target", "unit_billing_target")}, args.source)


def _events_from_file(path: Path, source: str) -> list[LicenceEvent]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RatingError(f"{path}: cannot read licence changes: {exc}") from None
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise RatingError(f"{path}: no licence changes in the file")
    events = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise RatingError(f"{path}: item {index} is not an object")
        try:
            events.append(_event(item, str(item.get("source") or source)))
        except RatingError as exc:
            raise RatingError(f"{path}: item {index}: {exc}") from None
    return events


def _event(fields: dict[str, Any], source: str) -> LicenceEvent:
    action = ACTIONS.get(str(fields.get("action", "")).lower().removeprefix("licence_"))
    if action is None:
        raise RatingError(f"action must be one of {sorted(ACTIONS)}, got "
                          f"{fields.get('action')!r}")
    try:
        effective = date.fromisoformat(str(fields.get("effective_date")))
    except ValueError as exc:
        raise RatingError(f"effective_date must be a date, YYYY-MM-DD, got "
                          f"{fields.get('effective_date')!r} ({exc})") from None
    return new_licence_event(
        action=action, campus=str(fields.get("campus") or ""),
        record_number=str(fields.get("record_number") or ""), user=str(fields.get("user") or ""),
        product=str(fields.get("product") or ""), effective_date=effective, source=source,
        previous_user=fields.get("previous_user"), billing_target=fields.get("billing_target"),
        unit_billing_target=fields.get("unit_billing_target"),
        event_id=fields.get("event_id"))
