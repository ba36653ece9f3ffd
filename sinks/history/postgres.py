"""The billing history in PostgreSQL (psycopg 3).

One connection, in autocommit mode for reads, with an explicit transaction per
batch write. When the server goes away the connection is dropped and the next
call reconnects; until then every call raises HistoryStoreUnavailable, which
the sink runner waits out with backoff. ``iter_rows`` streams through a
server-side (named) cursor on a connection of its own, so a report reading a
whole period neither holds the shared connection nor loads the period in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from sinks.history import sql
from sinks.history.model import HistoryFilter, HistoryRow, HistoryStoreUnavailable
from sinks.history.store import SqlHistoryStore
from sinks.history.urls import redact

# An unreachable server must surface within seconds (the runner retries), and a
# connection whose peer vanished must not hang a write forever.
CONNECT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
    "keepalives_count": 3, "tcp_user_timeout": 30_000, "application_name": "rating-history",
}
SERVER_CURSOR_ROWS = 2000
# Two processes opening a new database at once must not race on CREATE TABLE.
SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('rating.billing_history.schema'))"


class PostgresHistoryStore(SqlHistoryStore):
    def __init__(self, url: str):
        super().__init__(sql.POSTGRES, redact(url))  # the scheme already says postgresql
        self._url = url
        self._db: psycopg.Connection[Any] | None = None
        self.create_schema()

    def _connect(self, *, autocommit: bool) -> psycopg.Connection[Any]:
        connection = psycopg.connect(self._url, autocommit=autocommit, **CONNECT_OPTIONS)
        connection.execute("SET TIME ZONE 'UTC'")
        if not autocommit:
            connection.commit()
        return connection

    def _connection(self) -> psycopg.Connection[Any]:
        if self._db is None or self._db.closed:
            self._db = self._connect(autocommit=True)
        return self._db

    def _transaction(self, connection: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
        return connection.transaction()

    def _is_unavailable(self, exc: BaseException) -> bool:
        # OperationalError: connection refused or lost, server shutting down, serialization
        # failure, deadlock. InterfaceError: our connection object is already closed.
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)

    def _discard_connection(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            finally:
                self._db = None

    def create_schema(self) -> None:
        with self._guard("create the schema"):
            connection = self._connection()
            with connection.transaction():
                connection.execute(SCHEMA_LOCK)
                for statement in sql.schema_statements(self._dialect):
                    connection.execute(statement)

    def iter_rows(self, where: HistoryFilter) -> Iterator[HistoryRow]:
        where_sql, params = sql.where_clause(where, self._dialect)
        query = sql.select_rows_sql(where_sql, self._dialect, limited=False)
        try:
            with self._connect(autocommit=False) as connection, \
                    connection.cursor(name="billing_history_rows") as cursor:
                cursor.itersize = SERVER_CURSOR_ROWS
                cursor.execute(query, params)
                for values in cursor:
                    yield self._decode_row(values)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise HistoryStoreUnavailable(f"billing history {self._description}: cannot read "
                                          f"rows now: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._discard_connection()
