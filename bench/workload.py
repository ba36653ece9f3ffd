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
from processors.catalog.model import MissingPolicy
from processors.errors import EventRejected
from processors.events import Origin, UsageEvent
from processors.pipeline import PartitionState, process_event
from processors.quota.model import UnknownInstances
from stream.codec import event_from_avro, rated_to_avro
from stream.contracts import Codecs
from stream.publisher import validate_event
from stream.serde import AvroEncoder
from stream.settings import Settings
from stream.simulate import Workload, load_workload

# The dry run is not read from a topic; its (never published) records say so.
DRY_RUN_ORIGIN = Origin(topic="bench-dry-run", partition=0, offset=0)


@dataclass(frozen=True)
class Expected:
    """What a correct pipeline makes of the input, counted by outcome.

    ``rated``, ``quota_rejected`` and ``alerts`` are for this input's order:
    quotas (instance counts, attribute sums) depend on the order of an
    account's events, which the pipeline re-interleaves when it re-keys by
    account. Everything else does not depend on the order.
    """

    events: int
    routed: int  # reach the account-keyed topic
    rated: int  # reach the rated topic
    quota_rejected: int  # blocked by an agreement: to the rejected topic
    alerts: int  # quota alerts
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


def generate(workload_file: Path, count: int, seed: int,
             now: datetime | None = None) -> list[UsageEvent]:
    """``count`` events of the `make run` workload (config/workload.yaml), reproducible
    but for the event ids (fresh UUIDs) and, unless ``now`` is given, the event times."""
    workload = Workload(load_workload(workload_file), random.Random(seed),
                        now or datetime.now(UTC))
    return [workload.next_event()[1] for _ in range(count)]


def encode(events: list[UsageEvent], encoder: AvroEncoder) -> list[tuple[bytes, bytes]]:
    """(key, value) as the publisher API writes them: keyed by service item id."""
    return [(event.service_item_id.encode(), encoder.encode(validate_event(event)))
            for event in events]


def dry_run(records: list[tuple[bytes, bytes]], codecs: Codecs, catalog: Catalog,
            settings: Settings) -> tuple[Expected, EngineTiming]:
    """Route and process ``records`` in memory, in order, as RouterStage and RaterStage do.

    One state for all accounts gives the same outcomes as one per partition:
    the state is per account, and an account's events all go to one partition.
    """
    state = PartitionState(dedup_window=timedelta(days=settings.processor.dedup_window_days))
    policy = MissingPolicy(settings.processor.no_agreement)
    unknown_instances = UnknownInstances(settings.processor.unknown_instances)
    counts = dict.fromkeys(("routed", "rated", "quota_rejected", "alerts", "late", "skipped",
                            "router_dead_letters", "rater_dead_letters"), 0)
    started = time.perf_counter()
    for _key, value in records:
        try:
            event = event_from_avro(codecs.event_decoder.decode(value))
            resolve_account(event, catalog)
        except EventRejected:
            counts["router_dead_letters"] += 1
            continue
        counts["routed"] += 1
        if state.is_late(event.event_time):
            counts["late"] += 1
            continue
        try:
            outcome = process_event(event, DRY_RUN_ORIGIN, catalog, state, datetime.now(UTC),
                                    policy, unknown_instances=unknown_instances)
        except EventRejected:
            counts["rater_dead_letters"] += 1
            continue
        counts["alerts"] += len(outcome.alerts)
        if outcome.quota_rejection is not None:
            counts["quota_rejected"] += 1
        elif outcome.rated is not None:
            codecs.rated_encoder.encode(rated_to_avro(outcome.rated))
            counts["rated"] += 1
        else:
            counts["skipped"] += 1
    seconds = time.perf_counter() - started
    return Expected(events=len(records), **counts), EngineTiming(len(records), seconds)
