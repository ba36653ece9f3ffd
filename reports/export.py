"""The billing export for BRM: one line per customer charge at GROSS, stable layout.

Every billing-history row of the period is one charge, in history order
(event_time, event_id), the fully credited ones included (charged 0), so that
the file reconciles with the summary report. Layout version 1, columns in this
order (documented in docs/reports.md; add columns only at the end):

billing_period, charge_id (the event id: BRM's idempotency key), event_time
(ISO 8601 UTC), account_id, account_kind, provider ("(platform)" for the
platform's own services), product (the service item type when none),
service_item_type, service_item_id, operation, rate_code, unit_of_measure,
quantity, currency, gross_amount, credit_applied, charged_amount, requester,
home_ou, catalog_version, history_position (rated topic:partition:offset).

Rows stream: the control (lines and totals per currency) is known after the last one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from reports.summary import check_period
from reports.table import ControlLine, Money, Report, Row, Sheet, product_label, provider_label
from reports.totals import GroupedTotals
from sinks.history.model import HistoryRow

LAYOUT_VERSION = 1
COLUMNS = ("billing_period", "charge_id", "event_time", "account_id", "account_kind",
           "provider", "product", "service_item_type", "service_item_id", "operation",
           "rate_code", "unit_of_measure", "quantity", "currency", "gross_amount",
           "credit_applied", "charged_amount", "requester", "home_ou", "catalog_version",
           "history_position")


def build_billing_export(rows: Iterable[HistoryRow], period: str,
                         provider: str | None = None) -> Report:
    totals = GroupedTotals()  # (currency,), filled as the lines are read

    def lines() -> Iterator[Row]:
        for row in rows:
            check_period(row, period)
            if provider is not None and provider_label(row.provider) != provider:
                continue
            totals.add_row((row.currency,), row)
            yield export_line(row)

    def control() -> tuple[ControlLine, ...]:
        count = sum(t.records for _, t in totals.items())
        return (ControlLine(f"billing export layout v{LAYOUT_VERSION}, {period}: {count} "
                            "charges", True),
                *(ControlLine(f"{currency}: gross {t.gross}, credit applied {t.credit}, "
                              f"charged {t.charged} (charges: {t.records})",
                              t.gross - t.credit == t.charged)
                  for (currency,), t in totals.items()))

    sheet = Sheet(title="charges", columns=COLUMNS, rows=lines(), control=control)
    return Report(kind="billing-export", period=period, sheets=(sheet,),
                  control_below_table=False)


def export_line(row: HistoryRow) -> Row:
    currency = row.currency
    return Row(cells=(
        row.billing_period, row.event_id,
        row.event_time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        row.account_id, row.account_kind, provider_label(row.provider),
        product_label(row.product, row.service_item_type), row.service_item_type,
        row.service_item_id, row.operation, row.rate_code, row.unit_of_measure, row.quantity,
        currency, Money(row.gross_amount, currency), Money(row.credit_applied, currency),
        Money(row.charged_amount, currency), row.requester, row.home_ou, row.catalog_version,
        f"{row.rated_topic}:{row.rated_partition}:{row.rated_offset}"))
