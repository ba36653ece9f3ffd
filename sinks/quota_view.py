"""The Redis quota view: current quota status mirrored from the rater's changelog.

A sink process (``rating sink quota-view``, :func:`run_quota_view`) tails
``rater.changelog`` with read_committed, so it only ever sees quota state the
rater committed together with its outputs, and mirrors the ``qu|`` entries
(``qu|<account>|<agreement>|<quota id>`` -> ``{"used": "12", "fired": [80]}``,
see processors/quota/state.py) into Redis. Rating never waits for Redis: when
Redis is down the view falls behind and catches up (sinks/runner.py).

Redis layout (a public contract, read by the REST API; ``rating`` is the
default key prefix):

- ``rating:quota:<account>:<agreement>:<quota id>`` -- hash, one per quota in use.
  Each part is escaped as in the aggregates (sinks/aggregate_layout.py, ``key_component``):
  ``%`` and ``:`` are written ``%25`` and ``%3A``, so
  ``rating:quota:acct-eng:eng-platform:VirtualMachine%3Asum%3Avcpu``. Catalog
  identifiers may contain ``:``: unescaped, account ``acct-eng`` with agreement
  ``main:vm`` and account ``acct-eng:main`` with agreement ``vm`` would share a hash.

  ============== ===========================================================
  field          value (all strings)
  ============== ===========================================================
  account        the account id
  agreement      the agreement id (master or sub-agreement)
  quota          the quota id (``VirtualMachine:count``, ``VirtualMachine:sum:vcpu``)
  used           the used amount, a decimal string exactly as the rater keeps it
  limit          the quota limit in the current catalog; "" when the catalog has
                 no such quota (removed, or counted without a limit)
  percent        used / limit x 100, 2 decimals half-up (``"37.50"``); "" when the
                 limit is "" or 0
  thresholds     the agreement's policy in the current catalog, ``percent:action``
                 comma list in increasing order (``"80:notify,100:block"``); ""
                 when the quota is not in the catalog
  thresholds_fired  threshold percents alerted and not re-armed, increasing comma
                 list (``"50,90"``); "" when none
  last_alert_percent, last_alert_action, last_alert_at, last_alert_event
                 the most recent alert of the quota (threshold, notify|block, when
                 raised, the crossing event id); "" when it never alerted
  catalog_version   the catalog version limit/percent/thresholds come from
  updated_from   ``<topic>:<partition>:<offset>`` of the changelog record written
  ============== ===========================================================

  A tombstone (the quota back at zero with nothing fired) deletes the hash.
  Do not parse keys: read the fields, or the index.
- ``rating:quota-index:<account>`` -- set of that account's quota hash keys (the
  account escaped the same way).
- ``rating:quota-view:offsets`` -- hash ``<partition>`` -> next changelog offset to
  read, written in the same MULTI/EXEC as the quota hashes it covers.

Writers and readers (the REST API, api/quota.py) build keys only with
:func:`hash_key` and :func:`index_key`. A view written before key parts were
escaped must be rebuilt: stop ``rating sink quota-view``, delete the view's keys
(``rating:quota:*``, ``rating:quota-index:*``, ``rating:quota-view:offsets``), start
it again; with no stored offsets it reads the compacted changelog from the beginning.

Exactly once in effect (sinks/base.py): each batch is one optimistic
transaction (WATCH on the offsets hash, MULTI/EXEC) that writes the hashes and
the per-partition next offsets; a record whose offset is below the stored one
is skipped, so a redelivered or replayed record changes nothing. When Redis
comes back empty (nothing is persisted) the stored offsets are gone with the
data: the store notices that they went backwards and the runner re-reads the
changelog from the stored offsets, i.e. from the beginning, rebuilding the view.

When the catalog changes, limit, percent, thresholds and catalog_version of
every hash are recomputed from their ``used`` (derived fields only; the
offsets and ``updated_from`` do not move).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import redis
from confluent_kafka import Message

from processors.catalog import Catalog
from processors.quota.model import USAGE, UsageKey
from sinks.aggregate_layout import key_component
from sinks.base import SinkRecord
from sinks.redis_fence import OffsetFencedRedisStore, store_group
from sinks.redis_fence import text as _text
from sinks.runner import SinkRunner, sink_consumer
from stream.catalog_feed import CatalogFeed
from stream.clients import reading_consumer
from stream.messages import origin_of as message_origin
from stream.observability import OpsListener
from stream.settings import Connections, Settings

log = logging.getLogger(__name__)

SINK_NAME = "quota-view"
DEFAULT_PREFIX = "rating"
CATALOG_WAIT_S = 60.0
TWO_PLACES = Decimal("0.01")
HUNDRED = Decimal(100)
# Redis errors worth waiting out: the server is down, restarting or loading.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, OSError,
)


# -- pure formatting (tests/unit/sinks/test_quota_view_format.py) --------------

def parse_usage_key(key: str) -> UsageKey | None:
    """``qu|<account>|<agreement>|<quota id>`` -> UsageKey; None for any other state key."""
    kind, _, rest = key.partition("|")
    if kind != USAGE:
        return None
    parts = rest.split("|")
    return UsageKey(*parts) if len(parts) == 3 and all(parts) else None


def hash_key(prefix: str, key: UsageKey) -> str:
    # Escaped parts: catalog identifiers may contain ':', and two quotas sharing a
    # hash would overwrite (or a tombstone delete) each other.
    parts = (key.account, key.agreement, key.quota)
    return f"{prefix}:quota:" + ":".join(key_component(part) for part in parts)


def index_key(prefix: str, account: str) -> str:
    return f"{prefix}:quota-index:{key_component(account)}"


def index_pattern(prefix: str) -> str:
    """SCAN pattern of every account's index (``*`` is not an account to escape)."""
    return f"{prefix}:quota-index:*"


