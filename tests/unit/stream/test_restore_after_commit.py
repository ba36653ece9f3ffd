"""A restore right after a successful commit must see that commit's changelog.

Kafka's transaction coordinator answers EndTxn (so ``commit_transaction()`` returns)
as soon as PREPARE_COMMIT is in its log, and writes the COMMIT markers to the data
partitions afterwards (TransactionCoordinator.handleEndTransaction: "we can respond
to the client immediately and continue to write the txn markers"). Until the marker
is on the changelog partition, its last stable offset (LSO) stays at the first record
of that transaction, and a read_committed consumer reaches PARTITION_EOF at the LSO
(librdkafka: the end offset is the LastStableOffset for read_committed). A restore
that stopped there lost the batch just committed (found by review).

The fake broker below models that: a committed transaction's records are below the
LSO only once its markers are written, which happens while the restore polls (time
passes), or at the latest when the same producer begins its next transaction.
``markers_at_once=True`` is a broker whose markers are written before
commit_transaction returns. The restore reads to the log end taken when it starts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, TopicPartition

from stream import loop as loop_module
from stream.errors import TransientError
from stream.loop import ExactlyOnceLoop
from stream.messages import Output
from stream.state_store import ChangelogStore, KafkaErrorDuringRestore, LogEnds, undecided_timeout_s

CHANGELOG = "counter.changelog"


class Broker:
    """One changelog partition (0) with transactions, and the group's committed offsets."""

    def __init__(self, markers_at_once: bool) -> None:
        self.markers_at_once = markers_at_once
        self.records: list[tuple[int, bytes, bytes | None]] = []  # (txn, key, value)
        self.txn_state: dict[int, str] = {}  # open | pending-marker | committed | aborted
        self.txn = 0
        self.offsets: dict[tuple[str, int], int] = {}

    def lso(self) -> int:
        for offset, (txn, _, _) in enumerate(self.records):
            if self.txn_state[txn] in ("open", "pending-marker"):
                return offset
        return len(self.records)

    def write_markers(self) -> None:
        for txn, state in self.txn_state.items():
            if state == "pending-marker":
                self.txn_state[txn] = "committed"


class _Eof:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition = partition
        self._offset = offset

    def offset(self) -> int:
        return self._offset

    def error(self) -> KafkaError:
        return KafkaError(KafkaError._PARTITION_EOF)

    def partition(self) -> int:
        return self._partition


class RestoreConsumer:
    """read_committed: records below the LSO of committed transactions, then EOF."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._queue: list[Any] = []
        self._position = 0
        self.polls_at_end = 0

    def assign(self, tps: Sequence[TopicPartition]) -> None:
        self._position = 0
        self._fetch()

    def _fetch(self) -> None:
        """Every committed record from the position to the LSO, then EOF there."""
        lso = self._broker.lso()
        self._queue = [Message(topic=CHANGELOG, partition=0, offset=offset, key=key, value=value)
                       for offset, (txn, key, value) in enumerate(self._broker.records)
                       if self._position <= offset < lso
                       and self._broker.txn_state[txn] == "committed"]
        self._queue.append(_Eof(0, lso))
        self._position = lso

    def poll(self, timeout: float) -> Any:
        if self._queue:
            return self._queue.pop(0)
        self.polls_at_end += 1
        if self._broker.lso() > self._position:  # the markers landed meanwhile
            self._fetch()
        else:
            self._broker.write_markers()  # the coordinator is writing them
        return None

    def unassign(self) -> None:
        self._queue = []

    def close(self) -> None:
        return None


def log_ends(broker: Broker) -> LogEnds:
    """Every record's offset counts, decided or not (read_uncommitted)."""
    return lambda topic, partitions: dict.fromkeys(partitions, len(broker.records))


