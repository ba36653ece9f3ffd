"""Per-partition rating state, made durable through a compacted changelog topic.

State of input partition p lives in changelog partition p. Changelog records
are produced inside the same transaction as the outputs and input offsets
(see stream/loop.py), so restoring partition p by reading its changelog
with read_committed yields exactly the state as of the last committed batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, TopicPartition

from processors.errors import RatingError
from processors.pipeline import PartitionState
from stream import metrics
from stream.messages import Output

log = logging.getLogger(__name__)
OFFSET_BEGINNING = -2


class ChangelogState(Protocol):
    """What a stage's per-partition state offers the store (see processors/state.py)."""

    def dirty_keys(self) -> set[str]: ...

    def clear_dirty(self) -> None: ...

    def dump(self, key: str) -> bytes | None: ...

    def load(self, key: str, value: bytes | None) -> None: ...


S = TypeVar("S", bound=ChangelogState)


class ChangelogStore(Generic[S]):
    """Per-partition state of any stage (the rater's, the subscription stage's)."""

    def __init__(self, restore_consumer: Consumer, changelog_topic: str,
                 new_state: Callable[[], S]):
        self._consumer = restore_consumer
        self._topic = changelog_topic
        self._new_state = new_state
        self._states: dict[int, S] = {}

    def state(self, partition: int) -> S:
        return self._states[partition]

    def partitions(self) -> list[int]:
        return sorted(self._states)

    def restore(self, partitions: Iterable[int]) -> None:
        self._states.update(self._restore_all(list(partitions)))

    def drop(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._states.pop(partition, None)

    def reset(self) -> None:
        """Discard uncommitted changes: re-read every owned partition's changelog."""
        self.restore(list(self._states))

    def changelog_records(self) -> list[Output]:
        outputs = []
        for partition, state in self._states.items():
            for key in sorted(state.dirty_keys()):
                outputs.append(Output(topic=self._topic, key=key.encode(),
                                      value=state.dump(key), partition=partition))
            state.clear_dirty()
        return outputs

    def close(self) -> None:
        self._consumer.close()

    def _restore_all(self, partitions: list[int]) -> dict[int, S]:
        """Replay the changelog partitions together, each to its (read_committed) end."""
        if not partitions:
            return {}
        started = time.perf_counter()
        states = {partition: self._new_state() for partition in partitions}
        self._consumer.assign([TopicPartition(self._topic, partition, OFFSET_BEGINNING)
                               for partition in partitions])
        pending, restored = set(partitions), 0
        try:
            while pending:
                message = self._consumer.poll(1.0)
                if message is None:
                    continue  # the partition EOF event always comes, even when empty
                error = message.error()
                partition = message.partition()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF and partition is not None:
                        pending.discard(partition)
                        continue
                    raise KafkaErrorDuringRestore(partitions, str(error))
                key = message.key()
                if key is not None and partition is not None:
                    states[partition].load(key.decode(), message.value())
                    restored += 1
        finally:
            self._consumer.unassign()
        for state in states.values():
            state.clear_dirty()
        metrics.STATE_RESTORED.inc(restored)
        log.info("restored %s%s: %d records in %.2f s", self._topic, partitions, restored,
                 time.perf_counter() - started)
        return states


class ChangelogStateStore(ChangelogStore[PartitionState]):
    """The rater's store."""


class RaterStateStore(Protocol):
    """What the rater needs of its store: ``ChangelogStateStore``, or the faust
    benchmark's table-backed store. A Protocol, not the class, because the compiled
    rater (mypyc) checks a class-typed argument's class at run time."""

    def state(self, partition: int) -> PartitionState: ...

    def changelog_records(self) -> list[Output]: ...

    def restore(self, partitions: Iterable[int]) -> None: ...

    def drop(self, partitions: Iterable[int]) -> None: ...

    def reset(self) -> None: ...


class KafkaErrorDuringRestore(RatingError):
    def __init__(self, partitions: list[int], error: str):
        super().__init__(f"cannot restore changelog partitions {partitions}: {error}")


def partitions_of(tps: Sequence[TopicPartition]) -> list[int]:
    return [tp.partition for tp in tps]
