"""The dedup window's older ids on local disk (SQLite), so memory holds only recent ones.

A ``DedupWindow`` keeps the ids of its last ``processor.dedup_memory_hours`` of event
time in memory and hands older ones to a ``SeenIdsOnDisk`` (``processors.dedup.OlderIds``):
one SQLite file per partition state, in ``processor.state_dir`` (the system's temporary
directory when unset).

The file is a cache, never the truth: the changelog is. Every restore (partition
assignment, an aborted transaction) builds a new partition state, and with it a new
file, from the changelog; the old state's file goes with it. So the file needs no
journal and no fsync (a crash loses nothing the changelog does not have), and two
processes never share one (each file has a unique name). The file is unlinked as soon
as SQLite has it open, so even a killed process leaves nothing behind: its space shows
in ``df``, not in ``ls``, and in the metric ``rating_dedup_disk_bytes``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import weakref
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from processors.pipeline import PartitionState
from stream import metrics
from stream.settings import ProcessorSettings
from stream.state_store import ChangelogStateStore

log = logging.getLogger(__name__)

# SQLite's page cache per file, KiB (negative cache_size): recent pages of the id index
# stay in memory, the rest is read from the OS page cache when an id is looked up.
CACHE_KIB = 8 * 1024


def partition_states(settings: ProcessorSettings) -> Callable[[], PartitionState]:
    """Makes the rater's partition states: ids older than ``dedup_memory_hours`` on disk."""
    window = timedelta(days=settings.dedup_window_days)
    span = settings.dedup_memory_span
    if span is None:
        log.info("dedup window %s: every seen id in memory", window)
        return lambda: PartitionState(dedup_window=window)
    log.info("dedup window %s: seen ids of the last %s in memory, older ones in %s",
             window, span, settings.state_dir or tempfile.gettempdir())
    directory = settings.state_dir
    return lambda: PartitionState(window, SeenIdsOnDisk(directory), span)


class DedupGauges:
    """Keeps ``rating_dedup_ids_in_memory`` and ``rating_dedup_disk_bytes`` up to date
    (between batches, in the loop's thread: the SQLite connection stays in one thread)."""

    def __init__(self, store: ChangelogStateStore) -> None:
        self._store = store
        self._reported: set[str] = set()

    def update(self) -> None:
        owned = set()
        for partition in self._store.partitions():
            dedup = self._store.state(partition).rating.dedup
            label = str(partition)
            owned.add(label)
            metrics.labelled(metrics.DEDUP_IDS_IN_MEMORY, label).set(dedup.held_in_memory())
            metrics.labelled(metrics.DEDUP_DISK_BYTES, label).set(dedup.older_bytes())
        for label in self._reported - owned:  # revoked: no stale series
            metrics.DEDUP_IDS_IN_MEMORY.remove(label)
            metrics.DEDUP_DISK_BYTES.remove(label)
        self._reported = owned


