"""The billing-history sink on the real broker, against SQLite and PostgreSQL.

Rated records are written to the test's own usage.rated in Kafka transactions
(one aborted), in the RatedUsage schema. What the history must hold is read
back from Kafka independently (read_committed): every committed record, at its
(partition, offset), exactly once, with its amounts exactly as sent.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from processors.money import ZERO
from sinks.history import HistoryFilter, MonthUsage, sql
from sinks.history.model import BillingHistoryStore, json_safe
from sinks.history.sqlite import DecimalSum
from tests.integration.faults import CuttableProxy
from tests.integration.harness import Pipeline
from tests.integration.history_helpers import (
    Backend,
    SinkProcess,
    backend,
    history_sink,
    history_view,
    kafka_view,
    metric,
    produce_rated,
    sink_records,
    stored_count,
    stored_rows,
    varied_values,
)
from tests.integration.running_sink import wait_until
from tests.unit.sinks.history_records import BASE_TIME, sink_record

pytestmark = pytest.mark.integration
__all__ = ["backend"]  # the parametrized fixture (sqlite, postgres), imported for pytest


def test_replay_and_restart_store_every_committed_record_once(
        pipeline: Pipeline, backend: Backend) -> None:
    produce_rated(pipeline, varied_values("a", 120))
    produce_rated(pipeline, varied_values("x", 25, start=500), commit=False)  # never visible
    produce_rated(pipeline, varied_values("b", 180, start=120))
    expected = kafka_view(pipeline)
    assert len(expected) == 300
    written, skipped = sink_records("written"), sink_records("skipped")

    with history_sink(pipeline, backend.url) as sink:
        sink.wait_until(lambda: stored_count(backend) >= 300, "the first 300 rows")
    assert history_view(stored_rows(backend)) == expected
    assert sink_records("written") - written == 300
    before = [json_safe(row) for row in stored_rows(backend)]

    # --replay: usage.rated from offset 0 again. Everything is skipped, nothing changes.
    written, skipped = sink_records("written"), sink_records("skipped")
    with history_sink(pipeline, backend.url, replay=True) as replay:
        replay.wait_until(lambda: sink_records("skipped") - skipped >= 300, "the replay")
    assert (sink_records("written") - written, sink_records("skipped") - skipped) == (0, 300)
    assert [json_safe(row) for row in stored_rows(backend)] == before

    # A plain restart resumes at the stored offsets: only the new records are read.
    produce_rated(pipeline, varied_values("c", 40, start=300))
    expected = kafka_view(pipeline)
    written, skipped = sink_records("written"), sink_records("skipped")
    with history_sink(pipeline, backend.url) as resumed:
        resumed.wait_until(lambda: stored_count(backend) >= 340, "the new rows")
    assert (sink_records("written") - written, sink_records("skipped") - skipped) == (40, 0)
    assert history_view(stored_rows(backend)) == expected


def test_two_histories_each_store_every_record(
        pipeline: Pipeline, backend: Backend, tmp_path: Path) -> None:
    """Two sinks writing two histories at once (say SQLite and PostgreSQL during a move)
    each read every partition: with one consumer group they split them, and each history
    silently lacked the other's partitions."""
    produce_rated(pipeline, varied_values("m", 240))
    expected = kafka_view(pipeline)
    assert len({partition for partition, _ in expected}) > 1
    other = Backend("sqlite", tmp_path / "other", None)
    (tmp_path / "other").mkdir()
    with history_sink(pipeline, backend.url) as first, \
            history_sink(pipeline, other.url) as second:
        first.wait_until(lambda: stored_count(backend) >= 240, "the first history")
        second.wait_until(lambda: stored_count(other) >= 240, "the second history")
    assert history_view(stored_rows(backend)) == expected
    assert history_view(stored_rows(other)) == expected


