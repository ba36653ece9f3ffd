"""Typed access to consumed messages (the client types every field as optional)."""

from __future__ import annotations

from confluent_kafka import Message

from processors.events import Origin


def origin_of(message: Message) -> Origin:
    """Topic, partition and offset of a consumed (not produced) message: always set."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError("message without topic/partition/offset: not a consumed record")
    return Origin(topic=topic, partition=partition, offset=offset)
