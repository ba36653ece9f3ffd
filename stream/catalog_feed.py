"""Catalog versions on a compacted topic: published by the CLI, hot-swapped by processors.

A version travels as its YAML source texts (file name -> text) so every
processor parses and validates it with the same loader the CLI used.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from processors.catalog import Catalog, load_catalog_sources
from processors.errors import RatingError
from stream import metrics

log = logging.getLogger(__name__)
CURRENT_KEY = b"current"


class CatalogUnavailable(RatingError):
    """No catalog has been published yet (run `rating catalog load`)."""


def publish_catalog(producer: Producer, topic: str, catalog: Catalog,
                    sources: Mapping[str, str]) -> None:
    """Publish a validated catalog version; blocks until the broker has it."""
    value = json.dumps({"version": catalog.version, "sources": dict(sources),
                        "published_at": datetime.now(UTC).isoformat()}).encode()
    errors: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            errors.append(error)

    producer.produce(topic, key=CURRENT_KEY, value=value, on_delivery=delivered)
    producer.flush(30)
    if errors:
        raise RatingError(f"catalog {catalog.version} not published to {topic}: {errors[0]}")


class CatalogFeed:
    """Follows the catalog topic; ``current`` is the newest valid version seen."""

    def __init__(self, consumer: Consumer, topic: str):
        self._consumer = consumer
        self._consumer.assign([TopicPartition(topic, 0, -2)])  # -2: OFFSET_BEGINNING
        self._topic = topic
        self._current: Catalog | None = None

    @property
    def current(self) -> Catalog:
        if self._current is None:
            raise CatalogUnavailable(f"no catalog on {self._topic}: run `rating catalog load`")
        return self._current

    def wait_for_catalog(self, timeout_s: float) -> Catalog:
        """Read the topic to its end; wait up to ``timeout_s`` for a first version."""
        deadline = time.monotonic() + timeout_s
        reached_end = False
        while time.monotonic() < deadline and not (reached_end and self._current is not None):
            reached_end = self._drain(timeout_s=0.5) or reached_end
        return self.current

    def refresh(self) -> bool:
        """Non-blocking: apply any newer version; True if the catalog changed."""
        before = self._current
        self._drain(timeout_s=0.0)
        return self._current is not before

    def close(self) -> None:
        self._consumer.close()

    def _drain(self, timeout_s: float) -> bool:
        """Consume what is available; True when the end of the partition was reached."""
        while True:
            message = self._consumer.poll(timeout_s)
            if message is None:
                return False
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return True
                log.warning("catalog topic error: %s", error)
                return False
            self._apply(message.value())
            timeout_s = 0.0

    def _apply(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            payload = json.loads(value)
            catalog = load_catalog_sources(payload["sources"])
        except (RatingError, ValueError, KeyError, TypeError) as exc:
            # Keep rating with the version we have: a bad version must not stop billing.
            log.error("ignoring unreadable catalog version on %s: %s", self._topic, exc)
            return
        if self._current is not None and self._current.version == catalog.version:
            return
        previous = self._current.version if self._current else None
        self._current = catalog
        if previous is not None:
            metrics.CATALOG_VERSION.labels(version=previous).set(0)
        metrics.CATALOG_VERSION.labels(version=catalog.version).set(1)
        log.info("catalog version %s in use (was %s)", catalog.version, previous)
