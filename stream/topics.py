"""Topic provisioning with the AdminClient, from the settings (idempotent)."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from processors.errors import RatingError
from stream.clients import topic_metadata
from stream.settings import Topics, TopicSpec

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000


class TopicError(RatingError):
    """A topic could not be created or exists with an incompatible layout."""


def topic_config(spec: TopicSpec) -> dict[str, str]:
    config = {"cleanup.policy": spec.cleanup}
    config["retention.ms"] = "-1" if spec.retention_hours < 0 else str(
        spec.retention_hours * HOUR_MS)
    if spec.cleanup == "compact":
        # Changelog and catalog topics are read from the start on every restore:
        # compact eagerly so restores stay short.
        config["min.cleanable.dirty.ratio"] = "0.1"
        config["segment.ms"] = str(HOUR_MS)
    return config


def ensure_topics(admin: AdminClient, topics: Topics, replication_factor: int = 1,
                  timeout_s: float = 30.0) -> list[str]:
    """Create missing topics; verify existing ones. Returns the names created."""
    existing = topic_metadata(admin, timeout_s, error=TopicError)
    wanted = topics.all()
    for spec in wanted:
        metadata = existing.get(spec.name)
        if metadata is not None and len(metadata.partitions) != spec.partitions:
            raise TopicError(f"topic {spec.name} exists with {len(metadata.partitions)} "
                             f"partitions, settings want {spec.partitions}: account-keyed "
                             "state would land on the wrong partitions")
    missing = [spec for spec in wanted if spec.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(spec.name, num_partitions=spec.partitions,
                  replication_factor=replication_factor, config=topic_config(spec))
         for spec in missing], operation_timeout=timeout_s)
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TopicError(f"cannot create topic {name}: {exc}") from None
    log.info("created topics %s", created)
    return created
