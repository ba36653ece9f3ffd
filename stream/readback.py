"""Read a topic back with read_committed (summaries, `rating tail`, tests)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, TopicPartition

from processors.errors import RatingError
from stream.clients import reading_consumer, topic_metadata
from stream.messages import origin_of
from stream.serde import SerdeError
from stream.settings import Connections

OFFSET_BEGINNING = -2


class ValueDecoder(Protocol):
    """What a topic's values decode with: ``stream.serde.AvroDecoder`` (Avro topics) or
    ``JsonDecoder`` (licence.runs)."""

    def decode(self, data: bytes | None) -> dict[str, Any]: ...


class JsonDecoder:
    """Values that are JSON objects (the run reports on licence.runs)."""

    def decode(self, data: bytes | None) -> dict[str, Any]:
        try:
            value = json.loads(data or b"")
        except ValueError as exc:
            raise SerdeError(f"value is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise SerdeError(f"value is a JSON {type(value).__name__}, not an object")
        return value


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: dict[str, Any]


def read_all(connections: Connections, topic: str, decoder: ValueDecoder,
             timeout_s: float = 30.0, since: dict[int, int] | None = None) -> list[Record]:
    """Every committed record of ``topic`` from ``since`` (or the beginning) to the end."""
    return list(iter_records(connections, topic, decoder, timeout_s=timeout_s, since=since))


def end_offsets(connections: Connections, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
    """partition -> high watermark now: pass as ``since`` to read only what comes later."""
    consumer = reading_consumer(connections)
    try:
        metadata = topic_metadata(consumer, timeout_s, topic, KafkaErrorOnRead)[topic]
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s,
                                                  cached=False)[1]
                for p in metadata.partitions}
    finally:
        consumer.close()


def iter_records(connections: Connections, topic: str, decoder: ValueDecoder, *,
                 follow: bool = False, timeout_s: float = 30.0,
                 since: dict[int, int] | None = None) -> Iterator[Record]:
    consumer = reading_consumer(connections)
    try:
        metadata = topic_metadata(consumer, timeout_s, topic, KafkaErrorOnRead)[topic]
        if metadata.error is not None:
            raise KafkaErrorOnRead(f"topic {topic}: {metadata.error}")
        since = since or {}
        consumer.assign([TopicPartition(topic, p, since.get(p, OFFSET_BEGINNING))
                         for p in metadata.partitions])
        pending = set(metadata.partitions)
        deadline = time.monotonic() + timeout_s
        while follow or (pending and time.monotonic() < deadline):
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                continue
            origin = origin_of(message)
            yield Record(topic=topic, partition=origin.partition, offset=origin.offset,
                         key=message.key(), value=decoder.decode(message.value()))
        if pending:
            raise KafkaErrorOnRead(f"topic {topic}: partitions {sorted(pending)} not read to "
                                   f"the end within {timeout_s} s")
    finally:
        consumer.close()


class KafkaErrorOnRead(RatingError):
    pass
