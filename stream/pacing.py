"""Keeping the router of a process from running far ahead of its rater.

With both stages in one process, one consumer reads ``usage.events`` (the router's
input) and ``usage.by-account`` (the rater's). After a backlog builds up (an outage, a
restart), the fetcher serves mostly ``usage.events``: the router re-keys most of the
backlog before the rater sees its input, which only becomes readable as each batch
commits. Every event then waits for the whole backlog, and the rater no longer finds
the events the router decoded (``stages.DecodedEvents`` holds 10,000).

``RouterPacer.adjust`` runs between batches. It pauses the ``usage.events`` partitions
while the rater's own input lags by more than ``pause_above`` records, and resumes them
once the lag is ``resume_below`` or less, or when the rater has not moved for
``STALLED_BATCHES`` batches (nothing readable is left: aborted records and transaction
markers count in the lag but are never consumed, so a lag alone could keep the router
paused for good). Only
this process's ``usage.by-account`` partitions are counted, and only this process
consumes them, so the lag it waits for always drains. Pausing touches neither offsets
nor transactions: a paused partition is simply not fetched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confluent_kafka import Consumer, TopicPartition

from stream.observability import consumption_starts

log = logging.getLogger(__name__)
STARTS_TIMEOUT_S = 5.0
STALLED_BATCHES = 3  # paused, and the rater has not moved for this many batches: resume


class RouterPacer:
    def __init__(self, consumer: Consumer, router_topic: str, rater_topic: str,
                 pause_above: int, resume_below: int) -> None:
        if not 0 <= resume_below < pause_above:
            raise ValueError("need 0 <= resume_below < pause_above")
        self._consumer = consumer
        self._router_topic = router_topic
        self._rater_topic = rater_topic
        self._pause_above = pause_above
        self._resume_below = resume_below
        self.paused = False
        self.pauses = 0
        self._router_partitions: frozenset[tuple[str, int]] = frozenset()
        self._consumed = 0  # the rater's positions summed, last time
        self._stalled = 0  # batches since they last moved
        self._held_off = False  # resumed on a stall: no pause until the rater moves
        self._rater_partitions: frozenset[tuple[str, int]] = frozenset()
        self._starts: dict[tuple[str, int], int] | None = None

    def adjust(self) -> None:
        assignment = self._consumer.assignment()
        router = [tp for tp in assignment if tp.topic == self._router_topic]
        rater = [tp for tp in assignment if tp.topic == self._rater_topic]
        partitions = frozenset((tp.topic, tp.partition) for tp in router)
        # After a rebalance the client may or may not keep a partition paused: say it
        # again rather than trust what we did before.
        reassigned = partitions != self._router_partitions
        self._router_partitions = partitions
        rater_partitions = frozenset((tp.topic, tp.partition) for tp in rater)
        if rater_partitions != self._rater_partitions:
            self._rater_partitions = rater_partitions
            self._starts = None
        lag, consumed = self._rater_lag(rater)
        if consumed != self._consumed:
            self._stalled, self._held_off = 0, False
        else:
            self._stalled += 1
        self._consumed = consumed
        if not router:
            self.paused = False
        elif self.paused and (lag <= self._resume_below or self._stalled >= STALLED_BATCHES):
            if lag > self._resume_below:
                # What is left cannot be consumed (yet): no new pause until it moves.
                log.debug("router resumed: the rater made no progress (lag %d records)", lag)
                self._held_off = True
            self._consumer.resume(router)
            self.paused = False
            self._stalled = 0
        elif lag > self._pause_above and not self._held_off and (not self.paused or reassigned):
            self._consumer.pause(router)
            if not self.paused:
                self.pauses += 1
                log.debug("router paused: the rater's input lags by %d records", lag)
            self.paused = True
            self._stalled = 0
        elif reassigned and not self.paused:
            self._consumer.resume(router)  # whatever the client kept from before

    def _rater_lag(self, partitions: Sequence[TopicPartition]) -> tuple[int, int]:
        """Records after the rater's position (to the cached high watermark, so records
        not yet committed count too), and its positions summed, to tell progress. A
        partition the rater has consumed nothing from yet starts at its committed offset
        (looked up once per assignment), else at 0: more lag than there is, for as long
        as the rater has not reached that partition (it then reads its real position)."""
        lag = consumed = 0
        for tp in self._consumer.position(list(partitions)) if partitions else []:
            watermarks = self._consumer.get_watermark_offsets(tp, cached=True)
            if watermarks is None or watermarks[1] < 0:
                continue  # nothing fetched from it yet
            if tp.offset >= 0:
                position = tp.offset
                consumed += position
            else:
                position = self._start(tp)
            lag += max(0, watermarks[1] - position)
        return lag, consumed

    def _start(self, tp: TopicPartition) -> int:
        if self._starts is None:
            self._starts = consumption_starts(self._consumer, [
                TopicPartition(topic, partition) for topic, partition in self._rater_partitions
            ], STARTS_TIMEOUT_S)
        return self._starts.get((tp.topic, tp.partition), 0)
