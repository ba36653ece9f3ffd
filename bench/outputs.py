"""Reading the contenders' output topics back: record counts, and no event rated twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from confluent_kafka import KafkaError, TopicPartition

from bench.lanes import Lane
from processors.errors import RatingError
from stream.clients import reading_consumer, registry_client
from stream.readback import iter_records
from stream.serde import SCHEMA_FILES, AvroDecoder
from stream.settings import Connections

OFFSET_BEGINNING = -2


class CountingError(RatingError):
    """A topic could not be read to its end in time."""


class TopicCounter:
    """Counts the committed records of some topics, incrementally, while they grow."""

    def __init__(self, connections: Connections, topics: Sequence[str], timeout_s: float = 10.0):
        # Partition EOF events tell us when a count is complete for now.
        self._consumer = reading_consumer(connections)
        metadata = self._consumer.list_topics(timeout=timeout_s).topics
        self._partitions = {(topic, p) for topic in topics for p in metadata[topic].partitions}
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                               for topic, p in sorted(self._partitions)])
        self.counts = dict.fromkeys(topics, 0)
        self._at_end: set[tuple[str, int]] = set()

    def poll(self, budget_s: float) -> bool:
        """Read what is there for up to ``budget_s``; True when every partition is at its end."""
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            # consume() waits its whole timeout unless the batch fills: keep it short.
            messages = self._consumer.consume(10_000, min(0.1, budget_s))
            for message in messages:
                topic, partition = message.topic(), message.partition()
                if topic is None or partition is None:
                    continue
                error = message.error()
                if error is None:
                    self.counts[topic] += 1
                    self._at_end.discard((topic, partition))
                elif error.code() == KafkaError._PARTITION_EOF:
                    self._at_end.add((topic, partition))
            if self._at_end == self._partitions:
                return True
        return False

    def close(self) -> None:
        self._consumer.close()


def count_records(connections: Connections, topics: Sequence[str],
                  timeout_s: float = 60.0) -> dict[str, int]:
    """topic -> committed records, each topic read from the beginning to its end."""
    counter = TopicCounter(connections, topics)
    try:
        if not counter.poll(timeout_s):
            raise CountingError(f"topics {list(topics)} not read to the end in {timeout_s} s")
        return dict(counter.counts)
    finally:
        counter.close()


def rated_twice(connections: Connections, topic: str, decoder: AvroDecoder) -> int:
    """How many event ids the rated topic holds more than once (0: nothing billed twice)."""
    seen = Counter(record.value["event_id"]
                   for record in iter_records(connections, topic, decoder, timeout_s=120.0))
    return sum(1 for count in seen.values() if count > 1)


def read_outputs(lane: Lane, roles: Sequence[str],
                 rated_records: bool = True) -> tuple[dict[str, int], int]:
    """(role -> committed records, event ids rated more than once) on the lane's topics.

    ``rated_records``: False when the rated topic holds something else (a pass-through
    lane writes the input there); then it is only counted."""
    names = {role: getattr(lane.settings.topics, role).name for role in roles}
    counts = count_records(lane.connections, list(names.values()))
    twice = 0
    if "rated" in names and rated_records:
        decoder = AvroDecoder(registry_client(lane.connections), SCHEMA_FILES["rated"])
        twice = rated_twice(lane.connections, names["rated"], decoder)
    return {role: counts[name] for role, name in names.items()}, twice
