"""Publishing to the subscriptions topic: licence changes, and billing-run requests.

    from stream.licence_publisher import LicencePublisher, new_licence_event

    with LicencePublisher.connect() as publisher:
        publisher.publish(new_licence_event(
            action=LicenceAction.PROVISIONED, campus="boulder", record_number="LR-1001",
            user="alice@colorado.edu", product="sf-sales-cloud",
            effective_date=date(2026, 9, 15), source="salesforce-admin"))

Licence changes are keyed by campus: one campus's changes stay in order, and its
state lives in one partition. A billing-run request goes to *every* partition
(each partition bills its own campuses); ``request_run`` returns where each
copy landed. The producer is idempotent (acks=all); records are validated
with the stage's own rules before they reach the topic.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, Self

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from processors.errors import EventRejected
from processors.licences.model import BillingRunRequest, LicenceAction, LicenceEvent
from stream.clients import idempotent_producer, produce_when_room, registry_client
from stream.licence_codec import (
    SCHEMA_FILE,
    licence_to_avro,
    run_request_to_avro,
    subscription_from_avro,
)
from stream.publisher import PublishError
from stream.serde import AvroEncoder, register
from stream.settings import Connections, connections_from_env, load_settings


def new_licence_event(*, action: LicenceAction, campus: str, record_number: str, user: str,
                      product: str, effective_date: date, source: str,
                      previous_user: str | None = None, billing_target: str | None = None,
                      unit_billing_target: str | None = None, event_id: str | None = None,
                      event_time: datetime | None = None) -> LicenceEvent:
    """A licence change with a fresh id and the current time unless given."""
    when = event_time or datetime.now(UTC)
    if when.tzinfo is None:
        raise PublishError("event_time must be timezone-aware (UTC)")
    return LicenceEvent(event_id=event_id or str(uuid.uuid4()), action=action,
                        event_time=when.astimezone(UTC), source=source, campus=campus,
                        record_number=record_number, user=user, product=product,
                        effective_date=effective_date, previous_user=previous_user,
                        billing_target=billing_target, unit_billing_target=unit_billing_target)


class LicencePublisher:
    def __init__(self, producer: Producer, registry: SchemaRegistryClient, topic: str):
        self._producer = producer
        self._topic = topic
        self._encoder = AvroEncoder(register(registry, topic, SCHEMA_FILE), SCHEMA_FILE)
        self._failures: list[str] = []
        self._landed: dict[int, int] = {}  # partition -> offset of the last run request
        self.delivered = 0

    @classmethod
    def connect(cls, connections: Connections | None = None, topic: str | None = None) -> Self:
        connections = connections or connections_from_env()
        topic = topic or load_settings().topics.subscriptions.name
        producer = idempotent_producer(connections, **{"message.timeout.ms": 30_000})
        try:
            return cls(producer, registry_client(connections), topic)
        except SchemaRegistryError as exc:
            raise PublishError(f"the schema registry refused the subscription schema for "
                               f"{topic}: {exc}") from None
        except Exception as exc:  # connection refused, DNS, timeouts
            raise PublishError(f"the schema registry at {connections.schema_registry_url} is "
                               f"unreachable ({type(exc).__name__}: {exc})") from None

    def publish(self, event: LicenceEvent) -> None:
        """Queue one licence change, keyed by campus; confirmed by flush()."""
        value = self._encoder.encode(_checked(licence_to_avro(event)))
        self._produce(event.campus.encode(), value, event.event_id, None)

    def request_run(self, request: BillingRunRequest) -> dict[int, int]:
        """Put the request into every partition; partition -> offset once all are delivered."""
        metadata = self._producer.list_topics(self._topic, timeout=10).topics[self._topic]
        if metadata.error is not None:
            raise PublishError(f"topic {self._topic}: {metadata.error} (run `rating topics`)")
        value = self._encoder.encode(
            _checked(run_request_to_avro(request, f"billing-run:{request.request_id}")))
        self._landed = {}
        for partition in sorted(metadata.partitions):
            self._produce(request.request_id.encode(), value, request.request_id, partition)
        self.flush()
        missing = set(metadata.partitions) - set(self._landed)
        if missing:
            raise PublishError(f"billing run not delivered to partitions {sorted(missing)}")
        return dict(self._landed)

    def flush(self, timeout_s: float = 30.0) -> int:
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise PublishError(f"{remaining} records not confirmed within {timeout_s} s: is "
                               "Kafka reachable?")
        if self._failures:
            failures, self._failures = self._failures, []
            raise PublishError(f"{len(failures)} records not delivered: {failures[:5]}")
        return self.delivered

    def _produce(self, key: bytes, value: bytes, what: str, partition: int | None) -> None:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                self._failures.append(f"{what}: {error}")
                return
            self.delivered += 1
            landed, offset = message.partition(), message.offset()
            if partition is not None and landed is not None and offset is not None:
                self._landed[landed] = offset

        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        produce_when_room(self._producer, self._topic, key=key, value=value,
                          on_delivery=on_delivery, **extra)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.flush()
        else:
            self._producer.flush(5)


def _checked(record: dict[str, Any]) -> dict[str, Any]:
    """The stage's own decoding rules, applied before anything reaches the topic."""
    try:
        subscription_from_avro(record)
    except EventRejected as rejection:
        raise PublishError(f"invalid subscription record: {rejection.message}") from None
    return record