class SeenIdsOnDisk:
    """Event ids with their event time (µs since the epoch) and fingerprint, on disk."""

    def __init__(self, directory: str | Path | None = None) -> None:
        where = Path(directory) if directory else Path(tempfile.gettempdir())
        where.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix="seen-ids-", suffix=".sqlite3", dir=where)
        os.close(handle)
        try:
            self._db = sqlite3.connect(name, isolation_level=None, check_same_thread=False)
            # temp_store FILE: building the id index sorts every id, in temporary
            # files beyond the page cache rather than in memory.
            for pragma in ("journal_mode = OFF", "synchronous = OFF",
                           "locking_mode = EXCLUSIVE", "temp_store = FILE",
                           f"cache_size = -{CACHE_KIB}"):
                self._db.execute(f"PRAGMA {pragma}")
            # Rows in the order they come (the order of event time, nearly): appending
            # is cheap. The index by time is cheap for the same reason; the index by id
            # is not (random ids), so it is built only when first needed (``_index``).
            self._db.execute("CREATE TABLE seen (id TEXT NOT NULL, event_us INTEGER"
                             " NOT NULL, fingerprint BLOB NOT NULL)")
            self._db.execute("CREATE INDEX seen_by_time ON seen (event_us)")
        finally:
            os.unlink(name)  # SQLite holds it open (module docstring)
        self._closer = weakref.finalize(self, self._db.close)
        self._indexed = False
        self._size: int | None = None  # measured when asked, after a change

    def add(self, entries: list[tuple[str, int, bytes]]) -> None:
        """Hold (id, event µs, fingerprint) entries; one already held is replaced."""
        db = self._db
        # No journal, so no rollback: after a failure here the caller throws the state
        # and its file away (the loop rewinds, and a restore builds both anew). The
        # transaction stays open until the next read (``_ready``): a restore's adds,
        # minute after minute, go in one.
        if not db.in_transaction:
            db.execute("BEGIN")
        if self._indexed:
            db.executemany("DELETE FROM seen WHERE id = ?",
                           [(event_id,) for event_id, _, _ in entries])
        # Without the index (a restore adding what memory moves out), an id added twice
        # is held twice until ``_index`` keeps its last row.
        db.executemany("INSERT INTO seen VALUES (?, ?, ?)", entries)
        self._size = None

    def find(self, event_id: str) -> tuple[int, bytes] | None:
        """The id's event time and fingerprint, or None when not held."""
        row = self._ready().execute("SELECT event_us, fingerprint FROM seen WHERE id = ?",
                                    (event_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    def discard(self, event_id: str) -> None:
        self._ready().execute("DELETE FROM seen WHERE id = ?", (event_id,))

    def expire(self, horizon_us: int) -> list[tuple[str, int]]:
        """Drop the entries older than ``horizon_us``; returns them as (id, event µs)."""
        db = self._ready()
        gone = db.execute("SELECT id, event_us FROM seen WHERE event_us < ?",
                          (horizon_us,)).fetchall()
        if gone:
            db.execute("DELETE FROM seen WHERE event_us < ?", (horizon_us,))
            self._size = None
        return [(row[0], row[1]) for row in gone]

    def count(self) -> int:
        """How many ids are held (reads the whole index: for tests and logs, not per event)."""
        rows: int = self._ready().execute("SELECT count(*) FROM seen").fetchone()[0]
        return rows

    def size_bytes(self) -> int:
        """What the ids take on disk (the file's pages, measured again after a change)."""
        if not self._closer.alive:
            return 0
        if self._size is None:  # (two PRAGMAs: once per batch for the gauge, not per add)
            pages: int = self._db.execute("PRAGMA page_count").fetchone()[0]
            page_size: int = self._db.execute("PRAGMA page_size").fetchone()[0]
            self._size = pages * page_size
        return self._size

    def ids(self) -> list[str]:
        return [row[0] for row in self._ready().execute("SELECT id FROM seen")]

    def _ready(self) -> sqlite3.Connection:
        """The connection, with what ``add`` left open committed and the ids indexed."""
        db = self._db
        if db.in_transaction:
            db.execute("COMMIT")
        if not self._indexed:
            self._index()
        return db

    def _index(self) -> None:
        """Index the ids, keeping only the last row added of an id added more than once.

        One sort of every id (about 1 µs each) instead of an insert into a B-tree by
        random id per id added (about 10 µs each once the index outgrows the page cache):
        what makes a restore, which adds every id older than the memory span, fast."""
        db = self._db
        db.execute("BEGIN")  # (no rollback either: see ``add``)
        db.execute("CREATE INDEX seen_by_id ON seen (id)")
        db.execute("DELETE FROM seen WHERE rowid IN (SELECT held.rowid FROM seen AS held"
                   " JOIN (SELECT id, max(rowid) AS last FROM seen GROUP BY id"
                   " HAVING count(*) > 1) AS again"
                   " ON held.id = again.id AND held.rowid < again.last)")
        db.execute("COMMIT")
        self._indexed = True
        self._size = None

    def close(self) -> None:
        """Close the file, which frees its space (also done when the object is collected)."""
        self._closer()
