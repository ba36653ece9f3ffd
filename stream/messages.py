"""Typed access to consumed messages (the client types every field as optional), the
record a stage asks the loop to produce, and the loop's per-record steps.

The per-record steps of ``stream/loop.py`` live here because this module is compiled
(``stream/compiled.py``) and the loop is not: there they cost an interpreted call and
attribute lookups per record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import Message, Producer, TopicPartition

from processors.events import Origin


# Not frozen, and its own __init__: a few are built per record (see processors/events.py).
@dataclass(slots=True, init=False)
class Output:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None  # explicit for changelog records, else the key decides
    headers: list[tuple[str, str | bytes | None]]

    def __init__(self, topic: str, key: bytes | None, value: bytes | None,
                 partition: int | None = None,
                 headers: list[tuple[str, str | bytes | None]] | None = None) -> None:
        self.topic = topic
        self.key = key
        self.value = value
        self.partition = partition
        self.headers = [] if headers is None else headers


def origin_of(message: Message) -> Origin:
    """Topic, partition and offset of a consumed (not produced) message: always set."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError("message without topic/partition/offset: not a consumed record")
    return Origin(topic=topic, partition=partition, offset=offset)


class RecordStage(Protocol):
    """What ``outputs_of`` asks of a stage (stream.loop.Stage has more)."""

    def process(self, message: Message) -> Iterable[Output]: ...

    def end_batch(self) -> Iterable[Output]: ...


def all_usable(messages: Sequence[Message]) -> bool:
    """True when no message of the batch is an error event (the usual case)."""
    return all(message.error() is None for message in messages)


def outputs_of(batch: Sequence[Message], stage_by_topic: Mapping[str, RecordStage],
               stages: Sequence[RecordStage]) -> list[Output]:
    """Every output of the batch, in order, then each stage's changelog records."""
    outputs: list[Output] = []
    for message in batch:
        outputs.extend(stage_by_topic[message.topic() or ""].process(message))
    for stage in stages:
        outputs.extend(stage.end_batch())
    return outputs


def produce_all(producer: Producer, outputs: Sequence[Output]) -> None:
    """Each output into the producer's open transaction, in order.

    Arguments by position: the client parses keyword arguments on every call, a quarter
    of what ``produce`` costs (1.5 against 2.0 µs a record, measured). A full local queue
    is served (delivery reports) and the record retried."""
    for output in outputs:
        while True:
            try:
                if output.headers:
                    producer.produce(output.topic, output.value, output.key,
                                     -1 if output.partition is None else output.partition,
                                     headers=output.headers)
                elif output.partition is None:
                    producer.produce(output.topic, output.value, output.key)
                else:
                    producer.produce(output.topic, output.value, output.key, output.partition)
                break
            except BufferError:
                producer.poll(0.05)


def next_offsets(batch: Sequence[Message]) -> list[TopicPartition]:
    """The offset to resume from per partition: last consumed + 1."""
    highest: dict[tuple[str, int], int] = {}
    for message in batch:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None:
            continue  # never for a consumed record (origin_of would raise)
        key = (topic, partition)
        if offset > highest.get(key, -1):
            highest[key] = offset
    return [TopicPartition(topic, partition, offset + 1)
            for (topic, partition), offset in highest.items()]


def first_offsets(batch: Sequence[Message]) -> list[TopicPartition]:
    """Where to rewind after an abort: the first offset of the batch per partition."""
    lowest: dict[tuple[str, int], int] = {}
    for message in batch:
        origin = origin_of(message)
        key = (origin.topic, origin.partition)
        lowest[key] = min(lowest.get(key, origin.offset), origin.offset)
    return [TopicPartition(topic, partition, offset)
            for (topic, partition), offset in lowest.items()]
