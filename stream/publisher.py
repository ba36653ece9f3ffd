"""The publisher API for platform services.

    from stream.publisher import UsagePublisher, new_event

    with UsagePublisher.connect() as publisher:
        publisher.publish(new_event(
            service_item_type="VirtualMachine", service_item_id="vm-42",
            operation="Create", attributes={"vcpu": 4, "memory_gb": 16, "region": "us-east"},
            requester="alice", home_ou="eng/platform", source="provisioning-engine"))
    # leaving the block waits for every delivery and raises PublishError on failures

Events are validated exactly as the router will validate them, so an invalid
event fails here, in the caller, before it reaches the topic. The producer is
idempotent (acks=all), so its own retries never duplicate an event. Records are
keyed by service item id: every operation on one instance stays in order.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Self

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from processors.errors import EventRejected, RatingError
from processors.events import AttributeValue, UsageEvent
from stream.clients import idempotent_producer, produce_when_room, registry_client
from stream.codec import event_from_avro, event_to_avro
from stream.serde import SCHEMA_FILES, AvroEncoder, register
from stream.settings import Connections, connections_from_env, load_settings
from stream.stack.errors import StackError


class PublishError(RatingError):
    """An event was invalid, or the broker did not confirm its delivery."""


def new_event(*, service_item_type: str, service_item_id: str, operation: str,
              attributes: Mapping[str, int | str | Decimal], requester: str, home_ou: str,
              source: str, event_id: str | None = None, event_time: datetime | None = None,
              account_id: str | None = None, provider: str | None = None,
              product: str | None = None) -> UsageEvent:
    """A usage event with a fresh id and the current time unless given.

    Numbers may be int or Decimal (floats are refused: money and quantities are exact).
    """
    typed: dict[str, AttributeValue] = {}
    for name, value in attributes.items():
        if isinstance(value, bool | float):
            raise PublishError(f"attribute {name!r}: use int, Decimal or str, not "
                               f"{type(value).__name__} ({value!r})")
        typed[name] = Decimal(value) if isinstance(value, int) else value
    when = event_time or datetime.now(UTC)
    if when.tzinfo is None:
        raise PublishError("event_time must be timezone-aware (UTC)")
    if event_id is not None and not event_id.strip():
        # A fresh id in its place would defeat duplicate detection for every re-publication.
        raise PublishError("event_id is empty: give the event's own id, or leave it out "
                           "for a fresh one")
    return UsageEvent(event_id=event_id or str(uuid.uuid4()), event_time=when.astimezone(UTC),
                      service_item_type=service_item_type, service_item_id=service_item_id,
                      operation=operation, attributes=typed, requester=requester,
                      home_ou=home_ou, source=source, account_id=account_id,
                      provider=provider, product=product)


def validate_event(event: UsageEvent) -> dict[str, object]:
    """The Avro record for ``event``, checked by the same rules the router applies."""
    record = event_to_avro(event)
    try:
        event_from_avro(record)
    except EventRejected as rejection:
        raise PublishError(f"invalid event: {rejection.message}") from None
    return record


class UsagePublisher:
    def __init__(self, producer: Producer, registry: SchemaRegistryClient, topic: str):
        self._producer = producer
        self._topic = topic
        schema_id = register(registry, topic, SCHEMA_FILES["events"])
        self._encoder = AvroEncoder(schema_id, SCHEMA_FILES["events"])
        self._failures: list[str] = []
        self._broker = "the broker"  # its address when connect() made the producer
        self.delivered = 0

    @classmethod
    def connect(cls, connections: Connections | None = None, topic: str | None = None) -> Self:
        if connections is None:
            try:
                connections = connections_from_env()
            except StackError as unknown:  # no KAFKA_BOOTSTRAP_SERVERS, say: one sentence
                raise PublishError(f"cannot tell where Kafka and the registry are: {unknown}"
                                   ) from None
        topic = topic or load_settings().topics.events.name
        producer = idempotent_producer(connections, **{"message.timeout.ms": 30_000})
        registry_url = connections.schema_registry_url
        try:
            publisher = cls(producer, registry_client(connections), topic)
        except Exception as exc:
            # Shut the producer down before saying why: its librdkafka threads would
            # otherwise go on logging connection failures after (below) the message.
            producer.close()
            if isinstance(exc, SchemaRegistryError):
                raise PublishError(f"the schema registry at {registry_url} refused the event "
                                   f"schema for {topic}: {exc}") from None
            # connection refused, DNS, timeouts (httpx transport errors)
            raise PublishError(f"the schema registry at {registry_url} is unreachable "
                               f"({type(exc).__name__}: {exc})") from None
        publisher._broker = connections.kafka_bootstrap
        return publisher

    def publish(self, event: UsageEvent) -> None:
        """Queue one event; delivery is confirmed by flush() (or leaving the with-block)."""
        value = self._encoder.encode(validate_event(event))
        self._produce(event.service_item_id.encode(), value, event.event_id)

    def publish_raw(self, key: bytes | None, value: bytes) -> None:
        """Bytes as they are (for tests and replays of dead letters): no validation."""
        self._produce(key, value, "<raw>")

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for every queued event; the number delivered so far, or PublishError."""
        remaining = self._producer.flush(timeout_s)
        failures, self._failures = self._failures, []
        problems = []
        if failures:
            problems.append(f"{len(failures)} events not delivered to Kafka at {self._broker}: "
                            f"{failures[:5]}")
        if remaining:
            problems.append(f"{remaining} events not confirmed within {timeout_s} s: is "
                            f"Kafka at {self._broker} reachable?")
        if problems:
            raise PublishError("; ".join(problems))
        return self.delivered

    def _produce(self, key: bytes | None, value: bytes, event_id: str) -> None:
        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is None:
                self.delivered += 1
            else:
                self._failures.append(f"{event_id}: {error}")

        produce_when_room(self._producer, self._topic, key=key, value=value,
                          on_delivery=on_delivery)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.flush()
            return
        # Leaving on an error (say, one invalid event): what was queued before it is still
        # waited for, and what became of it is said next to that error, or the caller would
        # learn only of the invalid event and never of events lost with it.
        try:
            self.flush()
        except PublishError as undelivered:
            if exc is not None:
                exc.add_note(f"and, of the events published before it: {undelivered}")
