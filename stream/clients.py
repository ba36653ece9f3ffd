"""Kafka client configurations in one place, so every process agrees on the guarantees."""

from __future__ import annotations

import atexit
import logging
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from processors.errors import RatingError
from stream.kafka_log_flood import KafkaLogFloodFilter
from stream.settings import Connections

REGISTRY_TIMEOUT_S = 10
# librdkafka's own log lines (connection failures, retries) go through Python logging, so
# they come out in the process's format (JSON lines with --log-format json) instead of
# librdkafka's "%3|...|FAIL|..." on stderr. The client hands them over when it is polled
# (poll, consume, flush): a client that is never polled logs nothing. While a broker is
# down they repeat many times a second: the filter shows each kind once, then a count; the
# count of a flood's last stretch comes once its interval is over (the filter's own timer)
# or, at the latest, when the process exits.
KAFKA_LOG = logging.getLogger("librdkafka")
KAFKA_LOG_FLOOD = KafkaLogFloodFilter(KAFKA_LOG)
KAFKA_LOG.addFilter(KAFKA_LOG_FLOOD)
# Before logging's own atexit (registered first, so run last) closes the handlers.
atexit.register(KAFKA_LOG_FLOOD.flush_all)


def admin_client(connections: Connections) -> AdminClient:
    config: dict[str, Any] = {"bootstrap.servers": connections.kafka_bootstrap,
                              "logger": KAFKA_LOG}
    return AdminClient(config)


def topic_metadata(client: AdminClient | Consumer, timeout_s: float, topic: str | None = None,
                   error: type[RatingError] = RatingError) -> dict[str, Any]:
    """Topic name -> metadata (every topic, or ``topic`` alone). When the broker does not
    answer in time, ``error`` with one sentence instead of librdkafka's KafkaException."""
    try:
        return dict(client.list_topics(topic, timeout=timeout_s).topics)
    except KafkaException as exc:
        where = f"topic {topic}: " if topic else ""
        raise error(f"{where}Kafka unreachable, no metadata within {timeout_s:.0f} s "
                    f"({exc.args[0].str()}): is KAFKA_BOOTSTRAP_SERVERS right and the broker "
                    "up?") from None


def registry_client(connections: Connections) -> SchemaRegistryClient:
    # Without a timeout an unanswering registry (a dropped SYN) blocks a call forever.
    return SchemaRegistryClient({"url": connections.schema_registry_url,
                                 "timeout": REGISTRY_TIMEOUT_S})


def transactional_producer(connections: Connections, transactional_id: str,
                           transaction_timeout_ms: int) -> Producer:
    return Producer({
        "bootstrap.servers": connections.kafka_bootstrap,
        "transactional.id": transactional_id,
        "transaction.timeout.ms": transaction_timeout_ms,
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
        "logger": KAFKA_LOG,
    })


def idempotent_producer(connections: Connections, **overrides: Any) -> Producer:
    config: dict[str, Any] = {
        "bootstrap.servers": connections.kafka_bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "logger": KAFKA_LOG,
    }
    config.update(overrides)
    return Producer(config)


def processing_consumer(connections: Connections, group_id: str, **overrides: Any) -> Consumer:
    """A consumer for the exactly-once loop: offsets move only inside transactions."""
    config: dict[str, Any] = {
        "bootstrap.servers": connections.kafka_bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "logger": KAFKA_LOG,
    }
    config.update(overrides)
    return Consumer(config)


def reading_consumer(connections: Connections, **overrides: Any) -> Consumer:
    """A group-less read_committed consumer for restores, tails and tests (assign, no commit)."""
    config: dict[str, Any] = {
        "bootstrap.servers": connections.kafka_bootstrap,
        "group.id": "rating-reader-unused",  # required by librdkafka even without subscribe()
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "logger": KAFKA_LOG,
    }
    config.update(overrides)
    return Consumer(config)


def produce_when_room(producer: Producer, topic: str, **record: Any) -> None:
    """``producer.produce``; while the local queue is full, serve delivery reports to make
    room and retry (never drop, never raise BufferError at the caller)."""
    while True:
        try:
            producer.produce(topic, **record)
            break
        except BufferError:
            producer.poll(0.1)
    producer.poll(0)
