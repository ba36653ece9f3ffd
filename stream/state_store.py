"""Per-partition rating state, made durable through a compacted changelog topic.

State of input partition p lives in changelog partition p. Changelog records
are produced inside the same transaction as the outputs and input offsets
(see stream/loop.py), so restoring partition p by reading its changelog
with read_committed yields exactly the state as of the last committed batch.

Reading to the read_committed end is not enough on its own. The broker answers
``commit_transaction`` once the commit is decided, and writes the COMMIT markers to
the partitions just after; until the marker is on a changelog partition, its last
stable offset stays before that transaction, and a read_committed reader reaches
"end of partition" there. A restore right after a commit (an abort of the next batch,
a rebalance) would then miss the batch just committed, whose input offsets are
committed: its tier steps, credit and seen ids would be lost. So a restore reads each
partition up to its log end as it was when the restore began (every record, decided
or not: ``log_ends``), which it reaches only once every transaction below it is
decided, committed ones read and aborted ones skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, Protocol, TypeVar

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from processors.errors import RatingError
from processors.pipeline import PartitionState
from stream import metrics
from stream.messages import Output

log = logging.getLogger(__name__)
OFFSET_BEGINNING = -2
# A transaction left open by a crashed or fenced owner is aborted by the broker after
# its transaction.timeout.ms (60 s in config/settings.yaml) and a clean-up interval of up
# to 10 s: wait that long for it to be decided, and some more, then give up (a restart
# restores again). See undecided_timeout_s.
UNDECIDED_TIMEOUT_S = 120.0


def undecided_timeout_s(transaction_timeout_ms: int) -> float:
    """How long a restore waits for an undecided transaction: the producers'
    transaction.timeout.ms, and a minute more."""
    return transaction_timeout_ms / 1000 + 60.0

# The log end offset (the offset after the last record, decided or not) of each of a
# topic's partitions: see the module docstring.
LogEnds = Callable[[str, list[int]], dict[int, int]]


def log_ends_of(admin: AdminClient, timeout_s: float = 30.0) -> LogEnds:
    """``LogEnds`` through a ListOffsets request with read_uncommitted isolation."""
    def log_ends(topic: str, partitions: list[int]) -> dict[int, int]:
        request = {TopicPartition(topic, partition): OffsetSpec.latest()  # type: ignore[no-untyped-call]
                   for partition in partitions}
        try:
            answers = admin.list_offsets(request, isolation_level=IsolationLevel.READ_UNCOMMITTED,
                                         request_timeout=timeout_s)
            return {tp.partition: answer.result().offset for tp, answer in answers.items()}
        except KafkaException as exc:
            raise KafkaErrorDuringRestore(partitions, f"listing the log ends: {exc}") from exc
    return log_ends


class ChangelogState(Protocol):
    """What a stage's per-partition state offers the store (see processors/state.py)."""

    def dirty_keys(self) -> set[str]: ...

    def clear_dirty(self) -> None: ...

    def dump(self, key: str) -> bytes | None: ...

    def load(self, key: str, value: bytes | None) -> None: ...


S = TypeVar("S", bound=ChangelogState)


