"""Consumer-group progress: is a processor group caught up with its input topics?

Offsets alone cannot say it: transactional topics hold commit markers, so a
fully caught-up group still sits one offset below the high watermark. We read
from each committed offset with read_committed and look for a data record.
``caught_up_at`` asks the same of a sink, from the next offsets its store keeps.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from stream.clients import reading_consumer
from stream.settings import Connections

OFFSET_BEGINNING = -2


COORDINATOR_NOT_READY = frozenset({KafkaError.NOT_COORDINATOR,
                                   KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                                   KafkaError.COORDINATOR_NOT_AVAILABLE})


def committed_offsets(consumer: Consumer, topics: Sequence[str],
                      timeout_s: float) -> list[TopicPartition]:
    """The group's committed offsets; waits out a coordinator that is moving or loading."""
    metadata = consumer.list_topics(timeout=timeout_s)
    partitions = [TopicPartition(topic, p) for topic in topics
                  for p in metadata.topics[topic].partitions]
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return list(consumer.committed(partitions, timeout=timeout_s))
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            retriable = error.retriable() or error.code() in COORDINATOR_NOT_READY
            if not retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def committed_since(connections: Connections, group_id: str, topic: str,
                    since: dict[int, int], timeout_s: float = 10.0) -> int:
    """How many offsets of ``topic`` the group has committed beyond ``since``."""
    consumer = reading_consumer(connections, **{"group.id": group_id})
    try:
        return sum(max(0, tp.offset - since.get(tp.partition, 0))
                   for tp in committed_offsets(consumer, [topic], timeout_s) if tp.offset >= 0)
    finally:
        consumer.close()


def caught_up(connections: Connections, group_id: str, topics: Sequence[str],
              timeout_s: float = 10.0) -> bool:
    """True when no committed (visible) record lies after the group's committed offsets."""
    consumer = reading_consumer(connections, **{"group.id": group_id})
    try:
        positions = [TopicPartition(tp.topic, tp.partition,
                                    tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                     for tp in committed_offsets(consumer, topics, timeout_s)]
        return _nothing_visible_after(consumer, positions, timeout_s)
    finally:
        consumer.close()


def caught_up_at(connections: Connections, topic: str, next_offsets: Mapping[int, int],
                 timeout_s: float = 10.0) -> bool:
    """True when a reader of ``topic`` whose next offsets are ``next_offsets`` (a sink's
    stored offsets; a partition missing from them is read from the start) has every
    committed record."""
    consumer = reading_consumer(connections)
    try:
        partitions = consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions
        positions = [TopicPartition(topic, p, next_offsets.get(p, OFFSET_BEGINNING))
                     for p in sorted(partitions)]
        return _nothing_visible_after(consumer, positions, timeout_s)
    finally:
        consumer.close()


def _nothing_visible_after(consumer: Consumer, positions: list[TopicPartition],
                           timeout_s: float) -> bool:
    consumer.assign(positions)
    pending = {(tp.topic, tp.partition) for tp in positions}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        error = message.error()
        if error is None:
            return False  # a committed record the reader has not read yet
        if error.code() == KafkaError._PARTITION_EOF:
            pending.discard((message.topic(), message.partition()))
    return not pending


def wait_until_caught_up(connections: Connections, group_id: str, topics: Sequence[str],
                         timeout_s: float, poll_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if caught_up(connections, group_id, topics):
            return True
        time.sleep(poll_s)
    return False
