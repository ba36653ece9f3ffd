"""The generic sink loop: Kafka -> a store that keeps its own offsets (sinks/base.py).

- The consumer never auto-commits. On assignment it is positioned at the
  sink's stored offsets (the store is the source of truth, not Kafka's
  committed offsets); partitions the store has never seen start at the beginning.
- Records are consumed in batches and handed to ``write_batch``. While the
  store is unreachable (an exception of the ``transient`` kinds) the same batch
  is retried with exponential backoff, never skipped: the outage is logged
  once, ``rating_sink_up{sink}`` is 0 and ``rating_sink_retries_total{sink}``
  counts the retries. Any other exception ends the run (a restart resumes
  from the stored offsets, which did not move).
- ``StoreRewound`` from the store means it lost data (e.g. Redis restarted
  empty): the batch is dropped and every assigned partition is re-read from
  the offsets the store now reports.
- After each stored batch the offsets are committed to Kafka as well, only so
  that consumer-group lag shows how far behind the sink is.

Operations (``ops``, from ``rating sink --metrics-port``): ``/metrics``, ``/healthz``
(the loop turns; also while it waits for the store) and ``/readyz`` (partitions
assigned and the store reachable; ``"missing": ["store"]`` during an outage), plus
``rating_consumer_lag_records{topic,partition}`` of the sink's own consumer.

Metrics: ``rating_sink_up{sink}``, ``rating_sink_retries_total{sink}``,
``rating_sink_write_seconds{sink}`` (successful writes),
``rating_sink_records_total{sink,result=written|skipped}`` (incremented by the
stores: skipped = already stored, below the stored offset).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from processors.errors import RatingError
from sinks.base import Sink, SinkRecord
from stream.clients import processing_consumer
from stream.observability import LagTracker, OpsListener
from stream.settings import Connections

log = logging.getLogger(__name__)
T = TypeVar("T")
START_BACKOFF_INITIAL_S = 0.2
START_BACKOFF_MAX_S = 10.0


def until_reachable(call: Callable[[], T], stop: threading.Event,
                    transient: tuple[type[BaseException], ...], unreachable: str) -> T | None:
    """``call()`` at a sink's start, retried with backoff while its store is unreachable
    (``unreachable``, logged with the error each time); None when asked to stop first."""
    backoff = START_BACKOFF_INITIAL_S
    while True:
        try:
            return call()
        except transient as exc:
            log.warning("%s unreachable at start, retrying: %s", unreachable, exc)
            if stop.wait(backoff):
                return None
            backoff = min(backoff * 2, START_BACKOFF_MAX_S)
OFFSET_BEGINNING = -2
STORE_DEPENDENCY = "store"  # what /readyz names as missing while the store is down

SINK_UP = Gauge("rating_sink_up", "1 while the sink's store accepts writes, 0 during an outage.",
                ["sink"])
SINK_RETRIES = Counter("rating_sink_retries_total",
                       "Batch writes retried because the store was unreachable.", ["sink"])
SINK_WRITE_SECONDS = Histogram("rating_sink_write_seconds",
                               "Wall time of one successful batch write to the store.", ["sink"],
                               buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                        5, 10))
SINK_RECORDS = Counter("rating_sink_records_total",
                       "Records handed to a sink: written, or skipped as already stored.",
                       ["sink", "result"])


class StoreRewound(RatingError):
    """The store's offsets went backwards (it lost data): re-read from what it now has."""


class StoreAheadOfTopic(RatingError):
    """The store says it has read past the end of the topic: the topic was deleted and
    created again (e.g. a new local stack) while the store kept its data. Reading on would
    skip every new record below the stored offsets, so the sink refuses to start."""


def offsets_beyond_end(stored: dict[int, int], ends: dict[int, int]) -> dict[int, tuple[int, int]]:
    """partition -> (stored next offset, topic end offset) where the store is ahead."""
    return {p: (stored[p], end) for p, end in sorted(ends.items())
            if p in stored and stored[p] > end}


def sink_consumer(connections: Connections, group_id: str, **overrides: Any) -> Consumer:
    """read_committed, no auto-commit; a long poll interval so an outage keeps the partitions.

    A 10 s session timeout (librdkafka's default is 45 s): a sink that crashed gives
    its partitions to its restarted self (or a peer) within seconds. Nothing is at
    stake in the handover, the store's offsets decide where reading resumes."""
    config: dict[str, Any] = {"max.poll.interval.ms": 3_600_000,
                              "session.timeout.ms": 10_000, "heartbeat.interval.ms": 2_000}
    config.update(overrides)
    return processing_consumer(connections, group_id, **config)


