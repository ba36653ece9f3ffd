"""The rating pipeline as faust-streaming agents: the benchmark's third contender.

Started by bench/faust_runner.py as ``python -m faust -A bench.faust_app worker``
and configured through the environment (connections as for every process,
plus BENCH_FAUST_APP_ID, BENCH_TOPIC_SUFFIX, BENCH_FAUST_DIR and
BENCH_FAUST_GUARANTEE).

Same shape as `rating process`, written the way a faust user would:
  route: usage.events -> decode, resolve the account -> usage.by-account
         (original bytes, keyed by account) | usage.dlq
  rate:  usage.by-account -> processors.rating.rate with the partition's
         RatingState -> usage.rated | usage.dlq
State: a RatingState per partition in agent memory (rate() needs the object),
made durable the faust way, through a Table: after each event its changed
keys are written to the table, whose changelog faust writes in the same
transactions as the outputs and co-partitions with the input. A worker that
takes a partition over rebuilds that partition's RatingState from the table.
Decoding, validation, account resolution, rating and encoding are the very
functions the stages in stream/stages.py call.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import faust
from faust.types import Message

from bench.faust_runner import FIRST_EVENT_FILE
from processors.accounts import resolve_account
from processors.catalog import Catalog
from processors.errors import EventRejected, ReasonCode
from processors.events import Origin, UsageEvent
from processors.rating import Rated, rate
from processors.state import RatingState
from stream.catalog_feed import CatalogFeed
from stream.clients import reading_consumer, registry_client
from stream.codec import event_from_avro, rated_to_avro, rejection_to_avro
from stream.contracts import Codecs, build_codecs
from stream.serde import SerdeError
from stream.settings import connections_from_env, load_settings
from stream.stages import ACCOUNT_HEADER

log = logging.getLogger(__name__)

SETTINGS = load_settings(environ={"RATING_TOPIC_SUFFIX": os.environ["BENCH_TOPIC_SUFFIX"]})
CONNECTIONS = connections_from_env()
TOPICS = SETTINGS.topics
WORK_DIR = Path(os.environ["BENCH_FAUST_DIR"])

app = faust.App(
    os.environ["BENCH_FAUST_APP_ID"],
    broker=[f"kafka://{server}" for server in CONNECTIONS.kafka_bootstrap.split(",")],
    processing_guarantee=os.environ.get("BENCH_FAUST_GUARANTEE", "exactly_once"),
    store="memory://",  # the table's durability is its changelog topic, as with ours
    datadir=str(WORK_DIR / "data"),
    web_enabled=False,
    topic_partitions=TOPICS.by_account.partitions,
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
)


def _raw_topic(name: str) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw")


events_topic = _raw_topic(TOPICS.events.name)
by_account_topic = _raw_topic(TOPICS.by_account.name)
rated_topic = _raw_topic(TOPICS.rated.name)
late_topic = _raw_topic(TOPICS.late.name)
dlq_topic = _raw_topic(TOPICS.dlq.name)
# bytes keys and values: faust picks the "raw" codec for both.
state_table = app.Table("rating-state", default=None, key_type=bytes, value_type=bytes,
                        partitions=TOPICS.by_account.partitions)


@dataclass(frozen=True)
class _Context:
    codecs: Codecs
    catalog: Catalog
    dedup_window: timedelta


@cache
def _context() -> _Context:
    """Registry, schemas and catalog, once, before the first event (blocking is fine then)."""
    codecs = build_codecs(registry_client(CONNECTIONS), TOPICS)
    feed = CatalogFeed(reading_consumer(CONNECTIONS), TOPICS.catalog.name)
    try:
        catalog = feed.wait_for_catalog(60.0)
    finally:
        feed.close()
    return _Context(codecs, catalog, timedelta(days=SETTINGS.processor.dedup_window_days))


@cache
def _mark_first_event() -> None:
    (WORK_DIR / FIRST_EVENT_FILE).write_text(repr(time.time()))


def _decode(context: _Context, value: bytes | None) -> UsageEvent:
    try:
        record = context.codecs.event_decoder.decode(value)
    except SerdeError as exc:
        raise EventRejected(ReasonCode.UNDECODABLE, str(exc)) from None
    return event_from_avro(record)


async def _dead_letter(context: _Context, stage: str, message: Message,
                       rejection: EventRejected, event: UsageEvent | None,
                       late: bool = False) -> None:
    """The same record as stream/dead_letters.py makes, from a faust message."""
    log.warning("dead-letter %s at %s[%d]@%d: %s", rejection.reason, message.topic,
                message.partition, message.offset, rejection.message)
    encoder = context.codecs.late_encoder if late else context.codecs.dead_letter_encoder
    value = encoder.encode(rejection_to_avro(
        reason=str(rejection.reason), message=rejection.message, stage=stage,
        origin=Origin(message.topic, message.partition, message.offset), key=message.key,
        value=message.value, event_id=event.event_id if event else None,
        source_timestamp_ms=int(message.timestamp * 1000),
        details=rejection.details, rejected_at=datetime.now(UTC)))
    await (late_topic if late else dlq_topic).send(key=message.key, value=value)


@app.agent(events_topic)
async def route(stream: faust.StreamT[bytes]) -> None:
    context = _context()
    async for event in stream.events():
        _mark_first_event()
        message = event.message
        usage = None
        try:
            usage = _decode(context, message.value)
            account = resolve_account(usage, context.catalog).account_id.encode()
        except EventRejected as rejection:
            await _dead_letter(context, "router", message, rejection, usage)
            continue
        await by_account_topic.send(key=account, value=message.value,
                                    headers=[(ACCOUNT_HEADER, account)])


@app.agent(by_account_topic)
async def rate_events(stream: faust.StreamT[bytes]) -> None:
    context = _context()
    states: dict[int, RatingState] = {}
    async for event in stream.events():
        message = event.message
        state = states.get(message.partition)
        if state is None:
            state = states[message.partition] = _rebuild(message.partition, context)
        usage = None
        try:
            usage = _decode(context, message.value)
            if state.is_late(usage.event_time):  # parked, as RaterStage does
                await _dead_letter(context, "rater", message, _late(usage), usage, late=True)
                continue
            outcome = rate(usage, Origin(message.topic, message.partition, message.offset),
                           context.catalog, state, datetime.now(UTC))
        except EventRejected as rejection:
            await _dead_letter(context, "rater", message, rejection, usage)
            continue
        _persist(message.partition, state)
        if isinstance(outcome, Rated):
            record = outcome.record
            await rated_topic.send(key=record.account_id.encode(),
                                   value=context.codecs.rated_encoder.encode(
                                       rated_to_avro(record)))


def _late(event: UsageEvent) -> EventRejected:
    return EventRejected(ReasonCode.LATE,
                         f"event {event.event_id} at {event.event_time.isoformat()} is older "
                         "than the duplicate-detection window",
                         {"event_time": event.event_time.isoformat()})


def _table_key(partition: int, key: str) -> bytes:
    # The table is one dict over all partitions: the prefix says whose entry it is.
    return f"{partition}|{key}".encode()


def _persist(partition: int, state: RatingState) -> None:
    """This event's state changes into the table (faust sends them to its changelog)."""
    for key in state.dirty_keys():
        value = state.dump(key)
        if value is None:
            state_table.pop(_table_key(partition, key), None)
        else:
            state_table[_table_key(partition, key)] = value
    state.clear_dirty()


def _rebuild(partition: int, context: _Context) -> RatingState:
    """The partition's state from the (recovered) table: empty on a fresh run."""
    state = RatingState(dedup_window=context.dedup_window)
    prefix = f"{partition}|".encode()
    for key, value in state_table.items():
        if key.startswith(prefix):
            state.load(key[len(prefix):].decode(), value)
    state.clear_dirty()
    return state