@pytest.mark.fault
def test_sigkill_mid_run_then_restart_stores_exact_totals(
        pipeline: Pipeline, backend: Backend) -> None:
    total = 6000
    for start in range(0, total, 1500):
        produce_rated(pipeline, varied_values("k", 1500, start=start))
    expected = kafka_view(pipeline)
    assert len(expected) == total

    first = SinkProcess(pipeline, backend.url, batch_size=25)
    wait_until(lambda: stored_count(backend) >= 300, "the sink to be well under way",
               first.check_alive, timeout_s=120, interval_s=0.05)
    first.kill()
    at_kill = stored_count(backend)
    assert at_kill < total, "the kill must land mid-run for this test to mean much"

    second = SinkProcess(pipeline, backend.url, batch_size=500)
    try:
        wait_until(lambda: stored_count(backend) >= total, "the restarted sink to catch up",
                   second.check_alive, timeout_s=180)
        time.sleep(1.0)  # anything stored twice would show up now
    finally:
        second.stop()
    assert history_view(stored_rows(backend)) == expected
    assert stored_count(backend) == total
    for period in ("2024-05", "2024-06"):
        sent = sum(1 for fields in expected.values() if fields[2] == period)
        assert stored_count(backend, HistoryFilter(billing_period=period)) == sent


class Outage:
    """The store out of reach: PostgreSQL behind a proxy that is cut; SQLite write-locked
    by another connection for longer than the sink's busy timeout."""

    def __init__(self, backend: Backend):
        self._backend = backend
        self._proxy: CuttableProxy | None = None
        self._holder: sqlite3.Connection | None = None
        self.url = backend.url
        if backend.kind == "postgres":
            parts = urlsplit(backend.url)
            assert parts.hostname is not None
            assert parts.port is not None
            self._proxy = CuttableProxy(parts.hostname, parts.port)
            self.url = backend.url_through(self._proxy.port)

    def begin(self) -> None:
        if self._proxy is not None:
            self._proxy.cut()
        else:
            path = Path(self._backend.url.removeprefix("sqlite:///"))
            self._holder = sqlite3.connect(path, isolation_level=None)
            self._holder.execute("BEGIN IMMEDIATE")

    def end(self) -> None:
        if self._proxy is not None:
            self._proxy.restore()
        if self._holder is not None:
            self._holder.execute("ROLLBACK")
            self._holder.close()
            self._holder = None

    def close(self) -> None:
        self.end()
        if self._proxy is not None:
            self._proxy.close()


@pytest.mark.fault
def test_store_unreachable_the_sink_holds_retries_and_catches_up(
        pipeline: Pipeline, backend: Backend) -> None:
    outage = Outage(backend)
    produce_rated(pipeline, varied_values("u", 200))
    retries = metric("rating_sink_retries_total")
    sink = history_sink(pipeline, outage.url)
    try:
        sink.wait_until(lambda: stored_count(backend) >= 200, "the rows before the outage")
        assert metric("rating_sink_up") == 1.0
        outage.begin()
        produce_rated(pipeline, varied_values("u", 300, start=200))
        sink.wait_until(lambda: metric("rating_sink_retries_total") > retries
                        and metric("rating_sink_up") == 0.0,
                        "the sink to notice the outage and retry", timeout_s=60)
        time.sleep(1.0)  # more retries with backoff, while the batch is held
        if backend.kind == "postgres":
            assert stored_count(backend) == 200  # read directly, not through the proxy
        outage.end()
        sink.wait_until(lambda: stored_count(backend) >= 500, "the catch-up")
        sink.wait_until(lambda: metric("rating_sink_up") == 1.0, "sink_up back to 1")
    finally:
        outage.close()
        sink.stop()
    assert metric("rating_sink_retries_total") > retries
    assert history_view(stored_rows(backend)) == kafka_view(pipeline)
    assert stored_count(backend) == 500


