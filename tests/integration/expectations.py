"""What a crash-free, single-instance run produces for a list of events (pure engine)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from processors.catalog import load_catalog_dir
from processors.errors import EventRejected
from processors.events import Origin, UsageEvent
from processors.pipeline import PartitionState, process_event
from tests.integration.events import money
from tests.integration.harness import EXAMPLE_CATALOG

Totals = dict[str, tuple[int, Decimal, Decimal, Decimal, Decimal]]
AMOUNTS = ("net_amount", "gross_amount", "credit_applied", "charged_amount")


@dataclass
class Expected:
    totals: Totals
    alerts: list[tuple[str, str, int]]  # (agreement, quota, threshold), sorted
    quota_rejections: int
    state: PartitionState = field(repr=False)


def expected_run(events: list[UsageEvent]) -> Expected:
    catalog, state = load_catalog_dir(EXAMPLE_CATALOG), PartitionState()
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 5)
    alerts: list[tuple[str, str, int]] = []
    rejections = 0
    for offset, event in enumerate(events):
        try:
            outcome = process_event(event, Origin("expected", 0, offset), catalog, state,
                                    datetime.now(UTC))
        except EventRejected:
            continue
        alerts += [(a.agreement_id, a.quota_id, a.threshold_percent) for a in outcome.alerts]
        rejections += outcome.quota_rejection is not None
        if outcome.rated is not None:
            record, row = outcome.rated, sums[outcome.rated.account_id]
            for index, amount in enumerate((Decimal(1), record.net_amount, record.gross_amount,
                                            record.credit_applied, record.charged_amount)):
                row[index] += amount
    return Expected(totals=_freeze(sums), alerts=sorted(alerts), quota_rejections=rejections,
                    state=state)


def observed_totals(records: list[dict[str, object]]) -> Totals:
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 5)
    for record in records:
        row = sums[str(record["account_id"])]
        row[0] += 1
        for index, name in enumerate(AMOUNTS):
            row[index + 1] += money(record[name])
    return _freeze(sums)


def observed_alerts(records: list[dict[str, object]]) -> list[tuple[str, str, int]]:
    return sorted((str(r["agreement_id"]), str(r["quota_id"]), int(str(r["threshold_percent"])))
                  for r in records)


def _freeze(sums: dict[str, list[Decimal]]) -> Totals:
    return {account: (int(row[0]), row[1], row[2], row[3], row[4])
            for account, row in sums.items()}