def offsets_key(prefix: str) -> str:
    return f"{prefix}:quota-view:offsets"


def percent_of(used: Decimal, limit: Decimal | None) -> str:
    """used / limit x 100 with 2 decimals half-up; "" without a (non-zero) limit."""
    if limit is None or limit == 0:
        return ""
    return str((used * HUNDRED / limit).quantize(TWO_PLACES, rounding=ROUND_HALF_UP))


def catalog_fields(key: UsageKey, used: Decimal, catalog: Catalog | None) -> dict[str, str]:
    """limit, percent, thresholds and catalog_version of ``key`` in ``catalog``."""
    agreement = None if catalog is None else catalog.agreements.get(key.agreement)
    quota = None if agreement is None else agreement.quotas.get(key.quota)
    version = "" if catalog is None else catalog.version
    if agreement is None or quota is None:
        return {"limit": "", "percent": "", "thresholds": "", "catalog_version": version}
    thresholds = ",".join(f"{t.percent}:{t.action}" for t in agreement.policy.thresholds)
    return {"limit": str(quota.limit), "percent": percent_of(used, quota.limit),
            "thresholds": thresholds, "catalog_version": version}


def quota_fields(key: UsageKey, state: Mapping[str, Any], catalog: Catalog | None,
                 origin: str) -> dict[str, str]:
    """Every field of the quota hash for one ``qu|`` changelog value (decoded JSON)."""
    used_text = str(state["used"])
    used = Decimal(used_text)
    fired = ",".join(str(p) for p in sorted(int(p) for p in state.get("fired", ())))
    last = state.get("last_alert") or {}
    return {"account": key.account, "agreement": key.agreement, "quota": key.quota,
            "used": used_text, **catalog_fields(key, used, catalog),
            "thresholds_fired": fired,
            "last_alert_percent": str(last.get("percent", "")),
            "last_alert_action": str(last.get("action", "")),
            "last_alert_at": str(last.get("raised_at", "")),
            "last_alert_event": str(last.get("event_id", "")),
            "updated_from": origin}


def origin_of(record: SinkRecord) -> str:
    return f"{record.topic}:{record.partition}:{record.offset}"


def decode_changelog(topic: str, partition: int, offset: int, key: bytes | None,
                     value: bytes | None) -> SinkRecord:
    """A changelog record as a SinkRecord; every record is passed on (its offset counts).

    ``value`` holds ``key`` (the state key), and for ``qu|`` entries ``state``
    (decoded JSON, None for a tombstone) or ``error`` when it is unreadable.
    """
    text = "" if key is None else key.decode("utf-8", errors="replace")
    decoded: dict[str, Any] = {"key": text}
    if parse_usage_key(text) is not None:
        try:
            state = None if value is None else json.loads(value)
            if state is not None:
                Decimal(str(state["used"]))  # validated here, not in the Redis transaction
                [int(p) for p in state.get("fired", ())]
            decoded["state"] = state
        except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
            decoded["error"] = repr(exc)
    return SinkRecord(topic=topic, partition=partition, offset=offset, value=decoded)


def decode_message(message: Message) -> SinkRecord:
    origin = message_origin(message)
    return decode_changelog(origin.topic, origin.partition, origin.offset, message.key(),
                            message.value())


# -- the store -------------------------------------------------------------------

