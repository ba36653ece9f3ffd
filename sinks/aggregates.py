"""Redis period aggregates: exact monthly totals of the rated usage, for the REST API.

A sink process (``rating sink aggregates``, :func:`run_aggregates`) tails
``usage.rated`` with read_committed, so it only ever counts records the rater
committed, and adds every record to the totals of its group: billing period
(the record's ``billing_period``, YYYY-MM) x provider x product x customer
account x currency (amounts in different currencies never add). Rating never
waits for Redis: when Redis is down the aggregates fall behind and catch up
(sinks/runner.py).

Redis layout (a public contract, read by the REST API; ``rating`` is the
default key prefix; docs/aggregates.md has examples):

- ``rating:agg:<period>:<provider>:<product>:<account>:<currency>`` -- hash, one
  per group:

  ================ =========================================================
  field            value (all strings)
  ================ =========================================================
  billing_period   ``YYYY-MM``
  provider         the provider partner id; "" for platform services
  product          the product (SKU); "" for platform services
  account          the customer account id
  currency         ISO 4217 code
  count            number of rated records added
  quantity         sum of their billable quantities (decimal string)
  units            units of measure summed into ``quantity``, sorted comma list
                   (``"GB,disk,vcpu"``): one unit means ``quantity`` has a meaning,
                   several (the platform group mixes item types) mean it does not
  net_amount, markup_amount, gross_amount, credit_applied, charged_amount
                   exact sums of the records' fields, decimal strings at the
                   currency's minor unit (``"1234.50"``)
  updated_from     ``<topic>:<partition>:<offset>`` of the last record added
  ================ =========================================================

  Key parts: a record without provider or product (a platform service) has
  ``-`` in that place (``rating:agg:2026-11:-:-:acct-eng:USD``); catalog
  identifiers never start with ``-``, and in a value ``%`` and ``:`` are written
  ``%25`` and ``%3A`` (a literal ``-`` as ``%2D``), so every group has its own
  key. Read the fields, not the key.
- ``rating:agg-index:<period>`` -- set of that period's aggregate hash keys (the
  API lists a period from it, never with SCAN).
- ``rating:agg-periods`` -- set of the periods that have aggregates.
- ``rating:aggregates:offsets`` -- hash ``<partition>`` -> next ``usage.rated``
  offset to read, written in the same MULTI/EXEC as the totals it covers.

Exactly once in effect (sinks/base.py), as in sinks/quota_view.py: each batch
is one optimistic transaction: WATCH the offsets hash and the batch's aggregate
hashes, read them, add the batch in Python, then MULTI / HSET totals, SADD
indexes, HSET offsets / EXEC. A record whose offset is below the stored one is
skipped, so a redelivered or replayed record changes nothing. When Redis comes
back empty the offsets are gone with the totals: the store notices they went
backwards and the runner re-reads ``usage.rated`` from the beginning, rebuilding
every period the topic still retains (30 days by default: run Redis with
persistence if older periods must survive a Redis loss).

Why read-modify-write and not HINCRBYFLOAT or a Lua script: HINCRBYFLOAT adds
binary floats (0.1 + 0.2 != 0.3), which money must never see. A Lua script
adding integer minor units would be atomic without WATCH, but Lua numbers are
doubles (exact only to 2^53) and quantities have any scale (``0.045`` GB), so
every sum would need string arithmetic in Lua. Reading the decimal strings
inside the WATCHed transaction and adding them with Python's ``Decimal`` is
exact, and costs one extra round trip per batch (all hashes read in one
pipeline). Conflicts are rare: records are keyed by account, so one sink
instance owns all of an account's records; two instances only collide on the
offsets hash, and the loser re-reads and redoes its batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from decimal import InvalidOperation
from typing import Any

import redis
from confluent_kafka import Message

from sinks.aggregate_layout import (
    DEFAULT_PREFIX,
    NO_TOTALS,
    Aggregate,
    AggregateGroup,
    Totals,
    aggregate_fields,
    aggregate_key,
    group_of,
    offsets_key,
    parse_aggregate,
    period_index_key,
    periods_key,
    totals_of,
)
from sinks.base import SinkRecord
from sinks.quota_view import TRANSIENT_ERRORS, redis_client
from sinks.redis_fence import OffsetFencedRedisStore, store_group
from sinks.runner import SinkRunner, sink_consumer
from stream.clients import registry_client
from stream.messages import origin_of as message_origin
from stream.observability import OpsListener
from stream.serde import SCHEMA_FILES, AvroDecoder, SerdeError, register
from stream.settings import Connections, Settings

log = logging.getLogger(__name__)

SINK_NAME = "aggregates"


# -- decoding (tests/unit/sinks/test_aggregates_format.py) --------------------------

def origin_text(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"


def decode_rated(topic: str, partition: int, offset: int,
                 rated: Mapping[str, Any] | None, error: str | None = None) -> SinkRecord:
    """A rated record as a SinkRecord carrying its ``group`` and ``totals``, or ``error``
    when it cannot be counted (every record is passed on: its offset counts)."""
    value: dict[str, Any] = {"origin": origin_text(topic, partition, offset)}
    if rated is None:
        value["error"] = error or "no value"
    else:
        try:
            value["group"] = group_of(rated)
            value["totals"] = totals_of(rated)
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            value["error"] = repr(exc)  # validated here, not inside the Redis transaction
    return SinkRecord(topic=topic, partition=partition, offset=offset, value=value)


class RatedDecoder:
    """Kafka message -> SinkRecord with the RatedUsage reader schema."""

    def __init__(self, decoder: AvroDecoder):
        self._decoder = decoder

    def __call__(self, message: Message) -> SinkRecord:
        origin = message_origin(message)
        try:
            rated: dict[str, Any] | None = self._decoder.decode(message.value())
            error = None
        except SerdeError as exc:
            rated, error = None, str(exc)
        return decode_rated(origin.topic, origin.partition, origin.offset, rated, error)


def fold(records: Sequence[SinkRecord]) -> dict[AggregateGroup, Aggregate]:
    """The batch's contribution per group; unreadable records are logged and left out."""
    batch: dict[AggregateGroup, Aggregate] = {}
    for record in records:
        if "error" in record.value:
            log.error("aggregates: not counting unreadable rated record %s: %s",
                      record.value["origin"], record.value["error"])
            continue
        group: AggregateGroup = record.value["group"]
        totals: Totals = record.value["totals"]
        before = batch.get(group, Aggregate(group, NO_TOTALS, ""))
        batch[group] = Aggregate(group, before.totals.plus(totals), record.value["origin"])
    return batch


