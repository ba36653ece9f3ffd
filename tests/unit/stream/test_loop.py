"""The exactly-once loop with fake clients: what goes into one transaction, in which order."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from stream.loop import GC_THRESHOLD, ExactlyOnceLoop, FatalProcessingError, StatelessStage
from stream.messages import Output


class FakeConsumer:
    def __init__(self, batches: list[list[Message]]):
        self._batches = batches

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.topics = topics

    def consume(self, size: int, timeout: float) -> list[Message]:
        return self._batches.pop(0) if self._batches else []

    def consumer_group_metadata(self) -> str:
        return "group-metadata"

    def close(self) -> None:
        return None


class FakeProducer:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def init_transactions(self) -> None:
        self.calls.append(("init",))

    def begin_transaction(self) -> None:
        self.calls.append(("begin",))

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                partition: int = -1, headers: Any = None) -> None:  # Producer.produce's order
        self.calls.append(("produce", topic, {"key": key, "value": value,
                                              "partition": partition, "headers": headers}))

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], metadata: str) -> None:
        self.calls.append(("offsets", sorted((tp.topic, tp.partition, tp.offset)
                                             for tp in offsets), metadata))

    def commit_transaction(self) -> None:
        self.calls.append(("commit",))

    def flush(self, timeout: float) -> None:
        return None


class Echo(StatelessStage):
    """Forwards each record; a changelog-like record per batch; notes the GC threshold."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self._source = source
        self.thresholds: list[int] = []

    @property
    def topics(self) -> Sequence[str]:
        return [self._source]

    def process(self, message: Message) -> Iterable[Output]:
        self.thresholds.append(gc.get_threshold()[0])
        headers: list[tuple[str, str | bytes | None]] = [("h", b"1")] if self.name == "a" else []
        return [Output(topic=f"{self.name}-out", key=message.key(), value=message.value(),
                       headers=headers)]

    def end_batch(self) -> Iterable[Output]:
        return [Output(topic="changelog", key=self.name.encode(), value=None, partition=0)]


def _message(topic: str, partition: int, offset: int) -> Message:
    return Message(topic=topic, partition=partition, offset=offset, key=b"k",
                   value=f"{topic}:{partition}:{offset}".encode())


def test_one_batch_is_one_transaction_with_outputs_state_and_next_offsets() -> None:
    batch = [_message("in-a", 0, 5), _message("in-b", 1, 7), _message("in-a", 0, 6),
             _message("in-a", 2, 1)]
    producer = FakeProducer()
    stages = [Echo("a", "in-a"), Echo("b", "in-b")]
    loop = ExactlyOnceLoop(FakeConsumer([batch]), producer, stages,  # type: ignore[arg-type]
                           batch_size=10, batch_timeout_s=0.0)
    before = gc.get_threshold()
    loop.run(should_stop=lambda: loop.batches_committed == 1)

    assert [call[0] for call in producer.calls] == [
        "init", "begin", "produce", "produce", "produce", "produce", "produce", "produce",
        "offsets", "commit"]
    produced = [(call[1], call[2]) for call in producer.calls if call[0] == "produce"]
    # Partition -1: the key decides. Headers only where the stage gave some.
    assert produced[:4] == [
        ("a-out", {"key": b"k", "value": b"in-a:0:5", "partition": -1,
                   "headers": [("h", b"1")]}),
        ("b-out", {"key": b"k", "value": b"in-b:1:7", "partition": -1, "headers": None}),
        ("a-out", {"key": b"k", "value": b"in-a:0:6", "partition": -1,
                   "headers": [("h", b"1")]}),
        ("a-out", {"key": b"k", "value": b"in-a:2:1", "partition": -1,
                   "headers": [("h", b"1")]})]
    assert produced[4:] == [("changelog", {"key": b"a", "value": None, "partition": 0,
                                           "headers": None}),
                            ("changelog", {"key": b"b", "value": None, "partition": 0,
                                           "headers": None})]
    assert producer.calls[-2] == ("offsets", [("in-a", 0, 7), ("in-a", 2, 2), ("in-b", 1, 8)],
                                  "group-metadata")
    # The collector runs less often while the loop runs, and as before afterwards.
    assert set(stages[0].thresholds) == {max(before[0], GC_THRESHOLD)}
    assert gc.get_threshold() == before


