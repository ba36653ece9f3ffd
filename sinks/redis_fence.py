"""The offset fence both Redis sinks share (quota view, period aggregates).

Exactly once in effect (sinks/base.py): a batch is one optimistic transaction.
WATCH the offsets hash, read the stored next offset per partition, drop the
records below it (already stored: redelivered or replayed), then queue the
store's writes *and* the new offsets in one MULTI/EXEC. A concurrent writer
that moves the offsets (or any key the store watched) makes EXEC fail, and the
batch is redone from the re-read offsets.

Redis persists nothing here by default: when it comes back empty the stored
offsets go backwards. The store remembers the highest offsets it saw stored
and raises :class:`~sinks.runner.StoreRewound`; the runner then re-reads the
topic from what Redis now holds (the beginning), rebuilding the data.
"""

from __future__ import annotations

import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from sinks.base import SinkRecord
from sinks.runner import SINK_RECORDS, StoreRewound, until_reachable


class OffsetFencedRedisStore(ABC):
    """A Sink whose data and per-partition next offsets live in one Redis."""

    name: str
    what: str  # "the quota view", "the totals": for messages

    def __init__(self, client: redis.Redis, topic: str, offsets_key: str):
        self._client = client
        self._topic = topic
        self._offsets_key = offsets_key
        # The highest next offset per partition seen stored: when Redis reports less,
        # it lost its data (restarted empty) and must be rebuilt from the topic.
        self._known: dict[int, int] = {}

    @abstractmethod
    def _write_fresh(self, pipe: Any, fresh: Sequence[SinkRecord],
                     next_offsets: Mapping[str, str]) -> None:
        """Under the WATCH on the offsets: MULTI, queue the writes of ``fresh`` and
        ``HSET offsets_key next_offsets``, EXEC. May WATCH more keys before MULTI."""

    def store_id(self) -> str:
        """This store's own id, drawn by the first sink to ask and kept beside its offsets.

        It names the sink's consumer group: sinks of two stores (two Redis servers, or two
        key prefixes) each read every partition, sinks of one store split them (see
        sinks/history/sink.py, ``history_group``). A Redis that comes back empty draws a
        new one; a sink still running keeps its group, which only costs a second reader."""
        key = f"{self._offsets_key}:store"
        self._client.hsetnx(key, "id", uuid.uuid4().hex)
        return text(self._client.hget(key, "id"))

    def stored_offsets(self, topic: str) -> dict[int, int]:
        self._check_topic(topic)
        stored = decode_offsets(self._client.hgetall(self._offsets_key))
        self._known = dict(stored)
        return stored

    def write_batch(self, records: Sequence[SinkRecord]) -> None:
        if not records:
            return
        for record in records:
            self._check_topic(record.topic)
        with self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(self._offsets_key)  # type: ignore[no-untyped-call]
                    stored = decode_offsets(pipe.hgetall(self._offsets_key))
                    self._check_not_rewound(stored)
                    fresh = [r for r in records if r.offset >= stored.get(r.partition, 0)]
                    if fresh:
                        self._write_fresh(pipe, fresh, {
                            str(p): str(o) for p, o in sorted(next_offsets(fresh).items())})
                    else:
                        pipe.unwatch()
                    break
                except redis.WatchError:
                    continue  # another writer moved what we watched: re-read and redo
        for partition, offset in next_offsets(fresh).items():
            self._known[partition] = max(self._known.get(partition, 0), offset)
        SINK_RECORDS.labels(sink=self.name, result="written").inc(len(fresh))
        SINK_RECORDS.labels(sink=self.name, result="skipped").inc(len(records) - len(fresh))

    def _check_not_rewound(self, stored: dict[int, int]) -> None:
        lost = {p: (known, stored.get(p, 0)) for p, known in self._known.items()
                if stored.get(p, 0) < known}
        if lost:
            self._known = dict(stored)
            raise StoreRewound(f"{self._offsets_key} went backwards (partition: (known, "
                               f"stored) {lost}): Redis lost its data, rebuilding {self.what}")

    def _check_topic(self, topic: str) -> None:
        if topic != self._topic:
            raise ValueError(f"{self.name} follows {self._topic}, not {topic}")


def text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return "" if value is None else value


def decode_offsets(raw: Mapping[Any, Any]) -> dict[int, int]:
    return {int(text(p)): int(text(o)) for p, o in raw.items()}


def next_offsets(records: Sequence[SinkRecord]) -> dict[int, int]:
    """partition -> the offset after the highest record of the batch."""
    highest: dict[int, int] = {}
    for record in records:
        highest[record.partition] = max(highest.get(record.partition, -1), record.offset)
    return {partition: offset + 1 for partition, offset in highest.items()}


def store_group(group_id: str, store: OffsetFencedRedisStore, stop: threading.Event,
                transient: tuple[type[BaseException], ...]) -> str | None:
    """``<group_id>-<sink>-<store id>``, waiting (with backoff) while Redis is unreachable
    at start; None if stopped first."""
    store_id = until_reachable(store.store_id, stop, transient, f"{store.name}: Redis")
    return None if store_id is None else f"{group_id}-{store.name}-{store_id[:12]}"