class SinkRunner:
    def __init__(self, consumer: Consumer, sink: Sink, topic: str,
                 decode: Callable[[Message], SinkRecord], *, batch_size: int,
                 batch_timeout_s: float, transient: tuple[type[BaseException], ...],
                 backoff_initial_s: float = 0.2, backoff_max_s: float = 10.0,
                 replay: bool = False, on_idle: Callable[[], object] | None = None,
                 ops: OpsListener | None = None):
        self._consumer = consumer
        self._sink = sink
        self._topic = topic
        self._decode = decode
        self._batch_size = batch_size
        self._batch_timeout_s = batch_timeout_s
        self._transient = transient
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._replay = replay
        self._on_idle = on_idle
        self._ops = ops
        if ops is not None and ops.lag is None:
            ops.lag = LagTracker(consumer)
        self._assignment: set[int] = set()
        self._stop = threading.Event()
        self._up: bool | None = None
        self.batches_written = 0
        self.retries = 0

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        self._consumer.subscribe([self._topic], on_assign=self._on_assign,
                                 on_revoke=self._on_revoke, on_lost=self._on_revoke)
        try:
            while not stop.is_set():
                if self._ops is not None:
                    self._ops.between_batches()
                if self._on_idle is not None:
                    self._on_idle()
                messages = self._consumer.consume(self._batch_size, self._batch_timeout_s)
                if stop.is_set():
                    break
                records = [self._decode(m) for m in messages if self._usable(m)]
                if records and self._write(records):
                    self._commit(records)
        finally:
            self._consumer.close()

    # -- writing -----------------------------------------------------------------
    def _write(self, records: Sequence[SinkRecord]) -> bool:
        """True once stored; False when the batch was dropped (rewound, or stopping)."""

        def write() -> bool:
            started = time.perf_counter()
            self._sink.write_batch(records)
            SINK_WRITE_SECONDS.labels(sink=self._sink.name).observe(
                time.perf_counter() - started)
            return True

        try:
            stored = self._while_store_down(write)
        except StoreRewound as exc:
            log.warning("sink %s: %s", self._sink.name, exc)
            self._rewind()
            return False
        if stored is None:
            return False  # stopping: nothing stored, nothing committed, resumes from the store
        self.batches_written += 1
        return True

    def _while_store_down(self, call: Callable[[], T]) -> T | None:
        """``call()``, retried with backoff while the store is unreachable (one log line and
        sink_up 0 per outage); None when asked to stop first."""
        backoff = self._backoff_initial_s
        down_since: float | None = None
        while True:
            try:
                result = call()
            except StoreRewound:
                self._mark_up(down_since)  # it answered: reachable, just behind
                raise
            except self._transient as exc:
                if down_since is None:
                    down_since = time.monotonic()
                    self._mark_down(exc)
                self.retries += 1
                SINK_RETRIES.labels(sink=self._sink.name).inc()
                if self._ops is not None:
                    self._ops.readiness.heartbeat()  # waiting for the store is not stuck
                if self._stop.wait(backoff):
                    return None
                backoff = min(backoff * 2, self._backoff_max_s)
                continue
            self._mark_up(down_since)
            return result

    def _mark_down(self, exc: BaseException) -> None:
        SINK_UP.labels(sink=self._sink.name).set(0)
        if self._ops is not None:
            self._ops.readiness.dependency_down(STORE_DEPENDENCY)
        self._up = False
        log.warning("sink %s: store unreachable, holding the batch and retrying with backoff "
                    "(logged once per outage): %s", self._sink.name, exc)

    def _mark_up(self, down_since: float | None) -> None:
        SINK_UP.labels(sink=self._sink.name).set(1)
        if self._ops is not None:
            self._ops.readiness.dependency_up(STORE_DEPENDENCY)
        if down_since is not None:
            log.warning("sink %s: store reachable again after %.1f s", self._sink.name,
                        time.monotonic() - down_since)
        self._up = True

    def _stored_offsets(self) -> dict[int, int] | None:
        """The store's offsets, retried while it is unreachable; None when stopping."""
        return self._while_store_down(lambda: self._sink.stored_offsets(self._topic))

    def _rewind(self) -> None:
        offsets = self._stored_offsets()
        if offsets is None:
            return
        for partition in sorted(self._assignment):
            offset = offsets.get(partition, OFFSET_BEGINNING)
            self._consumer.seek(TopicPartition(self._topic, partition, offset))
        log.warning("sink %s: re-reading %s from the stored offsets %s", self._sink.name,
                    self._topic, {p: offsets.get(p, "beginning") for p in sorted(self._assignment)})

    def _commit(self, records: Sequence[SinkRecord]) -> None:
        """For lag visibility only; the store's offsets are what counts."""
        highest: dict[int, int] = {}
        for record in records:
            highest[record.partition] = max(highest.get(record.partition, -1), record.offset)
        offsets = [TopicPartition(self._topic, p, o + 1) for p, o in highest.items()
                   if p in self._assignment]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            log.debug("sink %s: offset commit to Kafka failed (lag only): %s",
                      self._sink.name, exc)

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.fatal():
            raise RatingError(f"sink {self._sink.name}: consumer fatal error: {error}")
        log.warning("sink %s: consumer error: %s", self._sink.name, error)
        return False

    # -- assignment ----------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        offsets = {} if self._replay else self._stored_offsets()
        if offsets is None:  # stopping: the loop ends before processing anything
            offsets = {}
        self._refuse_if_ahead(consumer, partitions, offsets)
        for tp in partitions:
            tp.offset = offsets.get(tp.partition, OFFSET_BEGINNING)
        consumer.assign(partitions)
        self._assignment = {tp.partition for tp in partitions}
        if self._ops is not None:
            self._ops.assigned(partitions)
        log.info("sink %s: assigned %s from %s", self._sink.name, self._topic,
                 {tp.partition: offsets.get(tp.partition, "beginning") for tp in partitions})

    def _refuse_if_ahead(self, consumer: Consumer, partitions: list[TopicPartition],
                         offsets: dict[int, int]) -> None:
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10.0)[1]
                for tp in partitions if tp.partition in offsets}
        ahead = offsets_beyond_end(offsets, ends)
        if ahead:
            self._stop.set()  # raised from the rebalance callback: end the run, do not retry
            raise StoreAheadOfTopic(
                f"sink {self._sink.name}: its store has read {self._topic} further than the "
                f"topic goes (partition: (stored next offset, end offset) {ahead}): the topic "
                "was created again while the store kept its data; empty the store (or point "
                "the sink at a new one) before starting it")

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment -= {tp.partition for tp in partitions}
        if self._ops is not None:
            self._ops.revoked(partitions)
        log.info("sink %s: revoked %s%s", self._sink.name, self._topic,
                 sorted(tp.partition for tp in partitions))
