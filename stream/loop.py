"""The one place that owns the commit order: the exactly-once batch loop.

Invariant (read this before changing anything below):
  For every batch, (a) the stages' output records, (b) their state changelog
  records and (c) the consumed input offsets are written in ONE Kafka
  transaction. Readers use read_committed, so either all of a batch becomes
  visible or none of it does; a crash at any point leaves the group's
  committed offsets at the start of the uncommitted batch and the state
  changelog at the matching point.

  A batch's transaction is finished (offsets, commit) on a commit thread
  while this thread consumes and processes the next batch, on the state the
  first one left. The next batch's outputs are produced only after that
  commit succeeded, in the next transaction. When it failed, both batches
  are forgotten together: the transaction aborted, the consumer rewound to
  the first offsets of both, and in-memory state re-restored from the
  committed changelog; then they are consumed again.

  A rebalance callback first waits for the batch being committed (and aborts
  and resets it if it failed), so it never runs while a transaction is open,
  and state handed over to another instance is exactly what was committed.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from processors.errors import RatingError
from stream import metrics
from stream.errors import TransientError
from stream.messages import (
    Output,
    all_usable,
    first_offsets,
    next_offsets,
    outputs_of,
    produce_all,
)

log = logging.getLogger(__name__)
GC_THRESHOLD = 10_000  # allocations between collections of the youngest generation


class FatalProcessingError(RatingError):
    """The loop cannot continue (fenced by a newer instance, fatal producer error)."""


class Stage(Protocol):
    """One step of the pipeline, driven by the loop. Stages never touch offsets."""

    name: str

    @property
    def topics(self) -> Sequence[str]: ...

    def process(self, message: Message) -> Iterable[Output]:
        """Outputs for one consumed record; bad input becomes a dead-letter Output."""
        ...

    def end_batch(self) -> Iterable[Output]:
        """State changelog records for what changed in this batch."""
        ...

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Restore state for partitions now owned (from the committed changelog)."""
        ...

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Drop state for partitions no longer owned."""
        ...

    def abort_batch(self) -> None:
        """Forget uncommitted state changes (called after an aborted transaction)."""
        ...


class AssignmentListener(Protocol):
    """Told about assignments (for readiness and lag); never touches offsets or state."""

    def assigning(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions arrived; the stages are about to restore their state."""
        ...

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """The stages have restored the state of ``partitions``."""
        ...

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions are gone (revoked or lost)."""
        ...


class StatelessStage:
    """The state hooks of a stage that keeps no state: all no-ops."""

    def end_batch(self) -> Iterable[Output]:
        return ()

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        return None

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        return None

    def abort_batch(self) -> None:
        return None


class ExactlyOnceLoop:
    def __init__(self, consumer: Consumer, producer: Producer, stages: Sequence[Stage],
                 batch_size: int, batch_timeout_s: float,
                 listener: AssignmentListener | None = None):
        self._consumer = consumer
        self._producer = producer
        self._stages = list(stages)
        self._stage_by_topic = {topic: stage for stage in stages for topic in stage.topics}
        self._batch_size = batch_size
        self._batch_timeout_s = batch_timeout_s
        self._assignment: list[TopicPartition] = []
        self.batches_committed = 0
        self._backoff_s = 0.0
        self._listener = listener
        # One thread finishes each batch's transaction (offsets, commit) while this one
        # consumes and processes the next batch: the two overlap, never two commits.
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit")
        self._committing: _Committing | None = None

    def run(self, should_stop: Callable[[], bool],
            between_batches: Callable[[], object] | None = None) -> None:
        self._producer.init_transactions()
        self._consumer.subscribe(list(self._stage_by_topic), on_assign=self._on_assign,
                                 on_revoke=self._on_revoke, on_lost=self._on_revoke)
        # Every record allocates a few hundred short-lived objects, nearly all freed by
        # reference counting (no cycles). With the default threshold (700) the cyclic
        # collector ran every few records, and its older-generation passes walk the whole
        # in-memory state: 5-8% of the time. Collect less often while the loop runs.
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], GC_THRESHOLD), *thresholds[1:])
        try:
            while not should_stop():
                if between_batches is not None:
                    between_batches()
                messages = self._consumer.consume(self._batch_size, self._batch_timeout_s)
                batch = messages if all_usable(messages) else [
                    m for m in messages if self._usable(m)]
                if batch:
                    self._process_batch(batch)
                else:
                    self._settle()
        finally:
            try:
                self._settle()
            finally:
                self._committer.shutdown()
                gc.set_threshold(*thresholds)
                self._consumer.close()
                self._producer.flush(10)

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.fatal():
            raise FatalProcessingError(f"consumer fatal error: {error}")
        log.warning("consumer error on %s[%s]: %s", message.topic(), message.partition(), error)
        return False

    def _process_batch(self, batch: list[Message]) -> None:
        started = time.perf_counter()
        try:
            outputs = self._outputs_of(batch)
        except TransientError as exc:
            self._give_up(batch)
            self._backoff_s = min(self._backoff_s * 2 or 0.5, 30.0)
            log.warning("batch aborted, retrying in %.1f s: %s", self._backoff_s, exc)
            time.sleep(self._backoff_s)
            return
        except Exception:
            # A bug or a transient dependency failure (e.g. the registry is down):
            # nothing of this batch may become visible. Forget it, rewind, then re-raise.
            self._give_up(batch)
            raise
        # This batch was processed on the state the previous batch left: it may be written
        # only once that batch is committed, and is redone with it if that one aborted.
        if not self._settle(also_redo=batch):
            return
        try:
            self._producer.begin_transaction()
            produce_all(self._producer, outputs)
        except KafkaException as exc:
            self._abort([batch], exc)
            return
        self._committing = _Committing(
            self._committer.submit(self._commit, batch, self._consumer.consumer_group_metadata(),
                                   started), batch)

    def _outputs_of(self, batch: list[Message]) -> list[Output]:
        """Every output of the batch, changelog records last (state changes are applied)."""
        return outputs_of(batch, self._stage_by_topic, self._stages)

    def _commit(self, batch: list[Message], group_metadata: object, started: float) -> None:
        """On the commit thread: the batch's offsets into its transaction, then commit."""
        self._producer.send_offsets_to_transaction(next_offsets(batch), group_metadata)
        while True:
            try:
                self._producer.commit_transaction()
                break
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.retriable():
                    log.warning("commit_transaction retriable error, retrying: %s", error)
                    continue
                raise
        self.batches_committed += 1
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.TRANSACTIONS.labels(result="committed").inc()

    def _settle(self, also_redo: list[Message] | None = None,
                leaving: Sequence[TopicPartition] = ()) -> bool:
        """Wait for the batch being committed; True when it is (or there was none).

        When its transaction failed: abort it, forget the state changes of it and of
        ``also_redo`` (processed on top of it), and rewind to the first of either, but
        for the partitions ``leaving`` (being revoked: the next owner starts from the
        committed offsets anyway)."""
        committing, self._committing = self._committing, None
        if committing is None:
            return True
        try:
            committing.done.result()
        except KafkaException as exc:
            self._abort([committing.batch, also_redo or []], exc, leaving)
            return False
        self._backoff_s = 0.0
        return True

    def _give_up(self, batch: list[Message]) -> None:
        """Processing ``batch`` failed before its transaction began: forget and rewind it."""
        if not self._settle(also_redo=batch):
            return  # the batch before failed too: both are already forgotten and rewound
        metrics.TRANSACTIONS.labels(result="aborted").inc()
        self._rewind([batch])

    def _abort(self, batches: Sequence[list[Message]], cause: KafkaException,
               leaving: Sequence[TopicPartition] = ()) -> None:
        error: KafkaError = cause.args[0]
        if error.fatal():
            # Fenced by a newer instance with our transactional id, or the producer is
            # unusable: exit; a restart resumes from the last committed batch.
            raise FatalProcessingError(f"transaction failed fatally: {error}") from cause
        # Abortable or retriable (e.g. the coordinator moved): abort, rewind, redo.
        log.warning("aborting transaction: %s", error)
        self._producer.abort_transaction()
        metrics.TRANSACTIONS.labels(result="aborted").inc()
        self._rewind(batches, leaving)

    def _rewind(self, batches: Sequence[list[Message]],
                leaving: Sequence[TopicPartition] = ()) -> None:
        """Back to the first offset of ``batches`` per partition; state as committed."""
        gone = {(tp.topic, tp.partition) for tp in leaving}
        for tp in first_offsets([message for batch in batches for message in batch]):
            if (tp.topic, tp.partition) not in gone:
                self._consumer.seek(tp)
        for stage in self._stages:
            stage.abort_batch()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle()
        self._assignment = list(partitions)
        log.info("partitions assigned %s", _describe(partitions))
        if self._listener is not None:
            self._listener.assigning(partitions)
        for stage in self._stages:
            stage.assigned([tp for tp in partitions if tp.topic in stage.topics])
        if self._listener is not None:
            self._listener.assigned(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The batch being committed holds these partitions' offsets and state: finish it
        # (or abort it) before they move, so the next owner starts from what was committed.
        self._settle(leaving=partitions)
        log.info("partitions revoked %s", _describe(partitions))
        for stage in self._stages:
            stage.revoked([tp for tp in partitions if tp.topic in stage.topics])
        self._assignment = []
        if self._listener is not None:
            self._listener.revoked(partitions)


class _Committing(NamedTuple):
    done: Future[None]
    batch: list[Message]


def _describe(partitions: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