# The commit of a batch overlaps the processing of the next one (a commit thread).
# These fakes share one log, so the order of consumer, producer and stage calls
# across both threads can be asserted.

ABORTABLE = KafkaError(KafkaError._TIMED_OUT, "coordinator timed out", fatal=False,
                       retriable=False, txn_requires_abort=True)
FENCED = KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True)


class ScriptedConsumer(FakeConsumer):
    """Returns its batches in turn; ``seek`` and the rebalance callbacks are logged."""

    def __init__(self, log: list[Any], batches: list[list[Message]],
                 revoke_before: int | None = None):
        super().__init__(batches)
        self._log = log
        self._revoke_before = revoke_before
        self._calls = 0

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self._callbacks = callbacks

    def consume(self, size: int, timeout: float) -> list[Message]:
        self._calls += 1
        if self._calls == self._revoke_before:
            self._log.append(("rebalance",))
            self._callbacks["on_revoke"](self, [TopicPartition("in-a", 0)])
        return super().consume(size, timeout)

    def seek(self, tp: TopicPartition) -> None:
        self._log.append(("seek", tp.topic, tp.partition, tp.offset))


class ScriptedProducer(FakeProducer):
    """Commits fail as told (in turn); a commit may wait until the next batch is processed."""

    def __init__(self, log: list[Any], failures: list[KafkaError | None],
                 hold_commit: threading.Event | None = None):
        super().__init__()
        self.calls = log
        self._failures = failures
        self._hold_commit = hold_commit

    def commit_transaction(self) -> None:
        if self._hold_commit is not None:
            self.calls.append(("commit-waits", self._hold_commit.wait(5)))
        failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            self.calls.append(("commit-fails", failure.fatal()))
            raise KafkaException(failure)
        self.calls.append(("commit",))

    def abort_transaction(self) -> None:
        self.calls.append(("abort",))


class Recorder(Echo):
    """Echo that logs what it processes and when its state is reset or revoked."""

    def __init__(self, log: list[Any], source: str,
                 processed: threading.Event | None = None, signal_at: int | None = None):
        super().__init__("a", source)
        self._log = log
        self._processed = processed
        self._signal_at = signal_at

    def process(self, message: Message) -> Iterable[Output]:
        self._log.append(("process", message.offset()))
        if self._processed is not None and message.offset() == self._signal_at:
            self._processed.set()
        return super().process(message)

    def end_batch(self) -> Iterable[Output]:
        return ()

    def abort_batch(self) -> None:
        self._log.append(("reset-state",))

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        self._log.append(("revoked",))


def _run(log: list[Any], consumer: FakeConsumer, producer: FakeProducer, stage: Echo,
         commits: int) -> ExactlyOnceLoop:
    loop = ExactlyOnceLoop(consumer, producer, [stage],  # type: ignore[arg-type]
                           batch_size=10, batch_timeout_s=0.0)
    turns = iter(range(100))  # a bound, so a broken loop fails instead of spinning
    loop.run(should_stop=lambda: loop.batches_committed == commits or next(turns) == 99)
    return loop


def test_the_next_batch_is_processed_while_the_previous_one_commits() -> None:
    log: list[Any] = []
    second_processed = threading.Event()
    consumer = ScriptedConsumer(log, [[_message("in-a", 0, 1)], [_message("in-a", 0, 2)]])
    producer = ScriptedProducer(log, [], hold_commit=second_processed)
    _run(log, consumer, producer, Recorder(log, "in-a", second_processed, signal_at=2),
         commits=2)

    first_commit = log.index(("commit-waits", True))  # False: it waited 5 s in vain
    assert log.index(("process", 2)) < first_commit
    # ... but batch 2 is written only in its own transaction, after batch 1 committed.
    assert [call[0] for call in log[first_commit:]] == [
        "commit-waits", "commit", "begin", "produce", "offsets", "commit-waits", "commit"]


