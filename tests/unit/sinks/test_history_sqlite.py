"""The SQLite billing history on a real file: exactly-once writes, exact money, pages."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from sinks.history import HistoryFilter, HistoryStoreUnavailable, open_history_store
from sinks.history.model import BillingHistoryStore, HistoryError, decode_cursor
from sinks.history.sqlite import SqliteHistoryStore
from tests.unit.sinks.history_records import BASE_TIME, sink_record


def records(result: str) -> float:
    return REGISTRY.get_sample_value("rating_sink_records_total",
                                     {"sink": "billing-history", "result": result}) or 0.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "history.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[BillingHistoryStore]:
    opened = open_history_store(f"sqlite:///{db_path}")
    try:
        yield opened
    finally:
        opened.close()


def test_batch_and_offsets_are_stored_together_and_replays_are_skipped(
        store: BillingHistoryStore) -> None:
    batch = [sink_record(n, partition=n % 2, offset=n // 2) for n in range(10)]
    written, skipped = records("written"), records("skipped")
    store.write_batch(batch)
    assert store.stored_offsets("usage.rated") == {0: 5, 1: 5}
    assert store.count(HistoryFilter()) == 10
    assert records("written") - written == 10

    # Redelivered (offsets below the stored ones) plus two new records: only those are new.
    store.write_batch([*batch[4:], sink_record(10, 0, 5), sink_record(11, 1, 5)])
    assert store.count(HistoryFilter()) == 12
    assert store.stored_offsets("usage.rated") == {0: 6, 1: 6}
    assert records("written") - written == 12
    assert records("skipped") - skipped == 6
    assert store.stored_offsets("other.topic") == {}


def test_a_history_keeps_the_id_its_first_reader_drew(db_path: Path, tmp_path: Path) -> None:
    first = open_history_store(f"sqlite:///{db_path}")
    second = open_history_store(f"sqlite:///{db_path}")  # another process on the same file
    other = open_history_store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        drawn = first.store_id()
        assert len(drawn) == 32
        assert second.store_id() == drawn
        assert other.store_id() != drawn
    finally:
        for opened in (first, second, other):
            opened.close()
    reopened = open_history_store(f"sqlite:///{db_path}")
    try:
        assert reopened.store_id() == drawn
    finally:
        reopened.close()


def test_the_providers_of_a_period_each_once(store: BillingHistoryStore) -> None:
    store.write_batch([sink_record(0), sink_record(1, provider="acme"),
                       sink_record(2, provider="acme"),
                       sink_record(3, provider="nimbus", billing_period="2024-06")])
    may = store.providers("2024-05")
    assert len(may) == 2
    assert set(may) == {None, "acme"}  # None: the platform's own services
    assert store.providers("2024-07") == []


def test_records_below_the_stored_offset_are_skipped_whatever_they_carry(
        store: BillingHistoryStore) -> None:
    store.write_batch([sink_record(n, 0, n) for n in range(5)])
    # Offsets 3 and 4 again but with other event ids: only the offset fence can tell.
    store.write_batch([sink_record(100 + n, 0, n) for n in (3, 4, 5)])
    assert [r.event_id for r in store.iter_rows(HistoryFilter())] == [
        "ev-00000", "ev-00001", "ev-00002", "ev-00003", "ev-00004", "ev-00105"]
    assert store.stored_offsets("usage.rated") == {0: 6}


def test_an_event_id_already_stored_is_not_stored_twice(store: BillingHistoryStore) -> None:
    store.write_batch([sink_record(1, 0, 0)])
    store.write_batch([sink_record(1, 0, 1, charged_amount="99.00")])  # same id, new offset
    rows = list(store.iter_rows(HistoryFilter()))
    assert [(r.event_id, r.rated_offset, r.charged_amount) for r in rows] == [
        ("ev-00001", 0, Decimal("20.00"))]
    assert store.stored_offsets("usage.rated") == {0: 2}  # the offset moves on regardless


def test_a_failing_batch_stores_nothing_and_moves_no_offset(store: BillingHistoryStore) -> None:
    store.write_batch([sink_record(0, 0, 0)])
    # The third row cannot be bound (too large for an SQLite integer): after two inserts.
    bad = [sink_record(1, 0, 1), sink_record(2, 0, 2), sink_record(3, 0, 3, origin_offset=2**70)]
    with pytest.raises(OverflowError):
        store.write_batch(bad)
    assert store.count(HistoryFilter()) == 1
    assert store.stored_offsets("usage.rated") == {0: 1}
    with pytest.raises(HistoryError, match=r"usage\.rated\[0\]@4"):
        store.write_batch([sink_record(4, 0, 4, net_amount=1.5)])
    assert store.count(HistoryFilter()) == 1


def test_money_comes_back_exactly_as_written(db_path: Path, store: BillingHistoryStore) -> None:
    huge = "123456789012345678901234.56"
    store.write_batch([sink_record(0, 0, 0, net_amount="0.10", rate="0.000001",
                                   gross_amount=huge, quantity="1E+3", currency="KWD",
                                   charged_amount="1.005")])
    (row,) = store.iter_rows(HistoryFilter())
    assert (str(row.net_amount), str(row.rate), str(row.gross_amount), row.quantity,
            str(row.charged_amount)) == ("0.10", "0.000001", huge, Decimal(1000), "1.005")
    with sqlite3.connect(db_path) as raw:  # stored as text, not as SQLite REAL
        kinds = raw.execute("SELECT typeof(net_amount), typeof(gross_amount), typeof(rate) "
                            "FROM billing_history").fetchone()
    assert kinds == ("text", "text", "text")


def test_month_usage_sums_the_decimal_text_exactly(store: BillingHistoryStore) -> None:
    """SQLite's own sum() would answer 0.30000000000000004 and 1.0000000000000002 here."""
    store.write_batch([
        sink_record(0, 0, 0, quantity="0.1", credit_applied="0.1"),
        sink_record(1, 0, 1, account_id="acct-0", quantity="0.2", credit_applied="0.2",
                    rate_code="DISK-SSD"),
        *[sink_record(n, 0, n, quantity="0.10", credit_applied="0.01")
          for n in range(3, 30, 3)],  # the acct-0 rows of n = 3..27: nine more of each
        sink_record(2, 0, 2, account_id="acct-0", billing_period="2024-06", quantity="5")])
    usage = store.month_usage("acct-0", "2024-05", "storage", "DISK-GB")
    assert (usage.rows, str(usage.quantity), str(usage.credit_applied)) == (11, "1.00", "0.39")
    other = store.month_usage("acct-0", "2024-05", "storage", "DISK-SSD")
    assert (other.rows, str(other.quantity), str(other.credit_applied)) == (11, "0.2", "0.39")
    empty = store.month_usage("acct-0", "2024-07", "storage", "DISK-GB")
    assert (empty.rows, str(empty.quantity), str(empty.credit_applied)) == (0, "0", "0")


