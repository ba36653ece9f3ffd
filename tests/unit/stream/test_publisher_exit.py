"""Leaving a publisher's with-block on an error still accounts for every queued event.

Found by review: after one invalid event raised PublishError, the block flushed for 5 s
and said nothing of the events queued before it, some of them failed or unconfirmed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from stream.publisher import PublishError, UsagePublisher, new_event


class _SlowProducer:
    """A producer whose broker answers one event, with an error, and not the others."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[Any, Any], None]] = []

    def produce(self, topic: str, key: bytes, value: bytes,
                on_delivery: Callable[[Any, Any], None]) -> None:
        self.callbacks.append(on_delivery)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        if self.callbacks:
            self.callbacks.pop(0)("Local: Message timed out", None)
        return len(self.callbacks)


class _Encoder:
    def encode(self, record: object) -> bytes:
        return b"x"


def _publisher() -> UsagePublisher:
    publisher = UsagePublisher.__new__(UsagePublisher)
    publisher._producer = _SlowProducer()  # type: ignore[assignment]
    publisher._topic = "usage.events"
    publisher._encoder = _Encoder()  # type: ignore[assignment]
    publisher._failures = []
    publisher._broker = "kafka:9092"
    publisher.delivered = 0
    return publisher


def _event(n: int, requester: str = "alice") -> Any:
    return new_event(service_item_type="Storage", service_item_id=f"disk-{n}",
                     operation="Create", attributes={"size_gb": 2}, requester=requester,
                     home_ou="eng/platform", source="svc", event_id=f"e-{n}",
                     event_time=datetime(2026, 11, 1, tzinfo=UTC))


def _publish_three_then_an_invalid_one() -> None:
    with _publisher() as publisher:
        for n in range(3):
            publisher.publish(_event(n))
        publisher.publish(_event(3, requester=" "))  # invalid: PublishError


def test_the_error_that_ends_the_block_says_what_became_of_the_events_before_it() -> None:
    with pytest.raises(PublishError) as caught:
        _publish_three_then_an_invalid_one()
    assert "field 'requester' is empty" in str(caught.value)
    notes = getattr(caught.value, "__notes__", [])
    assert notes == ["and, of the events published before it: 1 events not delivered to "
                     "Kafka at kafka:9092: ['e-0: Local: Message timed out']; 2 events not "
                     "confirmed within 30.0 s: is Kafka at kafka:9092 reachable?"]


def test_an_error_with_every_event_delivered_has_no_note() -> None:
    publisher = _publisher()
    publisher._producer.flush = lambda timeout: 0  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="boom") as caught, publisher:
        raise ValueError("boom")
    assert not getattr(caught.value, "__notes__", [])


def test_a_publisher_with_nowhere_to_connect_says_so_as_a_publish_error(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform service catches PublishError: it got the local stack's StackError (with a
    traceback) when neither the environment nor an env file named Kafka."""
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RATING_STACK_DIR", str(tmp_path))
    with pytest.raises(PublishError, match="cannot tell where Kafka and the registry are: "
                                           "no KAFKA_BOOTSTRAP_SERVERS"):
        UsagePublisher.connect(topic="usage.events")


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_event_id_is_refused_not_replaced(empty: str) -> None:
    """A fresh id in its place would make every re-publication a new event."""
    with pytest.raises(PublishError, match="event_id is empty"):
        new_event(service_item_type="HardDisk", service_item_id="hd-1", operation="Order",
                  attributes={"quantity": 1}, requester="alice", home_ou="eng/platform",
                  source="test", event_id=empty)
