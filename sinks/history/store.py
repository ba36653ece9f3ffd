"""What both billing-history backends share: the batch write with its offsets, the reads.

A backend (sqlite.py, postgres.py) supplies a DB-API connection, its dialect,
how to open a write transaction and which of its errors mean "unreachable or
busy, try again" (raised as HistoryStoreUnavailable, which the sink runner
waits out). Every call holds one lock: a store may be shared by the threads of
the REST API.

Exactly once in effect (sinks/base.py): ``write_batch`` reads the stored
offsets, drops the records below them (a replay or a redelivery), inserts the
rest with the event_id guard and moves the offsets forward, all in one
database transaction. Either the rows and their offsets are stored together,
or neither is.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from decimal import Decimal
from typing import Any

from processors.money import ZERO
from sinks.base import SinkRecord
from sinks.history import sql
from sinks.history.model import (
    HistoryError,
    HistoryFilter,
    HistoryPage,
    HistoryRow,
    HistoryStoreUnavailable,
    MonthUsage,
    decode_cursor,
    encode_cursor,
)
from sinks.history.rows import row_from_rated
from sinks.runner import SINK_RECORDS

log = logging.getLogger(__name__)

SINK_NAME = "billing-history"
ITER_CHUNK_ROWS = 1000


class SqlHistoryStore:
    """The BillingHistoryStore of both backends; subclasses say how to connect."""

    name = SINK_NAME

    def __init__(self, dialect: sql.Dialect, description: str):
        self._dialect = dialect
        self._description = description  # for messages: never contains a password
        self._lock = threading.RLock()
        self._insert_sql = sql.insert_rows_sql(dialect)
        self._upsert_offset_sql = sql.upsert_offset_sql(dialect)
        self._select_offsets_sql = sql.select_offsets_sql(dialect)
        self._month_usage_sql = sql.month_usage_sql(dialect)
        self._encode_row = sql.row_encoder(dialect)
        self._decode_row = sql.row_decoder(dialect)

    # -- backend hooks ------------------------------------------------------------------
    def _connection(self) -> Any:
        """An open DB-API connection (reconnecting if the backend supports it)."""
        raise NotImplementedError

    def _transaction(self, connection: Any) -> AbstractContextManager[Any]:
        """A write transaction on ``connection``: commit on exit, roll back on error."""
        raise NotImplementedError

    def _is_unavailable(self, exc: BaseException) -> bool:
        """True for errors that mean 'unreachable or busy now' (retry), not 'wrong'."""
        raise NotImplementedError

    def _discard_connection(self) -> None:
        """Forget a connection that may be broken (the next call reconnects)."""

    def close(self) -> None:
        raise NotImplementedError

    # -- Sink -------------------------------------------------------------------------
    def store_id(self) -> str:
        """This history's own id, drawn by the first process to ask and kept in it.

        The sink's consumer group is named after it: two sinks writing two histories
        (say SQLite and PostgreSQL during a move) each read every partition, while
        two sinks writing one history, by whatever URL, share its partitions."""
        with self._guard("read the store id"):
            connection = self._connection()
            with self._transaction(connection):
                cursor = connection.cursor()
                cursor.execute(sql.claim_store_id_sql(self._dialect),
                               (self.name, uuid.uuid4().hex))
                cursor.execute(sql.select_store_id_sql(self._dialect), (self.name,))
                (store_id,) = cursor.fetchone()
            return str(store_id)

    def stored_offsets(self, topic: str) -> dict[int, int]:
        with self._guard("read the stored offsets"):
            cursor = self._connection().cursor()
            cursor.execute(self._select_offsets_sql, (self.name, topic))
            return {int(p): int(o) for p, o in cursor.fetchall()}

    def write_batch(self, records: Sequence[SinkRecord]) -> None:
        if not records:
            return
        rows = [_history_row(record) for record in records]  # bad records fail before SQL
        with self._guard("write a batch"):
            connection = self._connection()
            with self._transaction(connection):
                cursor = connection.cursor()
                topics = {row.rated_topic for row in rows}
                stored: dict[tuple[str, int], int] = {}
                for topic in topics:
                    cursor.execute(self._select_offsets_sql, (self.name, topic))
                    stored.update({(topic, int(p)): int(o) for p, o in cursor.fetchall()})
                fresh = [row for row in rows
                         if row.rated_offset >= stored.get((row.rated_topic,
                                                            row.rated_partition), 0)]
                inserted = 0
                if fresh:
                    cursor.executemany(self._insert_sql,
                                       [self._encode_row(row) for row in fresh])
                    inserted = max(cursor.rowcount, 0)
                    cursor.executemany(self._upsert_offset_sql, self._offset_params(fresh))
        duplicates = len(fresh) - inserted
        if duplicates:
            # New offsets carrying event ids already stored: upstream re-sent an event
            # under a new offset. Storing it twice would bill it twice.
            log.warning("billing history: %d record(s) at new offsets had event ids already "
                        "stored; kept the stored rows", duplicates)
        SINK_RECORDS.labels(sink=self.name, result="written").inc(inserted)
        SINK_RECORDS.labels(sink=self.name, result="skipped").inc(len(rows) - inserted)

    def _offset_params(self, rows: Sequence[HistoryRow]) -> list[tuple[str, str, int, int]]:
        params = []
        for topic in sorted({row.rated_topic for row in rows}):
            positions = [(r.rated_partition, r.rated_offset) for r in rows
                         if r.rated_topic == topic]
            params += [(self.name, topic, partition, offset)
                       for partition, offset in sorted(sql.next_offsets(positions).items())]
        return params

    # -- reads ------------------------------------------------------------------------
    def page(self, where: HistoryFilter, after: str | None, limit: int) -> HistoryPage:
        if limit < 1:
            raise HistoryError(f"page limit must be at least 1, got {limit}")
        position = None if after is None else decode_cursor(after)
        where_sql, params = sql.where_clause(where, self._dialect, position)
        with self._guard("read a page"):
            cursor = self._connection().cursor()
            # One row more than asked tells whether another page follows.
            cursor.execute(sql.select_rows_sql(where_sql, self._dialect, limited=True),
                           (*params, limit + 1))
            fetched = cursor.fetchall()
        rows = tuple(self._decode_row(values) for values in fetched[:limit])
        more = len(fetched) > limit
        return HistoryPage(rows=rows, next_cursor=encode_cursor(rows[-1]) if more else None)

    def iter_rows(self, where: HistoryFilter) -> Iterator[HistoryRow]:
        """Keyset chunks: the lock is held per chunk only, never across a yield."""
        after: str | None = None
        while True:
            chunk = self.page(where, after, ITER_CHUNK_ROWS)
            yield from chunk.rows
            if chunk.next_cursor is None:
                return
            after = chunk.next_cursor

    def count(self, where: HistoryFilter) -> int:
        where_sql, params = sql.where_clause(where, self._dialect)
        with self._guard("count rows"):
            cursor = self._connection().cursor()
            cursor.execute(sql.count_sql(where_sql), params)
            (total,) = cursor.fetchone()
        return int(total)

    def providers(self, billing_period: str) -> list[str | None]:
        with self._guard("list the providers of a period"):
            cursor = self._connection().cursor()
            cursor.execute(sql.providers_sql(self._dialect), (billing_period,))
            return [provider for (provider,) in cursor.fetchall()]

    def month_usage(self, account_id: str, billing_period: str, rate_table: str,
                    rate_code: str) -> MonthUsage:
        """One statement, so one consistent snapshot; the sums are the database's (exact:
        NUMERIC in PostgreSQL, decimal_sum over the decimal text in SQLite)."""
        with self._guard("sum the month's usage"):
            cursor = self._connection().cursor()
            cursor.execute(self._month_usage_sql,
                           (rate_table, rate_code, account_id, billing_period))
            rows, quantity, credit_applied = cursor.fetchone()
        return MonthUsage(rows=int(rows), quantity=self._sum(quantity),
                          credit_applied=self._sum(credit_applied))

    def _sum(self, value: Any) -> Decimal:
        """A SUM as it comes back: NULL (nothing summed) is 0."""
        return ZERO if value is None else self._dialect.decode(sql.DECIMAL, value)

    # -- helpers ------------------------------------------------------------------------
    def create_schema(self) -> None:
        with self._guard("create the schema"):
            connection = self._connection()
            with self._transaction(connection):
                cursor = connection.cursor()
                for statement in sql.schema_statements(self._dialect):
                    cursor.execute(statement)

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except HistoryStoreUnavailable:
                raise
            except Exception as exc:
                if not self._is_unavailable(exc):
                    raise
                self._discard_connection()
                raise HistoryStoreUnavailable(
                    f"billing history {self._description}: cannot {what} now: "
                    f"{type(exc).__name__}: {' '.join(str(exc).split())}") from exc


def _history_row(record: SinkRecord) -> HistoryRow:
    """The runner's records carry the decoded Avro dict (see sinks/history/sink.py)."""
    return row_from_rated(record.value, record.topic, record.partition, record.offset)

