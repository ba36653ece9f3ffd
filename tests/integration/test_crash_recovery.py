"""SIGKILL the processor mid-stream, restart it: every event is accounted for exactly once."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from processors.catalog import load_catalog_dir
from processors.events import Origin, UsageEvent
from processors.rating import Rated, rate
from processors.state import RatingState
from stream.lag import committed_since
from tests.integration.events import money, order_independent_mix
from tests.integration.harness import EXAMPLE_CATALOG, Pipeline, money_state

pytestmark = [pytest.mark.integration, pytest.mark.fault]
Totals = dict[str, tuple[int, Decimal, Decimal, Decimal, Decimal]]


def expected_totals(events: list[UsageEvent], state: RatingState | None = None) -> Totals:
    """Per account: (records, net, gross, credit applied, charged) rating without any crash."""
    catalog, state = load_catalog_dir(EXAMPLE_CATALOG), state or RatingState()
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 5)
    for offset, event in enumerate(events):
        outcome = rate(event, Origin("expected", 0, offset), catalog, state, datetime.now(UTC))
        if isinstance(outcome, Rated):
            record, row = outcome.record, sums[outcome.record.account_id]
            for index, amount in enumerate((Decimal(1), record.net_amount, record.gross_amount,
                                            record.credit_applied, record.charged_amount)):
                row[index] += amount
    return {account: (int(row[0]), row[1], row[2], row[3], row[4])
            for account, row in sums.items()}


def observed_totals(records: list[dict[str, object]]) -> Totals:
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 5)
    for record in records:
        row = sums[str(record["account_id"])]
        for index, field in enumerate(("net_amount", "gross_amount", "credit_applied",
                                       "charged_amount")):
            row[index + 1] += money(record[field])
        row[0] += 1
    return {account: (int(row[0]), row[1], row[2], row[3], row[4])
            for account, row in sums.items()}


def test_sigkill_mid_stream_then_restart_rates_every_event_exactly_once(
        pipeline: Pipeline) -> None:
    pipeline.load_catalog()
    events = pipeline.publish(order_independent_mix(30_000, seed=11))
    first = pipeline.start_processor("0")
    deadline = time.monotonic() + 120
    # Kill once the rater (not just the router) is well into the stream: state exists.
    topic = pipeline.settings.topics.by_account.name
    while committed_since(pipeline.connections, pipeline.group_id, topic, {}) < 6_000:
        first.check_alive()
        assert time.monotonic() < deadline, first.log_tail()
        time.sleep(0.05)
    first.kill()
    assert not pipeline.caught_up(), "the kill must land mid-stream for this test to mean much"

    pipeline.start_processor("0")  # same instance id: fences the zombie, aborts its transaction
    pipeline.wait_caught_up(timeout_s=180)

    rated = [r.value for r in pipeline.rated()]
    ids = Counter(str(record["event_id"]) for record in rated)
    assert [event_id for event_id, count in ids.items() if count > 1] == []
    uncrashed = RatingState()
    assert observed_totals(rated) == expected_totals(events, uncrashed)
    assert pipeline.dead_letters() == []
    # Tier positions and credit balances restored from the changelog: as if no crash.
    assert money_state(pipeline.restored_state()) == money_state(uncrashed)