def test_a_failed_commit_is_aborted_and_the_batch_processed_on_top_of_it_redone() -> None:
    log: list[Any] = []
    first = [_message("in-a", 0, 1), _message("in-a", 1, 5)]
    second = [_message("in-a", 0, 2), _message("in-a", 2, 9)]
    second_processed = threading.Event()
    consumer = ScriptedConsumer(log, [first, second, first + second])
    producer = ScriptedProducer(log, [ABORTABLE], hold_commit=second_processed)
    _run(log, consumer, producer, Recorder(log, "in-a", second_processed, signal_at=2),
         commits=1)

    failed = log.index(("commit-fails", False))
    assert log[failed + 1:] == [
        # batch 2 was processed before batch 1's commit failed: neither is kept
        ("abort",),
        ("seek", "in-a", 0, 1), ("seek", "in-a", 1, 5), ("seek", "in-a", 2, 9),
        ("reset-state",),
        # the replay: both batches in one transaction
        ("process", 1), ("process", 5), ("process", 2), ("process", 9), ("begin",),
        *[("produce", "a-out", {"key": b"k", "value": f"in-a:{p}:{o}".encode(),
                                "partition": -1, "headers": [("h", b"1")]})
          for p, o in ((0, 1), (1, 5), (0, 2), (2, 9))],
        ("offsets", [("in-a", 0, 3), ("in-a", 1, 6), ("in-a", 2, 10)], "group-metadata"),
        ("commit-waits", True), ("commit",)]
    assert log.index(("process", 2)) < failed
    # Batch 2's outputs never went into a transaction before the replay.
    assert log[:failed].count(("begin",)) == 1


def test_a_fatal_commit_error_stops_the_loop() -> None:
    log: list[Any] = []
    consumer = ScriptedConsumer(log, [[_message("in-a", 0, 1)]])
    producer = ScriptedProducer(log, [FENCED])
    with pytest.raises(FatalProcessingError, match="fenced"):
        _run(log, consumer, producer, Recorder(log, "in-a"), commits=1)
    assert ("abort",) not in log  # a fenced producer cannot abort; the next owner does


def test_partitions_are_revoked_only_after_the_batch_being_committed_is_settled() -> None:
    log: list[Any] = []
    later = threading.Event()
    consumer = ScriptedConsumer(log, [[_message("in-a", 0, 1)], [_message("in-a", 0, 2)]],
                                revoke_before=2)
    producer = ScriptedProducer(log, [], hold_commit=later)
    threading.Timer(0.2, later.set).start()  # the commit takes 0.2 s
    _run(log, consumer, producer, Recorder(log, "in-a"), commits=2)

    assert log.index(("rebalance",)) < log.index(("commit-waits", True)) \
        < log.index(("commit",)) < log.index(("revoked",)) < log.index(("process", 2))


def test_a_failed_commit_found_at_a_revocation_rewinds_only_the_partitions_that_stay() -> None:
    log: list[Any] = []
    later = threading.Event()
    consumer = ScriptedConsumer(log, [[_message("in-a", 0, 1), _message("in-a", 3, 4)],
                                      [_message("in-a", 3, 4)]], revoke_before=2)
    producer = ScriptedProducer(log, [ABORTABLE], hold_commit=later)
    threading.Timer(0.2, later.set).start()  # the commit fails 0.2 s later
    _run(log, consumer, producer, Recorder(log, "in-a"), commits=1)

    rebalance = log.index(("rebalance",))
    assert log[rebalance + 1:rebalance + 7] == [
        ("commit-waits", True), ("commit-fails", False), ("abort",),
        ("seek", "in-a", 3, 4),  # in-a[0] is being revoked: its next owner starts over
        ("reset-state",), ("revoked",)]
