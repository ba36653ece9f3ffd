"""The benchmark input: one realistic workload, encoded once, and what rating must yield.

Every contender consumes byte-identical records (same keys, same Avro values),
so differences in throughput come from the processing, not from the input.
The expected outcome comes from a dry run of the pure engine over the same
bytes: it is what the smoke test and the output checks compare against.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from processors.accounts import resolve_account
from processors.catalog import Catalog
from processors.errors import EventRejected
from processors.events import Origin, UsageEvent
from processors.rating import Rated, rate
from processors.state import RatingState
from stream.codec import event_from_avro, rated_to_avro
from stream.contracts import Codecs
from stream.publisher import validate_event
from stream.serde import AvroEncoder
from stream.simulate import Workload, load_workload

# The dry run is not read from a topic; its (never published) records say so.
DRY_RUN_ORIGIN = Origin(topic="bench-dry-run", partition=0, offset=0)


@dataclass(frozen=True)
class Expected:
    """What a correct pipeline makes of the input, counted by outcome."""

    events: int
    routed: int  # reach the account-keyed topic
    rated: int  # reach the rated topic
    late: int  # older than the dedup window: parked on the late topic, not rated
    skipped: int  # duplicates and non-billable operations: no output at all
    router_dead_letters: int
    rater_dead_letters: int

    @property
    def dead_letters(self) -> int:
        return self.router_dead_letters + self.rater_dead_letters


@dataclass(frozen=True)
class EngineTiming:
    """The dry run's own speed: decode, route, rate and encode, no Kafka (a reference)."""

    events: int
    seconds: float


def generate(workload_file: Path, count: int, seed: int) -> list[UsageEvent]:
    """``count`` events of the `make run` workload (config/workload.yaml), reproducible."""
    workload = Workload(load_workload(workload_file), random.Random(seed), datetime.now(UTC))
    return [workload.next_event()[1] for _ in range(count)]


def encode(events: list[UsageEvent], encoder: AvroEncoder) -> list[tuple[bytes, bytes]]:
    """(key, value) as the publisher API writes them: keyed by service item id."""
    return [(event.service_item_id.encode(), encoder.encode(validate_event(event)))
            for event in events]


def dry_run(records: list[tuple[bytes, bytes]], codecs: Codecs, catalog: Catalog,
            dedup_window: timedelta) -> tuple[Expected, EngineTiming]:
    """Route and rate ``records`` in memory with one state, as the pipeline would.

    One state for all accounts gives the same outcome counts as one state per
    partition: the only state-dependent outcome is a duplicate, and an event and
    its duplicate share an account, hence a partition.
    """
    state = RatingState(dedup_window=dedup_window)
    routed = rated = late = skipped = router_dead = rater_dead = 0
    started = time.perf_counter()
    for _key, value in records:
        try:
            event = event_from_avro(codecs.event_decoder.decode(value))
            resolve_account(event, catalog)
        except EventRejected:
            router_dead += 1
            continue
        routed += 1
        if state.is_late(event.event_time):  # as RaterStage does, before rating
            late += 1
            continue
        try:
            outcome = rate(event, DRY_RUN_ORIGIN, catalog, state, datetime.now(UTC))
        except EventRejected:
            rater_dead += 1
            continue
        if isinstance(outcome, Rated):
            codecs.rated_encoder.encode(rated_to_avro(outcome.record))
            rated += 1
        else:
            skipped += 1
    seconds = time.perf_counter() - started
    expected = Expected(events=len(records), routed=routed, rated=rated, late=late,
                        skipped=skipped,
                        router_dead_letters=router_dead, rater_dead_letters=rater_dead)
    return expected, EngineTiming(events=len(records), seconds=seconds)
