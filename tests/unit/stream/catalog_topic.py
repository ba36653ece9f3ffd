"""The catalog topic in memory: what a ``CatalogFeed`` reads and ``publish_catalog`` writes.

Unit tests run no broker. ``CatalogTopic`` keeps partition 0 as a list of record values;
its consumer hands them out in order and then one end-of-partition event, as the
reading consumer (``enable.partition.eof``) does; its producer appends on ``flush``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, TopicPartition

EXAMPLE_CATALOG = Path(__file__).resolve().parents[3] / "config" / "catalog"

Delivered = Callable[[KafkaError | None, Message], None]


def example_sources() -> dict[str, str]:
    """The example catalog's texts by file name, as they travel on the topic."""
    return {path.name: path.read_text(encoding="utf-8")
            for path in sorted(EXAMPLE_CATALOG.iterdir()) if path.suffix in (".yaml", ".yml")}


def catalog_record(sources: Mapping[str, object]) -> bytes:
    """A record value as ``publish_catalog`` writes it (the version field is informative)."""
    return json.dumps({"version": "ignored", "sources": dict(sources)}).encode()


class CatalogTopic:
    def __init__(self, *values: bytes, readable: bool = True, confirms: bool = True) -> None:
        self.values: list[bytes] = list(values)
        self.readable = readable  # False: every poll times out (Kafka unreachable)
        self.confirms = confirms  # False: flush() times out with the records still queued
        self.consumers: list[TopicConsumer] = []

    def consumer(self, *_args: Any, **_config: Any) -> TopicConsumer:
        consumer = TopicConsumer(self)
        self.consumers.append(consumer)
        return consumer

    def producer(self, *_args: Any, **_config: Any) -> TopicProducer:
        return TopicProducer(self)


class TopicConsumer:
    def __init__(self, topic: CatalogTopic) -> None:
        self._topic = topic
        self._position = 0
        self._eof_at = -1
        self.closed = False

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.name = partitions[0].topic

    def poll(self, timeout: float) -> Message | None:
        if not self._topic.readable:
            return None
        if self._position < len(self._topic.values):
            value = self._topic.values[self._position]
            self._position += 1
            return Message(topic=self.name, partition=0, offset=self._position - 1,
                           key=b"current", value=value)
        if self._eof_at != self._position:  # once per end reached, like librdkafka
            self._eof_at = self._position
            return Message(topic=self.name, partition=0, offset=self._position,
                           error=KafkaError(KafkaError._PARTITION_EOF))
        return None

    def close(self) -> None:
        self.closed = True


class TopicProducer:
    def __init__(self, topic: CatalogTopic) -> None:
        self._topic = topic
        self._queued: list[tuple[bytes, Delivered]] = []

    def produce(self, topic: str, key: bytes, value: bytes, on_delivery: Delivered) -> None:
        self._queued.append((value, on_delivery))

    def flush(self, timeout: float) -> int:
        """Deliver what is queued; how many records are still waiting."""
        if not self._topic.confirms:
            return len(self._queued)
        for value, on_delivery in self._queued:
            self._topic.values.append(value)
            on_delivery(None, Message(partition=0, offset=len(self._topic.values) - 1,
                                      value=value))
        self._queued.clear()
        return 0
