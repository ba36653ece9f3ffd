"""The billing-history sink process: ``usage.rated`` (read_committed) -> SQLite or PostgreSQL.

``rating sink billing-history [--url URL] [--replay]`` runs :func:`run_billing_history`:
a SinkRunner (sinks/runner.py) over the store behind the URL. It reads only
committed rated records (licence charges included: they are RatedUsage records
like any other), and the store keeps its own next offsets with the rows, so a
restart, a crash, a rebalance or ``--replay`` stores every record exactly once.

While the database is unreachable (PostgreSQL down, SQLite locked past its
busy timeout) the batch is held and retried with backoff; rating never waits
for the history. A record that is not a RatedUsage at all ends the run with
its position: skipping it would silently lose a charge.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
from confluent_kafka import Message

from sinks.base import SinkRecord
from sinks.history.model import BillingHistoryStore, HistoryError, HistoryStoreUnavailable
from sinks.history.store import SINK_NAME
from sinks.history.urls import check_history_url, open_history_store, redact
from sinks.runner import SinkRunner, sink_consumer, until_reachable
from stream.clients import registry_client
from stream.contracts import build_codecs
from stream.messages import origin_of
from stream.observability import OpsListener
from stream.serde import AvroDecoder, RegistryUnavailable, SerdeError
from stream.settings import Connections, Settings

log = logging.getLogger(__name__)

# What the runner waits out. The stores translate their own "unreachable or busy"
# errors (psycopg.OperationalError, sqlite3.OperationalError "locked"/"busy") into
# HistoryStoreUnavailable; other sqlite3.OperationalErrors (a missing table, a bad
# file) are not transient and must end the run. psycopg's is listed for errors
# raised outside the store's guard.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    HistoryStoreUnavailable, psycopg.OperationalError,
)
BACKOFF_INITIAL_S = 0.2
BACKOFF_MAX_S = 10.0


def rated_decoder(decoder: AvroDecoder, stop: threading.Event,
                  backoff_max_s: float = BACKOFF_MAX_S) -> Callable[[Message], SinkRecord]:
    """Message -> SinkRecord with the decoded RatedUsage dict as its value.

    A writer schema unknown to this process is fetched from the registry; while the
    registry is unreachable that is retried (the record is never skipped).
    """

    def decode(message: Message) -> SinkRecord:
        origin = origin_of(message)
        backoff = BACKOFF_INITIAL_S
        while True:
            try:
                value = decoder.decode(message.value())
            except RegistryUnavailable as exc:
                log.warning("billing history: registry unreachable decoding %s[%d]@%d, "
                            "retrying: %s", origin.topic, origin.partition, origin.offset, exc)
                if stop.wait(backoff):
                    raise HistoryError("stopped while waiting for the schema registry") from exc
                backoff = min(backoff * 2, backoff_max_s)
                continue
            except SerdeError as exc:
                raise HistoryError(f"{origin.topic}[{origin.partition}]@{origin.offset} is not "
                                   f"a readable RatedUsage record: {exc}") from exc
            return SinkRecord(topic=origin.topic, partition=origin.partition,
                              offset=origin.offset, value=value)

    return decode


def open_when_reachable(url: str, stop: threading.Event, base_dir: Path | None = None
                        ) -> tuple[BillingHistoryStore, str] | None:
    """The store and its id (``store_id``), waiting (with backoff) while its database is
    unreachable; None if stopped."""
    def opened() -> tuple[BillingHistoryStore, str]:
        store = open_history_store(url, base_dir)
        try:
            return store, store.store_id()
        except BaseException:
            store.close()
            raise

    return until_reachable(opened, stop, TRANSIENT_ERRORS, f"billing history {redact(url)}")


def history_group(settings: Settings, store_id: str) -> str:
    """The sink's consumer group, one per history (its ``store_id``): sinks of two
    histories must not split usage.rated's partitions between them, or each history
    would silently miss the other's."""
    return f"{settings.processor.group_id}-{SINK_NAME}-{store_id[:12]}"


def run_billing_history(settings: Settings, connections: Connections, url: str,
                        stop: threading.Event, *, replay: bool = False,
                        base_dir: Path | None = None,
                        ops: OpsListener | None = None) -> SinkRunner | None:
    """Store every committed rated record in the history at ``url`` until ``stop`` is set.

    ``replay`` re-reads usage.rated from the beginning whatever is stored (stored
    records are skipped by offset: for checking idempotency, or after restoring a
    database backup). Returns the runner (batches written, retries), or None when
    stopped before the store could be opened.
    """
    check_history_url(url)  # a wrong --url is reported before anything connects
    rated = settings.topics.rated.name
    decoder = build_codecs(registry_client(connections), settings.topics).rated_decoder
    opened = open_when_reachable(url, stop, base_dir)
    if opened is None:
        return None
    store, store_id = opened
    group = history_group(settings, store_id)
    log.info("billing history: %s -> %s (consumer group %s)", rated, redact(url), group)
    try:
        consumer = sink_consumer(connections, group)
        runner = SinkRunner(consumer, store, rated, rated_decoder(decoder, stop),
                            batch_size=settings.processor.batch_size,
                            batch_timeout_s=settings.processor.batch_timeout_s,
                            transient=TRANSIENT_ERRORS, replay=replay,
                            backoff_initial_s=BACKOFF_INITIAL_S, backoff_max_s=BACKOFF_MAX_S,
                            ops=ops)
        runner.run(stop)
        return runner
    finally:
        store.close()
