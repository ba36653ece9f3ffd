"""The rating pipeline as faust-streaming agents: the benchmark's third contender.

Started by bench/faust_runner.py as ``python -m faust -A bench.faust_app worker``
and configured through the environment (connections as for every process,
plus BENCH_FAUST_APP_ID, BENCH_TOPIC_SUFFIX, BENCH_FAUST_DIR and
BENCH_FAUST_GUARANTEE).

Same shape and the same per-event code as `rating process`, driven the faust way:
  route: usage.events -> RouterStage.process -> usage.by-account | usage.dlq
  rate:  usage.by-account -> RaterStage.process (dedup, quota, rating)
         -> usage.rated | usage.rejected | quota.alerts | usage.late | usage.dlq
Each event is its own "batch": faust hands an agent one event at a time.
The stages take a faust message through a small adapter, so decoding,
validation, quota, rating, encoding and dead letters are the very code the
in-process contender runs; what differs is only the streaming runtime.

State: one PartitionState per partition in agent memory (the engine needs the
object), made durable the faust way, through a Table: after each event its
changed keys are written to the table, whose changelog faust writes in the
same transactions as the outputs, co-partitioned with the input. A worker
that takes a partition over rebuilds that partition's state from the table.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import cast

import faust
from confluent_kafka import Message as KafkaMessage
from faust.types import Message

from bench.faust_runner import FIRST_EVENT_FILE
from processors.catalog.model import MissingPolicy
from processors.pipeline import PartitionState
from processors.quota.model import UnknownInstances
from stream.catalog_feed import CatalogFeed
from stream.clients import reading_consumer, registry_client
from stream.contracts import build_codecs
from stream.messages import Output
from stream.settings import connections_from_env, load_settings
from stream.stages import RaterStage, RouterStage

SETTINGS = load_settings(environ={"RATING_TOPIC_SUFFIX": os.environ["BENCH_TOPIC_SUFFIX"]})
CONNECTIONS = connections_from_env()
TOPICS = SETTINGS.topics
WORK_DIR = Path(os.environ["BENCH_FAUST_DIR"])
TIMESTAMP_CREATE_TIME = 1  # confluent_kafka.TIMESTAMP_CREATE_TIME

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


@cache
def _topic(name: str) -> faust.TopicT:
    # Bytes in, bytes out: the stages do the Avro (de)serialisation themselves.
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw")


# bytes keys and values: faust picks its "raw" codec for both.
state_table = app.Table("rating-state", default=None, key_type=bytes, value_type=bytes,
                        partitions=TOPICS.by_account.partitions)


class FaustRecord:
    """A faust message with the confluent-kafka ``Message`` methods the stages call."""

    __slots__ = ("_message",)

    def __init__(self, message: Message):
        self._message = message

    def topic(self) -> str:
        return str(self._message.topic)

    def partition(self) -> int:
        return int(self._message.partition)

    def offset(self) -> int:
        return int(self._message.offset)

    def key(self) -> bytes | None:
        return self._message.key

    def value(self) -> bytes | None:
        return self._message.value

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, int(self._message.timestamp * 1000)

    def error(self) -> None:
        return None


class TableStateStore:
    """What RaterStage asks of ChangelogStateStore, kept in a faust Table instead."""

    def __init__(self, new_state: Callable[[], PartitionState]):
        self._new_state = new_state
        self._states: dict[int, PartitionState] = {}

    def state(self, partition: int) -> PartitionState:
        state = self._states.get(partition)
        if state is None:
            state = self._states[partition] = self._rebuild(partition)
        return state

    def changelog_records(self) -> list[Output]:
        """Changed keys into the table (faust writes its changelog); nothing for us to send."""
        for partition, state in self._states.items():
            for key in state.dirty_keys():
                value = state.dump(key)
                if value is None:
                    state_table.pop(_table_key(partition, key), None)
                else:
                    state_table[_table_key(partition, key)] = value
            state.clear_dirty()
        return []

    def restore(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._states[partition] = self._rebuild(partition)

    def drop(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._states.pop(partition, None)

    def reset(self) -> None:
        self.restore(list(self._states))

    def _rebuild(self, partition: int) -> PartitionState:
        """The partition's state from the (recovered) table: empty on a fresh run."""
        state = self._new_state()
        prefix = _table_key(partition, "")
        for key, value in state_table.items():
            if key.startswith(prefix):
                state.load(key[len(prefix):].decode(), value)
        state.clear_dirty()
        return state


def _table_key(partition: int, key: str) -> bytes:
    # The table is one dict over all partitions: the prefix says whose entry it is.
    return f"{partition}|{key}".encode()


@dataclass(frozen=True)
class _Stages:
    router: RouterStage
    rater: RaterStage


@cache
def _stages() -> _Stages:
    """Registry, schemas, catalog and stages, once, before the first event."""
    codecs = build_codecs(registry_client(CONNECTIONS), TOPICS)
    feed = CatalogFeed(reading_consumer(CONNECTIONS), TOPICS.catalog.name)
    try:
        catalog = feed.wait_for_catalog(60.0)
    finally:
        feed.close()
    window = timedelta(days=SETTINGS.processor.dedup_window_days)
    store = TableStateStore(lambda: PartitionState(dedup_window=window))
    # RaterStage only calls state/changelog_records/restore/drop/reset on its store.
    rater = RaterStage(codecs, TOPICS, lambda: catalog, store,
                       no_agreement=MissingPolicy(SETTINGS.processor.no_agreement),
                       unknown_instances=UnknownInstances(SETTINGS.processor.unknown_instances))
    return _Stages(RouterStage(codecs, TOPICS, lambda: catalog), rater)


@cache
def _mark_first_event() -> None:
    (WORK_DIR / FIRST_EVENT_FILE).write_text(repr(time.time()))


def _record(event: faust.EventT[bytes]) -> KafkaMessage:
    # The stages read a message only through the methods FaustRecord has.
    return cast(KafkaMessage, FaustRecord(event.message))


async def _send(outputs: Sequence[Output]) -> None:
    for output in outputs:
        headers = [(name, value if isinstance(value, bytes) else (value or "").encode())
                   for name, value in output.headers]
        await _topic(output.topic).send(key=output.key, value=output.value,
                                        partition=output.partition, headers=headers or None)


@app.agent(_topic(TOPICS.events.name))
async def route(stream: faust.StreamT[bytes]) -> None:
    router = _stages().router
    async for event in stream.events():
        _mark_first_event()
        await _send([*router.process(_record(event)), *router.end_batch()])


@app.agent(_topic(TOPICS.by_account.name))
async def rate(stream: faust.StreamT[bytes]) -> None:
    rater = _stages().rater
    async for event in stream.events():
        await _send([*rater.process(_record(event)), *rater.end_batch()])
