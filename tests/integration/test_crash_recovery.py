"""SIGKILL the processor mid-stream, restart it: every event is accounted for exactly once."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.integration.events import order_independent_mix
from tests.integration.expectations import expected_run, observed_alerts, observed_totals
from tests.integration.harness import Pipeline, money_state

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def assert_exactly_as_without_crash(pipeline: Pipeline, events: list) -> None:  # type: ignore[type-arg]
    expected = expected_run(events)
    rated = [r.value for r in pipeline.rated()]
    ids = Counter(str(record["event_id"]) for record in rated)
    assert [event_id for event_id, count in ids.items() if count > 1] == []
    assert observed_totals(rated) == expected.totals
    assert pipeline.dead_letters() == []
    rejected = [r.value for r in pipeline.rejected()]
    assert len(rejected) == expected.quota_rejections > 0
    assert {r["reason_code"] for r in rejected} == {"QUOTA_EXCEEDED"}
    assert observed_alerts([a.value for a in pipeline.alerts()]) == expected.alerts != []
    # Tier positions, credit balances and quota counters restored from the changelog.
    assert money_state(pipeline.restored_state()) == money_state(expected.state)


def test_sigkill_mid_stream_then_restart_accounts_every_event_exactly_once(
        pipeline: Pipeline) -> None:
    pipeline.load_catalog()
    events = pipeline.publish(order_independent_mix(30_000, seed=11))
    # Small batches: more transactions to cut through, and a stream that lasts long enough
    # for the kill to land in it (at 1,000 a batch it can finish between two polls).
    first = pipeline.start_processor("0", env={"RATING_BATCH_SIZE": "200"})
    # Kill once the rater (not just the router) is well into the stream: state exists.
    by_account = pipeline.settings.topics.by_account.name
    pipeline.wait_committed(by_account, 6_000, first)
    rated_before_kill = pipeline.committed(by_account)  # milliseconds before it: a batch at most
    first.kill()
    # Not caught_up() after the kill: the dead instance's open transaction hides what
    # follows it from read_committed readers (and its pending offsets stall the group's
    # offset queries), so a router that had routed everything would look caught up.
    assert rated_before_kill < len(events) - 1_000, \
        "the kill must land while the rater still has events to rate"

    pipeline.start_processor("0")  # same instance id: fences the zombie, aborts its transaction
    pipeline.wait_caught_up(timeout_s=180)
    assert_exactly_as_without_crash(pipeline, events)
