"""The billing history in SQLite (stdlib sqlite3): one file, WAL, one writer.

WAL lets readers (the REST API, reports) read while the sink writes. Writes
take the write lock up front (BEGIN IMMEDIATE), so a busy database fails at
the start of a batch, never half way; after the busy timeout that surfaces as
HistoryStoreUnavailable and the sink runner retries the batch.

``synchronous=NORMAL`` under WAL may lose the last commits on a power cut (never
on a process crash). That is safe here: rows and their offsets are lost
together, and the sink re-reads them from Kafka.

Amounts are decimal TEXT, and SQLite's own sum() would add them as binary
floats; the connection gets ``decimal_sum`` (:class:`DecimalSum`), an exact
aggregate the shared SQL (sql.py) uses wherever it sums money or quantities.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from processors.money import add
from sinks.history import sql
from sinks.history.model import HistoryError, HistoryStoreUnavailable
from sinks.history.store import SqlHistoryStore

MEMORY = ":memory:"
BUSY_TIMEOUT_S = 5.0


class DecimalSum:
    """SQL ``decimal_sum(x)``: the exact Decimal sum of decimal TEXT values (in the rating
    engine's 60-digit context), returned as text. NULLs are skipped and no value at all
    gives NULL, like SQL's SUM."""

    def __init__(self) -> None:
        self._total: Decimal | None = None

    def step(self, value: str | None) -> None:
        if value is not None:
            amount = Decimal(value)
            self._total = amount if self._total is None else add(self._total, amount)

    def finalize(self) -> str | None:
        return None if self._total is None else str(self._total)


class SqliteHistoryStore(SqlHistoryStore):
    def __init__(self, path: Path | str, busy_timeout_s: float = BUSY_TIMEOUT_S):
        location = str(path)
        super().__init__(sql.SQLITE, f"sqlite {location}")
        try:
            if location != MEMORY:
                Path(location).parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode (isolation_level=None): transactions are explicit, below.
            self._db = sqlite3.connect(location, timeout=busy_timeout_s,
                                       isolation_level=None, check_same_thread=False)
            # typeshed's aggregate protocol says int in, int out; SQLite passes any value.
            self._db.create_aggregate(sql.SQLITE.sum_function, 1,
                                      DecimalSum)  # type: ignore[arg-type]
            if location != MEMORY:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
        except (OSError, sqlite3.Error) as exc:
            if self._is_unavailable(exc):
                raise HistoryStoreUnavailable(f"billing history sqlite {location}: busy: "
                                              f"{exc}") from exc
            raise HistoryError(f"cannot open the billing history sqlite {location}: "
                               f"{exc}") from exc
        self.create_schema()

    def _connection(self) -> sqlite3.Connection:
        return self._db

    @contextmanager
    def _transaction(self, connection: sqlite3.Connection) -> Iterator[None]:
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _is_unavailable(self, exc: BaseException) -> bool:
        message = str(exc).lower()
        return isinstance(exc, sqlite3.OperationalError) and (
            "locked" in message or "busy" in message)

    def close(self) -> None:
        with self._lock:
            self._db.close()
