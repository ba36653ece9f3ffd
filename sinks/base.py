"""The sink contract every store implements (billing history, aggregates, quota view).

Exactly-once in effect: a sink stores, in the SAME store transaction as the
rows, the next offset per source partition. On start it reports those
offsets and the consumer seeks there; a replayed record whose offset is
below the stored one is ignored. A failed flush means no offset moves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class SinkRecord:
    topic: str
    partition: int
    offset: int
    value: Mapping[str, Any]


class Sink(Protocol):
    name: str

    def stored_offsets(self, topic: str) -> dict[int, int]:
        """partition -> next offset to read, as committed with the data."""
        ...

    def write_batch(self, records: Sequence[SinkRecord]) -> None:
        """Store every record and advance the offsets atomically, or raise and store nothing."""
        ...