def test_pages_return_every_row_exactly_once_in_order(backend: Backend) -> None:
    store = backend.open()
    try:
        # Five rows share each instant (the event id orders them), written out of order
        # and over two partitions.
        records = [sink_record(n, partition=n % 2, offset=n // 2,
                               event_time=BASE_TIME + timedelta(seconds=(n * 37) % 40 // 5),
                               event_id=f"p-{(n * 13) % 97:03d}-{n}",
                               account_id=f"acct-{n % 3}")
                   for n in range(97)]
        for start in range(0, 97, 20):
            store.write_batch(records[start:start + 20])
        expected = sorted((r.value["event_time"], r.value["event_id"]) for r in records)
        for size in (1, 6, 50, 97, 500):
            seen, cursor = [], None
            while True:
                page = store.page(HistoryFilter(), cursor, size)
                assert len(page.rows) <= size
                seen += [(row.event_time, row.event_id) for row in page.rows]
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            assert seen == expected, f"page size {size}"
        of_account = [(r.event_time, r.event_id) for r in store.iter_rows(
            HistoryFilter(account_id="acct-2", billing_period="2024-05"))]
        assert of_account == sorted((r.value["event_time"], r.value["event_id"])
                                    for r in records if r.value["account_id"] == "acct-2")
        # A row stored after the first page was read, sorting after it, still comes.
        first = store.page(HistoryFilter(), None, 10)
        store.write_batch([sink_record(500, 0, 60, event_id="zz-late",
                                       event_time=BASE_TIME + timedelta(hours=1))])
        rest = []
        cursor = first.next_cursor
        while cursor is not None:
            page = store.page(HistoryFilter(), cursor, 25)
            rest += [row.event_id for row in page.rows]
            cursor = page.next_cursor
        assert len(first.rows) + len(rest) == 98
        assert rest[-1] == "zz-late"
    finally:
        store.close()


# (rows, account, period, rate table, rate code, quantity, credit applied): amounts whose
# binary-float sums are not exact (40 x 0.1 = 4.000000000000002, 0.1 + 0.2 =
# 0.30000000000000004, 8.30 has no float at all), spread over the rows of other accounts,
# months, tables and codes that month_usage must leave out.
MONTH_ROWS = (
    (40, "acct-a", "2024-05", "storage", "DISK-GB", "0.1", "0.10"),
    (30, "acct-a", "2024-05", "storage", "DISK-SSD", "0.2", "0.01"),  # same table, other code
    (20, "acct-a", "2024-05", "compute", "DISK-GB", "0.3", "0.20"),  # other table, same code
    (10, "acct-b", "2024-05", "storage", "DISK-GB", "7", "5.00"),  # another account
    (10, "acct-a", "2024-06", "storage", "DISK-GB", "9", "3.00"),  # another month
    (1, "acct-c", "2024-05", "storage", "DISK-GB", "0.1", "0.1"),
    (1, "acct-c", "2024-05", "storage", "DISK-GB", "0.2", "0.2"),
)


def as_text(usage: MonthUsage) -> tuple[int, str, str]:
    """Exact to the scale: Decimal("4") == Decimal("4.0"), but the API shows "4.0"."""
    return usage.rows, str(usage.quantity), str(usage.credit_applied)


def summed_rows(store: BillingHistoryStore, account: str, period: str, table: str,
                code: str) -> tuple[int, str, str]:
    """What month_usage replaces: every row of the month read out and added up here."""
    rows = list(store.iter_rows(HistoryFilter(account_id=account, billing_period=period)))
    quantity = sum((r.quantity for r in rows if (r.rate_table, r.rate_code) == (table, code)),
                   ZERO)
    return len(rows), str(quantity), str(sum((r.credit_applied for r in rows), ZERO))


def test_month_usage_is_the_exact_sum_of_the_account_months_rows(backend: Backend) -> None:
    values = [{"account_id": account, "billing_period": period, "rate_table": table,
               "rate_code": code, "quantity": quantity, "credit_applied": credit}
              for count, account, period, table, code, quantity, credit in MONTH_ROWS
              for _ in range(count)]
    random.Random(7).shuffle(values)  # the account's rows interleaved with the others'
    records = [sink_record(n, partition=n % 2, offset=n // 2, event_id=f"mu-{n:04d}",
                           **value) for n, value in enumerate(values)]
    store = backend.open()
    try:
        for start in range(0, len(records), 25):
            store.write_batch(records[start:start + 25])
        # Worked out by hand: 40 x 0.1; 40 x 0.10 + 30 x 0.01 + 20 x 0.20 = 4.00 + 0.30 + 4.00.
        expected = {
            ("acct-a", "2024-05", "storage", "DISK-GB"): (90, "4.0", "8.30"),
            ("acct-a", "2024-05", "storage", "DISK-SSD"): (90, "6.0", "8.30"),
            ("acct-a", "2024-05", "compute", "DISK-GB"): (90, "6.0", "8.30"),
            ("acct-a", "2024-05", "network", "NET-GB"): (90, "0", "8.30"),  # nothing on it
            ("acct-b", "2024-05", "storage", "DISK-GB"): (10, "70", "50.00"),
            ("acct-a", "2024-06", "storage", "DISK-GB"): (10, "90", "30.00"),
            ("acct-c", "2024-05", "storage", "DISK-GB"): (2, "0.3", "0.3"),
            ("acct-a", "2024-07", "storage", "DISK-GB"): (0, "0", "0"),  # an empty month
            ("acct-z", "2024-05", "storage", "DISK-GB"): (0, "0", "0"),  # an unknown account
        }
        for (account, period, table, code), numbers in expected.items():
            usage = store.month_usage(account, period, table, code)
            assert as_text(usage) == numbers, (account, period, table, code)
            assert as_text(usage) == summed_rows(store, account, period, table, code)
            assert isinstance(usage.quantity, Decimal)
            assert isinstance(usage.credit_applied, Decimal)
    finally:
        store.close()


def test_the_account_period_index_serves_month_usage(backend: Backend) -> None:
    """The filter is the prefix of (account_id, billing_period, event_time, event_id): the
    planner, with statistics of a history of 40 accounts x 6 months, reads exactly the
    account's month from that index instead of a whole period or the whole table."""
    store = backend.open()
    try:
        records = [sink_record(n, partition=0, offset=n, event_id=f"ix-{n:05d}",
                               account_id=f"acct-{n % 40}",
                               billing_period=f"2024-{n // 40 % 6 + 1:02d}")
                   for n in range(4800)]
        for start in range(0, len(records), 1000):
            store.write_batch(records[start:start + 1000])
    finally:
        store.close()
    params = ("storage", "DISK-GB", "acct-7", "2024-03")
    if backend.kind == "sqlite":
        with sqlite3.connect(urlsplit(backend.url).path[1:]) as raw:
            raw.execute("ANALYZE")
            raw.create_aggregate(sql.SQLITE.sum_function, 1,
                                 DecimalSum)  # type: ignore[arg-type]
            plan = " ".join(str(step) for step in raw.execute(
                "EXPLAIN QUERY PLAN " + sql.month_usage_sql(sql.SQLITE), params))
        assert "USING INDEX ix_billing_history_account_period (account_id=? AND " \
               "billing_period=?)" in plan, plan
    else:
        with psycopg.connect(backend.url, autocommit=True) as connection:
            connection.execute("ANALYZE billing_history")
            plan = " ".join(line for (line,) in connection.execute(
                "EXPLAIN " + sql.month_usage_sql(sql.POSTGRES), params))
        assert "on ix_billing_history_account_period" in plan \
            or "using ix_billing_history_account_period" in plan, plan
        assert "Index Cond: ((account_id = 'acct-7'::text) AND (billing_period = " \
               "'2024-03'::text))" in plan, plan


def test_sigterm_stops_the_sink_cleanly(pipeline: Pipeline, backend: Backend) -> None:
    produce_rated(pipeline, varied_values("t", 10))
    process = SinkProcess(pipeline, backend.url)
    wait_until(lambda: stored_count(backend) >= 10, "the rows", process.check_alive)
    process.popen.send_signal(signal.SIGTERM)
    assert process.popen.wait(30) == 0
    process.stop()


def test_a_store_ahead_of_a_recreated_topic_refuses_to_start(
        pipeline: Pipeline, backend: Backend) -> None:
    """The history has read 42 records of partition 0, but the topic is new and empty
    (a new stack, the topic deleted and created again): reading on from offset 42 would
    silently skip the first 42 new records, so the sink must stop and say why."""
    topic = pipeline.settings.topics.rated.name
    store = backend.open()
    try:
        store.write_batch([sink_record(1, partition=0, offset=41, topic=topic)])
    finally:
        store.close()
    sink = history_sink(pipeline, backend.url)
    sink.thread.join(60)
    assert not sink.thread.is_alive(), "the sink kept running on a topic behind its store"
    assert sink.error is not None, "the sink started although its store is ahead of the topic"
    message = str(sink.error)
    assert f"has read {topic} further than the topic goes" in message, message
    assert "{0: (42, 0)}" in message, message