def test_pages_return_every_row_once_in_time_then_id_order(store: BillingHistoryStore) -> None:
    # Three rows per instant: the event id breaks the tie; written out of order.
    batch = [sink_record(n, 0, i, event_time=BASE_TIME + timedelta(seconds=n // 3),
                         event_id=f"ev-{(n * 7) % 30:02d}", account_id=f"acct-{n % 2}")
             for i, n in enumerate(reversed(range(30)))]
    store.write_batch(batch)
    expected = sorted((r.value["event_time"], r.value["event_id"]) for r in batch)
    for size in (1, 4, 7, 30, 100):
        seen, cursor, pages = [], None, 0
        while True:
            page = store.page(HistoryFilter(), cursor, size)
            seen += [(row.event_time, row.event_id) for row in page.rows]
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == expected
        assert pages == max(1, -(-30 // size))
    only = [(r.event_time, r.event_id) for r in store.iter_rows(HistoryFilter(
        account_id="acct-1"))]
    assert only == sorted((r.value["event_time"], r.value["event_id"]) for r in batch
                          if r.value["account_id"] == "acct-1")
    assert store.count(HistoryFilter(account_id="acct-1", billing_period="2024-05")) == 15
    assert store.count(HistoryFilter(billing_period="2024-06")) == 0


def test_filters_match_exactly(store: BillingHistoryStore) -> None:
    store.write_batch([
        sink_record(0, 0, 0),
        sink_record(1, 0, 1, provider="acme", product="acme-db", service_item_type="App",
                    service_item_id="app-1", source="marketplace"),
        sink_record(2, 0, 2, billing_period="2024-06"),
    ])

    def ids(**where: str) -> list[str]:
        return [r.event_id for r in store.iter_rows(HistoryFilter(**where))]

    assert ids(provider="acme") == ["ev-00001"]
    assert ids(product="acme-db", service_item_type="App", service_item_id="app-1",
               source="marketplace", account_id="acct-1") == ["ev-00001"]
    assert ids(billing_period="2024-05") == ["ev-00000", "ev-00001"]
    assert ids(provider="nobody") == []


def cursor_of(when: str, event_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([when, event_id]).encode()).decode()


def test_a_cursor_names_its_time_in_utc() -> None:
    when, event_id = decode_cursor(cursor_of("2026-11-03T11:00:00+01:00", "ev-1"))
    assert (when, when.tzinfo, event_id) == (datetime(2026, 11, 3, 10, tzinfo=UTC), UTC, "ev-1")


def test_bad_page_requests_are_history_errors(store: BillingHistoryStore) -> None:
    with pytest.raises(HistoryError, match="invalid cursor"):
        store.page(HistoryFilter(), "not-a-cursor", 10)
    for no_utc_value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        with pytest.raises(HistoryError, match="invalid cursor"):
            store.page(HistoryFilter(), cursor_of(no_utc_value, "ev-1"), 10)
    with pytest.raises(HistoryError, match="invalid cursor"):
        store.page(HistoryFilter(), cursor_of("2026-11-03T10:00:00", "ev-1"), 10)  # naive
    with pytest.raises(HistoryError, match="at least 1"):
        store.page(HistoryFilter(), None, 0)


def test_a_locked_database_is_unavailable_not_broken(db_path: Path) -> None:
    store = SqliteHistoryStore(db_path, busy_timeout_s=0.1)
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        with pytest.raises(HistoryStoreUnavailable, match="locked"):
            store.write_batch([sink_record(0, 0, 0)])
        holder.execute("ROLLBACK")
        store.write_batch([sink_record(0, 0, 0)])  # the same batch goes through afterwards
        assert store.count(HistoryFilter()) == 1
    finally:
        holder.close()
        store.close()


def test_readers_read_while_the_sink_writes(db_path: Path, store: BillingHistoryStore) -> None:
    store.write_batch([sink_record(n, 0, n) for n in range(100)])
    reader = open_history_store(f"sqlite:///{db_path}")
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(20):
                assert reader.count(HistoryFilter()) >= 100
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    for start in range(100, 300, 50):
        store.write_batch([sink_record(n, 0, n) for n in range(start, start + 50)])
    thread.join()
    reader.close()
    assert errors == []
    assert store.count(HistoryFilter()) == 300


def test_schema_creation_is_idempotent(db_path: Path) -> None:
    for _ in range(2):
        store = open_history_store(f"sqlite:///{db_path}")
        store.write_batch([sink_record(len(list(store.iter_rows(HistoryFilter()))), 0,
                                       store.stored_offsets("usage.rated").get(0, 0))])
        store.close()
    reopened = open_history_store(f"sqlite:///{db_path}")
    assert reopened.count(HistoryFilter()) == 2
    reopened.close()


def test_in_memory_store() -> None:
    store = open_history_store("sqlite:///:memory:")
    store.write_batch([sink_record(0, 0, 0)])
    assert store.count(HistoryFilter()) == 1
    store.close()