class ChangelogStore(Generic[S]):
    """Per-partition state of any stage (the rater's, the subscription stage's)."""

    def __init__(self, restore_consumer: Consumer, changelog_topic: str,
                 new_state: Callable[[], S], log_ends: LogEnds,
                 undecided_timeout_s: float = UNDECIDED_TIMEOUT_S):
        self._consumer = restore_consumer  # read_committed, partition EOF events on
        self._topic = changelog_topic
        self._new_state = new_state
        self._log_ends = log_ends
        self._undecided_timeout_s = undecided_timeout_s
        self._states: dict[int, S] = {}

    def state(self, partition: int) -> S:
        return self._states[partition]

    def partitions(self) -> list[int]:
        return sorted(self._states)

    def restore(self, partitions: Iterable[int]) -> None:
        self._states.update(self._restore_all(list(partitions)))

    def drop(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._states.pop(partition, None)

    def reset(self) -> None:
        """Discard uncommitted changes: re-read every owned partition's changelog."""
        self.restore(list(self._states))

    def changelog_records(self) -> list[Output]:
        outputs = []
        for partition, state in self._states.items():
            for key in sorted(state.dirty_keys()):
                outputs.append(Output(topic=self._topic, key=key.encode(),
                                      value=state.dump(key), partition=partition))
            state.clear_dirty()
        return outputs

    def close(self) -> None:
        self._consumer.close()

    def _restore_all(self, partitions: list[int]) -> dict[int, S]:
        """Replay the changelog partitions together, each to its log end as it is now,
        every transaction below it decided (see the module docstring)."""
        if not partitions:
            return {}
        started = time.perf_counter()
        ends = self._log_ends(self._topic, partitions)
        states = {partition: self._new_state() for partition in partitions}
        self._consumer.assign([TopicPartition(self._topic, partition, OFFSET_BEGINNING)
                               for partition in partitions])
        pending, restored = set(partitions), 0
        undecided: dict[int, int] = {}  # partition -> where its read_committed end is
        waiting_since = 0.0  # when the first of them stopped short of its log end
        try:
            while pending:
                message = self._consumer.poll(0.05 if undecided else 1.0)
                if message is None:
                    self._check_waiting(undecided, ends, waiting_since)
                    continue  # the partition EOF event always comes, even when empty
                error = message.error()
                partition = message.partition()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF and partition is not None:
                        # Reached again whenever the last stable offset moves on.
                        at = message.offset()
                        if at is not None and at >= ends[partition]:
                            pending.discard(partition)
                            undecided.pop(partition, None)
                        else:
                            if not undecided:
                                waiting_since = time.perf_counter()
                            undecided[partition] = -1 if at is None else at
                        continue
                    raise KafkaErrorDuringRestore(partitions, str(error))
                key = message.key()
                if key is not None and partition is not None:
                    states[partition].load(key.decode(), message.value())
                    restored += 1
        finally:
            self._consumer.unassign()
        for state in states.values():
            state.clear_dirty()
        metrics.STATE_RESTORED.inc(restored)
        log.info("restored %s%s: %d records in %.2f s", self._topic, partitions, restored,
                 time.perf_counter() - started)
        return states

    def _check_waiting(self, undecided: dict[int, int], ends: dict[int, int],
                       waiting_since: float) -> None:
        """Give up when a transaction below the log end stays undecided too long (counted
        from when a partition stopped short of it: reading a large changelog may take
        longer than the timeout, and is not waiting)."""
        if undecided and time.perf_counter() - waiting_since > self._undecided_timeout_s:
            raise KafkaErrorDuringRestore(
                sorted(undecided),
                "a transaction on the changelog is still undecided after "
                f"{self._undecided_timeout_s:.0f} s (read_committed end / log end: "
                + ", ".join(f"partition {p}: {at}/{ends[p]}" for p, at in sorted(undecided.items()))
                + ")")


class ChangelogStateStore(ChangelogStore[PartitionState]):
    """The rater's store."""


class RaterStateStore(Protocol):
    """What the rater needs of its store: ``ChangelogStateStore``, or the faust
    benchmark's table-backed store. A Protocol, not the class, because the compiled
    rater (mypyc) checks a class-typed argument's class at run time."""

    def state(self, partition: int) -> PartitionState: ...

    def changelog_records(self) -> list[Output]: ...

    def restore(self, partitions: Iterable[int]) -> None: ...

    def drop(self, partitions: Iterable[int]) -> None: ...

    def reset(self) -> None: ...


class KafkaErrorDuringRestore(RatingError):
    def __init__(self, partitions: list[int], error: str):
        super().__init__(f"cannot restore changelog partitions {partitions}: {error}")


def partitions_of(tps: Sequence[TopicPartition]) -> list[int]:
    return [tp.partition for tp in tps]