# -- the store ---------------------------------------------------------------------

class AggregatesStore(OffsetFencedRedisStore):
    """The Sink (sinks/base.py) behind the aggregates: one MULTI/EXEC per batch
    (redis_fence.py), the touched totals read under WATCH and written back added."""

    name = SINK_NAME
    what = "the totals"

    def __init__(self, client: redis.Redis, topic: str, prefix: str = DEFAULT_PREFIX):
        super().__init__(client, topic, offsets_key(prefix))
        self._prefix = prefix

    def _write_fresh(self, pipe: Any, fresh: Sequence[SinkRecord],
                     next_offsets: Mapping[str, str]) -> None:
        self._add(pipe, fresh, next_offsets)

    def _add(self, pipe: Any, fresh: Sequence[SinkRecord],
             next_offsets: Mapping[str, str]) -> None:
        """Read the touched totals under WATCH, add the batch, write it all in MULTI/EXEC."""
        batch = fold(fresh)
        keys = {group: aggregate_key(self._prefix, group) for group in batch}
        if keys:
            pipe.watch(self._offsets_key, *keys.values())
        stored = self._read(list(keys.values()))
        pipe.multi()
        by_period: dict[str, list[str]] = {}
        for group, added in batch.items():
            key = keys[group]
            before = stored.get(key)
            total = added.totals if before is None else before.totals.plus(added.totals)
            pipe.hset(key, mapping=aggregate_fields(Aggregate(group, total,
                                                              added.updated_from)))
            by_period.setdefault(group.billing_period, []).append(key)
        for period, members in sorted(by_period.items()):  # one SADD per period, not per key
            pipe.sadd(period_index_key(self._prefix, period), *members)
        if by_period:
            pipe.sadd(periods_key(self._prefix), *sorted(by_period))
        pipe.hset(self._offsets_key, mapping=next_offsets)
        pipe.execute()

    def _read(self, keys: list[str]) -> dict[str, Aggregate]:
        """The stored totals, in one round trip. Reading on another connection is safe: a
        change after the WATCH makes the EXEC fail, and the batch is redone."""
        if not keys:
            return {}
        with self._client.pipeline(transaction=False) as reads:
            for key in keys:
                reads.hgetall(key)
            rows: list[dict[str, str]] = reads.execute()
        return {key: parse_aggregate(row) for key, row in zip(keys, rows, strict=True) if row}


# -- the process ---------------------------------------------------------------------

def rated_decoder(connections: Connections, topic: str) -> RatedDecoder:
    """Our own RatedUsage schema registered (as every processor does) and seeded into the
    decoder, so records the rater wrote decode without asking the registry again."""
    client = registry_client(connections)
    decoder = AvroDecoder(client, SCHEMA_FILES["rated"])
    decoder.remember(register(client, topic, SCHEMA_FILES["rated"]), SCHEMA_FILES["rated"])
    return RatedDecoder(decoder)


def run_aggregates(settings: Settings, connections: Connections, stop: threading.Event,
                   *, key_prefix: str = DEFAULT_PREFIX, replay: bool = False,
                   ops: OpsListener | None = None) -> None:
    """Keep the period aggregates in Redis up to date until ``stop`` is set.

    ``replay`` reads ``usage.rated`` from the beginning whatever is stored (records
    already counted are skipped by offset; for checking idempotency). ``key_prefix``
    replaces ``rating`` in every key (isolates tests on a shared Redis).
    """
    topic = settings.topics.rated.name
    decode = rated_decoder(connections, topic)
    client = redis_client(connections.redis_url)
    try:
        store = AggregatesStore(client, topic, key_prefix)
        group = store_group(settings.processor.group_id, store, stop, TRANSIENT_ERRORS)
        if group is None:
            return
        log.info("aggregates: %s -> Redis, prefix %s (consumer group %s)", topic, key_prefix,
                 group)
        consumer = sink_consumer(connections, group)
        runner = SinkRunner(consumer, store, topic, decode,
                            batch_size=settings.processor.batch_size,
                            batch_timeout_s=settings.processor.batch_timeout_s,
                            transient=TRANSIENT_ERRORS, replay=replay, ops=ops)
        runner.run(stop)
    finally:
        client.close()