class Producer:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._offsets: list[TopicPartition] = []

    def init_transactions(self) -> None:
        return None

    def begin_transaction(self) -> None:
        # AddPartitionsToTxn waits (CONCURRENT_TRANSACTIONS) until the last markers are written.
        self._broker.write_markers()
        self._broker.txn += 1
        self._broker.txn_state[self._broker.txn] = "open"

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                partition: int = -1, headers: Any = None) -> None:
        if topic == CHANGELOG:
            assert key is not None
            self._broker.records.append((self._broker.txn, key, value))

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], metadata: Any) -> None:
        self._offsets = list(offsets)

    def commit_transaction(self) -> None:
        for tp in self._offsets:
            self._broker.offsets[(tp.topic, tp.partition)] = tp.offset
        self._broker.txn_state[self._broker.txn] = "pending-marker"
        if self._broker.markers_at_once:
            self._broker.write_markers()

    def abort_transaction(self) -> None:
        self._broker.txn_state[self._broker.txn] = "aborted"

    def flush(self, timeout: float) -> None:
        return None


class Consumer:
    """Hands out the input topic from a position that seek() moves."""

    def __init__(self, records: list[Message]) -> None:
        self._records = records
        self._position = 0

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        return None

    def consume(self, size: int, timeout: float) -> list[Message]:
        batch = self._records[self._position:self._position + 1]  # one record a batch
        self._position += len(batch)
        return batch

    def seek(self, tp: TopicPartition) -> None:
        self._position = tp.offset

    def consumer_group_metadata(self) -> str:
        return "group"

    def close(self) -> None:
        return None


