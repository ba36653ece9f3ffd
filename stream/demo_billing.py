"""The billing half of `make run`: what the sinks stored, reported and checked.

- The stores must belong to this Kafka: the default billing history is a file in
  the stack folder that outlives `rating stack down`, which deletes Kafka's data.
- The month's summary report is written (CSV and XLSX) from the billing history;
  its control check proves the report equals the history, and the Redis
  aggregates, written by another sink on their own, must equal its grand totals.
- An annual licence billing run over a handful of example licences writes the
  invoices (`rating billing-run`'s own code, stream/licence_commands.py).

An entry point like the CLI: it sits on top of sinks/ and reports/.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from processors.catalog import Catalog
from processors.catalog.licence_model import RunKind
from processors.errors import RatingError
from processors.licences.fiscal import FiscalYear
from processors.licences.model import LicenceAction, LicenceEvent
from reports.command import build_report, output_path
from reports.summary import COLUMNS
from reports.table import SUBTOTAL, TOTAL, ControlLine, Money, Report
from reports.writers import control_text, csv_cell, write_csv, write_xlsx
from sinks.aggregate_layout import DEFAULT_PREFIX, read_period, sum_by_currency
from sinks.aggregates import AggregatesStore
from sinks.history import open_history_store
from sinks.history.model import BillingHistoryStore
from sinks.history.urls import redact, sqlite_path
from sinks.quota_view import redis_client
from stream import stack as local_stack
from stream.licence_commands import bill_licences
from stream.licence_publisher import LicencePublisher, new_licence_event
from stream.readback import end_offsets
from stream.settings import Connections, Settings

DEMO_LICENCES = 6
LICENCE_RUN_TIMEOUT_S = 60.0
SOURCE = "rating-demo"
# Money columns of the summary, in the order the aggregates' Totals carry them.
AMOUNTS = ("net_amount", "markup_amount", "gross_amount", "credit_applied", "charged_amount")
SHOWN = ("line", "provider", "currency", "records", "net_amount", "gross_amount",
         "charged_amount")


# -- the stores belong to this Kafka ----------------------------------------------------

def stale_offsets(stored: Mapping[int, int], ends: Mapping[int, int],
                  topic_created: bool) -> str | None:
    """Why offsets a store keeps cannot be of this topic, or None when they can be."""
    if not stored:
        return None
    if topic_created:
        return "the topic was just created"
    beyond = {p: o for p, o in sorted(stored.items()) if o > ends.get(p, 0)}
    if beyond:
        return f"stored next offsets {beyond} lie beyond the topic's end"
    return None


def check_sink_stores(connections: Connections, topic: str, history_url: str,
                      topic_created: bool) -> str | None:
    """Raise unless both stores can follow ``topic`` from where they are; a history file of
    an earlier stack in the stack folder is deleted (returns a note saying so)."""
    ends = end_offsets(connections, topic)
    client = redis_client(connections.redis_url)
    try:
        stale = stale_offsets(AggregatesStore(client, topic).stored_offsets(topic), ends,
                              topic_created)
    finally:
        client.close()
    if stale is not None:
        raise RatingError(f"Redis holds aggregates of an earlier {topic} ({stale}): restart "
                          "the stack (`make down`, then `make run`)")
    store = open_history_store(history_url)
    try:
        stale = stale_offsets(store.stored_offsets(topic), ends, topic_created)
    finally:
        store.close()
    if stale is None:
        return None
    path = _file_in_stack_folder(history_url)
    if path is None:
        raise RatingError(f"the billing history {redact(history_url)} was written against "
                          f"another {topic} ({stale}): point sinks.history_url "
                          "(RATING_HISTORY_URL) at an empty history")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return (f"the billing history {path} was written against an earlier stack ({stale}): "
            "started afresh")


def _file_in_stack_folder(url: str) -> Path | None:
    """The SQLite file of ``url`` when it lies in the stack folder (runtime state)."""
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return None
    path = Path(sqlite_path(url)).resolve()
    return path if path.is_relative_to(local_stack.state_dir()) else None


def aggregate_offsets(connections: Connections, topic: str) -> dict[int, int]:
    client = redis_client(connections.redis_url)
    try:
        return AggregatesStore(client, topic).stored_offsets(topic)
    finally:
        client.close()


# -- the summary report -------------------------------------------------------------------

@dataclass(frozen=True)
class SummaryFiles:
    period: str
    report: Report
    paths: tuple[Path, ...]
    controls: tuple[ControlLine, ...]


def write_summary(store: BillingHistoryStore, period: str, out_dir: Path) -> SummaryFiles:
    """`rating report summary --period P` as CSV and XLSX into ``out_dir``."""
    report = build_report(store, "summary", period, None)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = output_path("summary", period, None, "csv", out_dir)
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        controls = write_csv(report, handle)
    xlsx_path = output_path("summary", period, None, "xlsx", out_dir)
    write_xlsx(report, xlsx_path)
    return SummaryFiles(period, report, (csv_path, xlsx_path), controls)


def grand_totals(report: Report) -> dict[str, tuple[object, ...]]:
    """currency -> (records, net, markup, gross, credit applied, charged) of the total lines."""
    column = {name: index for index, name in enumerate(COLUMNS)}
    totals: dict[str, tuple[object, ...]] = {}
    for sheet in report.sheets:
        for row in sheet.rows:
            if row.level == TOTAL:
                amounts = [row.cells[column[name]] for name in AMOUNTS]
                totals[str(row.cells[column["currency"]])] = (
                    row.cells[column["records"]],
                    *(cell.amount if isinstance(cell, Money) else cell for cell in amounts))
    return totals


def aggregates_control(connections: Connections, summary: SummaryFiles) -> ControlLine:
    """The Redis aggregates of the period (another sink's totals) = the report's totals."""
    client = redis_client(connections.redis_url)
    try:
        sums = sum_by_currency(read_period(client, DEFAULT_PREFIX, summary.period))
    finally:
        client.close()
    redis_totals: dict[str, tuple[object, ...]] = {
        currency: (t.count, t.net_amount, t.markup_amount, t.gross_amount, t.credit_applied,
                   t.charged_amount) for currency, t in sums.items()}
    described = "; ".join(f"{currency} {values[0]} records, charged {values[-1]}"
                          for currency, values in sorted(redis_totals.items()))
    return ControlLine(f"Redis aggregates of {summary.period} = the report's grand totals "
                       f"({described or 'nothing'})", redis_totals == grand_totals(summary.report))


def print_summary_excerpt(out: TextIO, summary: SummaryFiles,
                          controls: Sequence[ControlLine]) -> None:
    """The provider subtotals and the totals of the report, its control lines, its files."""
    column = {name: index for index, name in enumerate(COLUMNS)}
    out.write(f"\nSummary report {summary.period}, the whole month in the billing history "
              "(provider subtotals and totals):\n")
    widths = (9, 20, 8, 8, 14, 14, 14)
    out.write(_aligned(SHOWN, widths))
    for sheet in summary.report.sheets:
        for row in sheet.rows:
            cells = row.cells
            if row.level == TOTAL or (row.level == SUBTOTAL and not cells[column["product"]]):
                out.write(_aligned([csv_cell(cells[column[name]]) for name in SHOWN], widths))
    for line in controls:
        out.write(control_text(line) + "\n")
    for path in summary.paths:
        out.write(f"wrote {shown(path)}\n")
    out.flush()


def _aligned(values: Sequence[str], widths: Sequence[int]) -> str:
    text = " ".join(f"{value:<{width}}" if index < 3 else f"{value:>{width}}"
                    for index, (value, width) in enumerate(zip(values, widths, strict=True)))
    return text.rstrip() + "\n"


def shown(path: Path) -> Path:
    """``path`` relative to the current folder when it is inside it (shorter to print)."""
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


# -- licences ---------------------------------------------------------------------------

def demo_licence_events(catalog: Catalog, year: FiscalYear) -> list[LicenceEvent]:
    """A few licences over the example campuses and products, provisioned before ``year``
    (so its annual run covers them). Same ids on every run: re-publishing is a duplicate."""
    assert catalog.licences is not None
    campuses = sorted(catalog.licences.campuses)
    products = sorted(catalog.licences.products)
    events = []
    for n in range(DEMO_LICENCES):
        campus = campuses[n % len(campuses)]
        record = f"DEMO-{year.number}-{n + 1:02d}"
        events.append(new_licence_event(
            action=LicenceAction.PROVISIONED, campus=campus, record_number=record,
            user=f"user{n + 1}@{campus}.example.edu",
            product=products[(n // len(campuses)) % len(products)],
            effective_date=year.start - timedelta(days=14 * (n + 1)), source=SOURCE,
            event_id=f"{SOURCE}:{record}:provisioned"))
    return events


def bill_demo_licences(settings: Settings, connections: Connections, catalog: Catalog,
                       history_url: str, out_dir: Path, out: TextIO) -> bool:
    """Publish the demo licences and run this fiscal year's annual billing run (invoices
    into ``out_dir``); False when the catalog bills no licences."""
    licences = catalog.licences
    annual = None if licences is None else next(
        (run for run in licences.runs.values() if run.kind is RunKind.ANNUAL), None)
    if licences is None or annual is None:
        return False
    year = FiscalYear.of(datetime.now(UTC).date(), licences.fiscal_year_start_month)
    events = demo_licence_events(catalog, year)
    with LicencePublisher.connect(connections, settings.topics.subscriptions.name) as publisher:
        for event in events:
            publisher.publish(event)
    out.write(f"\nLicences: {len(events)} provisioned at "
              f"{', '.join(sorted({event.campus for event in events}))}; "
              f"billing run {year.label} {annual.name}:\n")
    out.flush()
    with redirect_stdout(out):
        bill_licences(settings, connections, fiscal_year=year.number, run=annual.name,
                      out_dir=out_dir, history_url=history_url,
                      timeout_s=LICENCE_RUN_TIMEOUT_S, source=SOURCE)
    out.flush()
    return True
