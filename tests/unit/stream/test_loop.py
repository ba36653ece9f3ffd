"""The exactly-once loop with fake clients: what goes into one transaction, in which order."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import Message, TopicPartition

from stream.loop import GC_THRESHOLD, ExactlyOnceLoop, StatelessStage
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

    def produce(self, topic: str, **fields: Any) -> None:
        self.calls.append(("produce", topic, fields))

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
    assert produced[:4] == [
        ("a-out", {"key": b"k", "value": b"in-a:0:5", "headers": [("h", b"1")]}),
        ("b-out", {"key": b"k", "value": b"in-b:1:7"}),  # no headers: none passed
        ("a-out", {"key": b"k", "value": b"in-a:0:6", "headers": [("h", b"1")]}),
        ("a-out", {"key": b"k", "value": b"in-a:2:1", "headers": [("h", b"1")]})]
    assert produced[4:] == [("changelog", {"key": b"a", "value": None, "partition": 0,
                                           "headers": None}),
                            ("changelog", {"key": b"b", "value": None, "partition": 0,
                                           "headers": None})]
    assert producer.calls[-2] == ("offsets", [("in-a", 0, 7), ("in-a", 2, 2), ("in-b", 1, 8)],
                                  "group-metadata")
    # The collector runs less often while the loop runs, and as before afterwards.
    assert set(stages[0].thresholds) == {max(before[0], GC_THRESHOLD)}
    assert gc.get_threshold() == before