class QuotaViewStore(OffsetFencedRedisStore):
    """The Sink (sinks/base.py) behind the view: one MULTI/EXEC per batch (redis_fence.py)."""

    name = SINK_NAME
    what = "the view"

    def __init__(self, client: redis.Redis, topic: str,
                 catalog: Callable[[], Catalog | None], prefix: str = DEFAULT_PREFIX):
        super().__init__(client, topic, offsets_key(prefix))
        self._catalog = catalog
        self._prefix = prefix

    def refresh_catalog_fields(self) -> int:
        """Recompute limit, percent, thresholds, catalog_version of every hash; how many."""
        catalog = self._catalog()
        hashes = 0
        for index in self._client.scan_iter(match=index_pattern(self._prefix), count=500):
            members = sorted(self._client.smembers(index))
            if not members:
                continue
            with self._client.pipeline(transaction=False) as reads:
                for member in members:
                    reads.hmget(member, ["account", "agreement", "quota", "used"])
                rows = reads.execute()
            with self._client.pipeline(transaction=False) as writes:
                for member, row in zip(members, rows, strict=True):
                    if any(value is None for value in row):
                        continue  # deleted meanwhile
                    key = UsageKey(_text(row[0]), _text(row[1]), _text(row[2]))
                    # HSET only on a still existing hash: never resurrect a deleted quota.
                    writes.eval(_UPDATE_IF_EXISTS, 1, member,
                                *_flatten(catalog_fields(key, Decimal(_text(row[3])), catalog)))
                    hashes += 1
                writes.execute()
        return hashes

    def _write_fresh(self, pipe: Any, fresh: Sequence[SinkRecord],
                     next_offsets: Mapping[str, str]) -> None:
        pipe.multi()
        self._queue_writes(pipe, fresh)
        pipe.hset(self._offsets_key, mapping=next_offsets)
        pipe.execute()

    def _queue_writes(self, pipe: Any, fresh: Sequence[SinkRecord]) -> None:
        latest: dict[str, SinkRecord] = {}  # state key -> its newest record in the batch
        for record in fresh:
            text = str(record.value.get("key", ""))
            if parse_usage_key(text) is None:
                continue
            if "error" in record.value:
                log.error("quota view: ignoring unreadable changelog record %s (%s): %s",
                          origin_of(record), text, record.value["error"])
                continue
            latest[text] = record
        catalog = self._catalog()
        for text, record in latest.items():
            usage = parse_usage_key(text)
            assert usage is not None
            hkey, ikey = hash_key(self._prefix, usage), index_key(self._prefix, usage.account)
            state = record.value.get("state")
            pipe.delete(hkey)
            if state is None:
                pipe.srem(ikey, hkey)
            else:
                pipe.hset(hkey, mapping=quota_fields(usage, state, catalog, origin_of(record)))
                pipe.sadd(ikey, hkey)


# Only touch a hash that still exists (a concurrent tombstone wins).
_UPDATE_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
  return 1
end
return 0
"""


def _flatten(fields: Mapping[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


# -- the process -------------------------------------------------------------------

def redis_client(url: str) -> redis.Redis:
    """Short timeouts: an unreachable Redis must surface quickly to the runner's backoff."""
    return redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=5.0,
                                decode_responses=True)


def run_quota_view(settings: Settings, connections: Connections, stop: threading.Event,
                   *, key_prefix: str = DEFAULT_PREFIX, replay: bool = False,
                   catalog_wait_s: float = CATALOG_WAIT_S,
                   ops: OpsListener | None = None) -> None:
    """Mirror the committed quota state into Redis until ``stop`` is set.

    ``replay`` reads the changelog from the beginning whatever is stored (records
    already stored are skipped by offset; for checking idempotency). ``key_prefix``
    replaces ``rating`` in every key (isolates tests on a shared Redis).
    """
    topics = settings.topics
    feed = CatalogFeed(reading_consumer(connections), topics.catalog.name)
    client = redis_client(connections.redis_url)
    try:
        feed.wait_for_catalog(catalog_wait_s)
        store = QuotaViewStore(client, topics.changelog.name, lambda: feed.current, key_prefix)
        group = store_group(settings.processor.group_id, store, stop, TRANSIENT_ERRORS)
        if group is None:
            return
        log.info("quota view: %s -> Redis, prefix %s (consumer group %s)",
                 topics.changelog.name, key_prefix, group)
        consumer = sink_consumer(connections, group)
        runner = SinkRunner(
            consumer, store, topics.changelog.name,
            decode_message,
            batch_size=settings.processor.batch_size,
            batch_timeout_s=settings.processor.batch_timeout_s,
            transient=TRANSIENT_ERRORS, replay=replay,
            on_idle=_CatalogRefresh(feed, store).between_batches,
            ops=ops,
        )
        runner.run(stop)
    finally:
        feed.close()
        client.close()


class _CatalogRefresh:
    """Between batches: a new catalog version rewrites the derived fields (retried)."""

    def __init__(self, feed: CatalogFeed, store: QuotaViewStore):
        self._feed = feed
        self._store = store
        self._pending = False

    def between_batches(self) -> None:
        if self._feed.refresh():
            self._pending = True
        if not self._pending:
            return
        try:
            count = self._store.refresh_catalog_fields()
        except TRANSIENT_ERRORS as exc:
            log.debug("quota view: catalog refresh postponed, Redis unreachable: %s", exc)
            return
        self._pending = False
        log.info("quota view: %d quota hashes updated to catalog %s", count,
                 self._feed.current.version)
