"""Lanes: one contender's own topics, consumer group and catalog on the shared broker.

A lane is the benchmark's version of tests/integration/harness.Pipeline:
every topic of the settings with a suffix unique to the run and the
contender, so no contender ever reads another's records or offsets.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path

from confluent_kafka import KafkaException

from processors.catalog import Catalog, read_catalog_folder
from stream.catalog_feed import publish_catalog
from stream.clients import admin_client, idempotent_producer, registry_client
from stream.publisher import UsagePublisher
from stream.settings import Connections, Settings, load_settings
from stream.topics import ensure_topics


@dataclass(frozen=True)
class Lane:
    name: str
    suffix: str  # appended to every topic name of the settings
    settings: Settings
    connections: Connections

    @property
    def group_id(self) -> str:
        return self.settings.processor.group_id

    def with_group(self, suffix: str) -> Lane:
        """The same topics under another consumer group (a second run on one lane)."""
        processor = replace(self.settings.processor, group_id=f"{self.group_id}-{suffix}")
        return replace(self, settings=replace(self.settings, processor=processor))


def open_lane(connections: Connections, run_id: str, name: str, batch_size: int,
              catalog: Catalog, catalog_dir: Path) -> Lane:
    """Create the lane's topics and publish the catalog on its catalog topic."""
    suffix = f"-bench-{run_id}-{name}"
    settings = load_settings(environ={"RATING_TOPIC_SUFFIX": suffix,
                                      "RATING_GROUP_ID": f"rating-bench-{run_id}-{name}",
                                      "RATING_BATCH_SIZE": str(batch_size)})
    ensure_topics(admin_client(connections), settings.topics)
    sources = read_catalog_folder(catalog_dir).sources  # every file the loader reads
    publish_catalog(idempotent_producer(connections), settings.topics.catalog.name, catalog,
                    sources)
    return Lane(name=name, suffix=suffix, settings=settings, connections=connections)


def publish_input(lane: Lane, records: list[tuple[bytes, bytes]]) -> None:
    """The pre-encoded events, as they are, on the lane's input topic (before any timing).

    Uncompressed, for every lane alike: the publisher API compresses with lz4,
    which aiokafka (faust) can only read with the optional ``lz4`` package.
    """
    producer = idempotent_producer(lane.connections, **{"compression.type": "none"})
    with UsagePublisher(producer, registry_client(lane.connections),
                        lane.settings.topics.events.name) as publisher:
        for key, value in records:
            publisher.publish_raw(key, value)


def delete_run_topics(connections: Connections, run_id: str, timeout_s: float = 30.0) -> int:
    """Delete every topic named after this run (faust's internal ones too); how many."""
    admin = admin_client(connections)
    marker = f"bench-{run_id}"
    names = [name for name in admin.list_topics(timeout=timeout_s).topics if marker in name]
    if not names:
        return 0
    for future in admin.delete_topics(names, operation_timeout=timeout_s).values():
        # Already gone, or the broker is busy: leftovers only cost disk on a test broker.
        with contextlib.suppress(KafkaException):
            future.result()
    return len(names)