class Counts:
    """A ChangelogState: how many records of each key were consumed."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._dirty: set[str] = set()

    def add(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        self._dirty.add(key)

    def dirty_keys(self) -> set[str]:
        return set(self._dirty)

    def clear_dirty(self) -> None:
        self._dirty.clear()

    def dump(self, key: str) -> bytes | None:
        return str(self.counts[key]).encode()

    def load(self, key: str, value: bytes | None) -> None:
        if value is None:
            self.counts.pop(key, None)
        else:
            self.counts[key] = int(value)


class CountingStage:
    """Counts per key; the record at ``flaky_offset`` fails once (the registry was down)."""

    name = "counter"

    def __init__(self, store: ChangelogStore[Counts], flaky_offset: int) -> None:
        self._store = store
        self._flaky_offset: int | None = flaky_offset

    @property
    def topics(self) -> Sequence[str]:
        return ["in"]

    def process(self, message: Message) -> Iterable[Output]:
        if message.offset() == self._flaky_offset:
            self._flaky_offset = None
            raise TransientError("schema registry unreachable")
        key = message.key()
        assert key is not None
        self._store.state(0).add(key.decode())
        return []

    def end_batch(self) -> Iterable[Output]:
        return self._store.changelog_records()

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        self._store.restore([tp.partition for tp in partitions])

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        self._store.drop([tp.partition for tp in partitions])

    def abort_batch(self) -> None:
        self._store.reset()


@pytest.mark.parametrize("markers_at_once", [True, False])
def test_a_transient_failure_right_after_a_commit_restores_that_commits_state(
        markers_at_once: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_module.time, "sleep", lambda s: None)  # no backoff wait
    broker = Broker(markers_at_once)
    store: ChangelogStore[Counts] = ChangelogStore(
        RestoreConsumer(broker), CHANGELOG, Counts, log_ends(broker))  # type: ignore[arg-type]
    stage = CountingStage(store, flaky_offset=1)
    stage.assigned([TopicPartition("in", 0)])  # as on_assign does
    inputs = [Message(topic="in", partition=0, offset=i, key=b"a", value=b"x") for i in range(2)]
    loop = ExactlyOnceLoop(Consumer(inputs), Producer(broker), [stage],  # type: ignore[arg-type]
                           batch_size=1, batch_timeout_s=0.0)
    turns = iter(range(50))
    loop.run(should_stop=lambda: next(turns) == 49)
    broker.write_markers()

    # Both input records are committed (the group resumes after offset 1)...
    assert broker.offsets == {("in", 0): 2}
    # ...so the committed state must count both of them.
    restored = ChangelogStore(RestoreConsumer(broker), CHANGELOG, Counts,  # type: ignore[arg-type]
                              log_ends(broker))
    restored.restore([0])
    assert restored.state(0).counts == {"a": 2}


def test_a_restore_waits_for_the_markers_of_a_commit_that_has_returned() -> None:
    broker = Broker(markers_at_once=False)
    producer = Producer(broker)
    producer.begin_transaction()
    producer.produce(CHANGELOG, key=b"a", value=b"5")
    producer.commit_transaction()  # returned; the marker is not written yet
    assert broker.lso() == 0
    consumer = RestoreConsumer(broker)
    store = ChangelogStore(consumer, CHANGELOG, Counts, log_ends(broker))  # type: ignore[arg-type]
    store.restore([0])
    assert store.state(0).counts == {"a": 5}
    assert consumer.polls_at_end >= 1  # it reached the (read_committed) end, and waited


def test_an_aborted_transaction_below_the_log_end_is_skipped_once_decided() -> None:
    broker = Broker(markers_at_once=True)
    producer = Producer(broker)
    producer.begin_transaction()
    producer.produce(CHANGELOG, key=b"a", value=b"1")
    producer.commit_transaction()
    producer.begin_transaction()
    producer.produce(CHANGELOG, key=b"a", value=b"2")
    producer.abort_transaction()
    store = ChangelogStore(RestoreConsumer(broker), CHANGELOG, Counts,  # type: ignore[arg-type]
                           log_ends(broker))
    store.restore([0])
    assert store.state(0).counts == {"a": 1}


def test_a_transaction_that_stays_undecided_fails_the_restore_naming_the_partition() -> None:
    broker = Broker(markers_at_once=False)
    producer = Producer(broker)
    producer.begin_transaction()
    producer.produce(CHANGELOG, key=b"a", value=b"1")  # left open: a crashed owner's
    store = ChangelogStore(RestoreConsumer(broker), CHANGELOG, Counts,  # type: ignore[arg-type]
                           log_ends(broker), undecided_timeout_s=0.2)
    with pytest.raises(KafkaErrorDuringRestore,
                       match=r"\[0\].*still undecided after 0 s .*partition 0: 0/1"):
        store.restore([0])


def test_a_restore_waits_a_minute_longer_than_the_transaction_timeout() -> None:
    # The broker aborts a crashed owner's transaction after its timeout (and up to 10 s
    # of clean-up): a restore that gave up earlier would fail on every restart meanwhile.
    assert undecided_timeout_s(60_000) == 120.0
    assert undecided_timeout_s(900_000) == 960.0


class SlowRestoreConsumer(RestoreConsumer):
    """Each record takes a while to read: a large changelog."""

    def poll(self, timeout: float) -> Any:
        message = super().poll(timeout)
        if message is not None and message.error() is None:
            time.sleep(0.05)
        return message


def test_the_wait_for_a_decision_is_timed_from_when_it_starts_not_from_the_restore() -> None:
    broker = Broker(markers_at_once=True)
    producer = Producer(broker)
    for value in range(6):  # committed: 0.3 s to read
        producer.begin_transaction()
        producer.produce(CHANGELOG, key=f"k{value}".encode(), value=b"1")
        producer.commit_transaction()
    broker.markers_at_once = False
    producer.begin_transaction()
    producer.produce(CHANGELOG, key=b"a", value=b"7")
    producer.commit_transaction()  # its marker comes while the restore waits at the end
    store = ChangelogStore(SlowRestoreConsumer(broker), CHANGELOG,  # type: ignore[arg-type]
                           Counts, log_ends(broker), undecided_timeout_s=0.2)
    store.restore([0])
    assert store.state(0).counts["a"] == 7
    assert len(store.state(0).counts) == 7
