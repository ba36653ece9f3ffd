"""Typed access to consumed messages (the client types every field as optional), and
the record a stage asks the loop to produce."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Message

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
