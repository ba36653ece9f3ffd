"""Catalog versions on a compacted topic: published by the CLI, hot-swapped by processors.

A version travels as its YAML source texts (file name -> text) so every
processor parses and validates it with the same loader the CLI used.

A version name stands for one content (``Catalog.content_hash``): every rated
record names the version that priced it, so two contents under one name would
make the name meaningless. ``publish_new_version`` refuses to publish a second
content under a published name; a processor that receives one anyway (published
around the CLI) keeps the content it has and logs an error.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from processors.catalog import Catalog, load_catalog_sources
from processors.errors import RatingError
from stream import metrics

log = logging.getLogger(__name__)
CURRENT_KEY = b"current"
PUBLISH_TIMEOUT_S = 30.0
READ_PUBLISHED_TIMEOUT_S = 15.0


class CatalogUnavailable(RatingError):
    """No catalog has been published yet (run `rating catalog load`)."""


class WaitStopped(RatingError):
    """The process was asked to stop while it waited for a catalog."""


class CatalogNotPublished(RatingError):
    """A catalog version was refused, or the broker did not confirm it."""


def publish_new_version(consumer: Consumer, producer: Producer, topic: str, catalog: Catalog,
                        sources: Mapping[str, str],
                        read_timeout_s: float = READ_PUBLISHED_TIMEOUT_S) -> None:
    """Publish ``catalog`` unless ``topic`` has other content under the same version.

    ``topic`` is read to its end first (with ``consumer``, as a processor reads it), so
    the check is against the version processors are using. The same content again is
    published again: harmless (processors see nothing new), and the newest record on the
    compacted topic stays a readable one.
    """
    feed = CatalogFeed(consumer, topic)
    try:
        published = feed.read_to_end(read_timeout_s)
    finally:
        feed.close()
    if (published is not None and published.version == catalog.version
            and published.content_hash != catalog.content_hash):
        raise CatalogNotPublished(
            f"catalog version {catalog.version} is already published on {topic} with other "
            "content, and running processors would keep the published one: set a new "
            "`version:` in the catalog and load it again")
    publish_catalog(producer, topic, catalog, sources)


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
    # flush() returns how many records are still queued: no delivery report yet, so the
    # version may or may not reach the topic. Never report that as published.
    remaining = producer.flush(PUBLISH_TIMEOUT_S)
    if errors:
        raise CatalogNotPublished(
            f"catalog {catalog.version} not published to {topic}: {errors[0]}")
    if remaining:
        raise CatalogNotPublished(
            f"catalog {catalog.version} not confirmed by Kafka within {PUBLISH_TIMEOUT_S:.0f} s: "
            "is Kafka reachable? Load it again once it is")


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

    def wait_for_catalog(self, timeout_s: float, stop: threading.Event | None = None) -> Catalog:
        """Read the topic to its end; wait up to ``timeout_s`` for a first version.
        ``WaitStopped`` when ``stop`` is set first (a Ctrl-C while waiting)."""
        deadline = time.monotonic() + timeout_s
        reached_end = False
        while time.monotonic() < deadline and not (reached_end and self._current is not None):
            if stop is not None and stop.is_set():
                raise WaitStopped(f"stopped while waiting for a catalog on {self._topic}")
            reached_end = self._drain(timeout_s=0.5) or reached_end
        if self._current is None and not reached_end:
            # Nothing read, not even the end of the topic: the broker, not the catalog.
            raise CatalogUnavailable(f"{self._topic} not read within {timeout_s:.0f} s: is "
                                     "Kafka reachable (KAFKA_BOOTSTRAP_SERVERS) and the topic "
                                     "created (`rating topics`)?")
        return self.current

    def read_to_end(self, timeout_s: float) -> Catalog | None:
        """Read the topic to its end: the version in use there, None if there is none yet.

        Unlike ``wait_for_catalog`` an empty topic is an answer, not a reason to wait.
        """
        deadline = time.monotonic() + timeout_s
        while not self._drain(timeout_s=min(0.5, timeout_s)):
            if time.monotonic() >= deadline:
                raise RatingError(f"{self._topic} not read to its end within "
                                  f"{timeout_s:.0f} s: is Kafka reachable?")
        return self._current

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
            self._apply(message)
            timeout_s = 0.0

    def _apply(self, message: Message) -> None:
        value = message.value()
        if value is None:
            return
        where = f"{self._topic} partition {message.partition()} offset {message.offset()}"
        try:
            catalog = load_catalog_sources(_sources(value))
        except Exception as exc:
            # Anything wrong with a record (bad JSON, wrong shape, a bad catalog, YAML
            # nested past the recursion limit ...) is a bad version: keep rating with the
            # version we have. A bad version must not stop billing, nor crash-loop every
            # processor that reads it on start.
            log.error("ignoring unreadable catalog version at %s: %s: %s", where,
                      type(exc).__name__, exc)
            return
        current = self._current
        if current is not None and current.version == catalog.version:
            if current.content_hash != catalog.content_hash:
                # Other content under the version in use (published around `rating catalog
                # load`, which refuses it). Keep what we have rather than switch: rated
                # records would carry one version name for two price lists. An error, not a
                # quiet skip, because processors can still disagree (one started after
                # compaction reads only the new content); a new version name resolves it.
                log.error("ignoring catalog version %s at %s: its content differs from the "
                          "version %s in use (sha256 %s, in use %s); publish the change under "
                          "a new `version:`", catalog.version, where, current.version,
                          catalog.content_hash[:12], current.content_hash[:12])
            return
        previous = current.version if current else None
        self._current = catalog
        if previous is not None:
            metrics.CATALOG_VERSION.labels(version=previous).set(0)
        metrics.CATALOG_VERSION.labels(version=catalog.version).set(1)
        if previous is None:
            log.info("catalog version %s in use", catalog.version)
        else:
            log.info("catalog version %s in use (was %s)", catalog.version, previous)


def _sources(value: bytes) -> dict[str, str]:
    """The record's ``sources`` (file name -> YAML text), checked to have that shape."""
    payload = json.loads(value)
    sources = payload.get("sources") if isinstance(payload, dict) else None
    if not isinstance(sources, dict) or not all(
            isinstance(name, str) and isinstance(text, str) for name, text in sources.items()):
        raise ValueError('not a catalog record: expected {"sources": {file name: YAML text}}')
    return sources
