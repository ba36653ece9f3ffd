"""The Redis quota view on the real broker and a real Redis.

Changelog records are written here with a transactional producer, in the
rater's format (processors/quota/state.py), to the pipeline's own changelog
topic; the example catalog gives the limits.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import KafkaError, Message
from prometheus_client import REGISTRY

from sinks.quota_view import SINK_NAME, hash_key, parse_usage_key, run_quota_view
from stream.clients import transactional_producer
from stream.settings import Connections
from stream.stack.downloads import cache_dir, debian_binary
from stream.stack.ports import LOOPBACK, free_port
from stream.stack.redis import redis_answers
from stream.stack.service import Context
from tests.integration.harness import EXAMPLE_CATALOG, Pipeline
from tests.integration.running_sink import RunningSink

pytestmark = pytest.mark.integration

VCPU = "qu|acct-eng|eng-platform|VirtualMachine:sum:vcpu"
COUNT = "qu|acct-eng|eng-platform|VirtualMachine:count"
MAIN_VCPU = "qu|acct-eng|eng-main|VirtualMachine:sum:vcpu"
STORAGE = "qu|acct-data|data-main|Storage:sum:size_gb"
SEATS = "qu|acct-data|data-main|SaasSeat:count"  # counted, not in the catalog
PLATFORM = "50:notify,90:notify,100:block"
DEFAULT = "80:notify,100:block"

Change = tuple[int, str, dict[str, Any] | None]  # partition, state key, value (None: tombstone)


def usage(used: str, *fired: int) -> dict[str, Any]:
    return {"fired": sorted(fired), "used": used}


def produce_changes(connections: Connections, topic: str, changes: list[Change],
                    commit: bool = True) -> dict[str, int]:
    """One transaction; the offset of each key's last record."""
    producer = transactional_producer(connections, f"test-quota-view-{uuid.uuid4().hex}", 30_000)
    offsets: dict[str, int] = {}
    errors: list[KafkaError] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(error)
        else:
            offsets[message.key().decode()] = message.offset()

    producer.init_transactions()
    producer.begin_transaction()
    for partition, key, value in changes:
        encoded = None if value is None else json.dumps(value, separators=(",", ":"),
                                                         sort_keys=True).encode()
        producer.produce(topic, key=key.encode(), value=encoded, partition=partition,
                         on_delivery=delivered)
    producer.flush(30)
    if commit:
        producer.commit_transaction()
    else:
        producer.abort_transaction()
    assert not errors, errors
    return offsets


def quota_view_sink(pipeline: Pipeline, connections: Connections, prefix: str,
                    replay: bool = False) -> RunningSink:
    """run_quota_view in a thread; its Redis may be down on purpose while waiting."""
    return RunningSink(SINK_NAME, lambda stop: run_quota_view(
        pipeline.settings, connections, stop, key_prefix=prefix, replay=replay),
        transient=(redis.ConnectionError,))


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"sink": SINK_NAME, **labels}) or 0.0


def records(result: str) -> float:
    return metric("rating_sink_records_total", result=result)


def hkey(prefix: str, state_key: str) -> str:
    usage = parse_usage_key(state_key)
    assert usage is not None, state_key
    return hash_key(prefix, usage)


def view_dump(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every key of the view under ``prefix``, with its content."""
    dump: dict[str, Any] = {}
    for key in sorted(client.scan_iter(match=f"{prefix}:*")):
        kind = client.type(key)
        dump[key] = client.hgetall(key) if kind == "hash" else sorted(client.smembers(key))
    return dump


def expected_hash(state_key: str, origin: str, used: str, limit: str, percent: str,
                  thresholds: str, fired: str, version: str) -> dict[str, str]:
    _, account, agreement, quota = state_key.split("|")
    return {"account": account, "agreement": agreement, "quota": quota, "used": used,
            "limit": limit, "percent": percent, "thresholds": thresholds,
            "thresholds_fired": fired, "catalog_version": version, "updated_from": origin,
            # The changelog values these tests write carry no last alert.
            "last_alert_percent": "", "last_alert_action": "", "last_alert_at": "",
            "last_alert_event": ""}


def test_view_mirrors_committed_quota_state_exactly_once(
        pipeline: Pipeline, connections: Connections,
        shared_redis: tuple[redis.Redis, str]) -> None:
    client, prefix = shared_redis
    version = pipeline.load_catalog()
    topic = pipeline.settings.topics.changelog.name
    first = produce_changes(connections, topic, [
        (0, VCPU, usage("8")), (0, "qi|acct-eng|VirtualMachine|vm-1", {"holds": []}),
        (0, COUNT, usage("1")), (0, MAIN_VCPU, usage("8")),
        (3, STORAGE, usage("2500")), (3, SEATS, usage("3")),
    ])
    second = produce_changes(connections, topic, [
        (0, VCPU, usage("24", 50)), (0, VCPU, usage("30", 50, 90)), (0, COUNT, None),
    ])
    produce_changes(connections, topic, [
        (0, VCPU, usage("31", 50, 90)), (3, STORAGE, usage("9999", 80)),
        (3, "qu|acct-zzz|zzz-main|VirtualMachine:count", usage("1")),
    ], commit=False)
    third = produce_changes(connections, topic, [(3, STORAGE, usage("5000"))])
    written_before = records("written")

    with quota_view_sink(pipeline, connections, prefix) as view:
        view.wait_until(lambda: client.hget(hkey(prefix, STORAGE), "used") == "5000",
                        "the last committed storage value")
        view.wait_until(lambda: client.hgetall(f"{prefix}:quota-view:offsets") == {
            "0": str(second[COUNT] + 1), "3": str(third[STORAGE] + 1)}, "the offsets")
    assert records("written") - written_before == 10  # every committed record, once
    store_id = client.hget(f"{prefix}:quota-view:offsets:store", "id")
    assert store_id is not None
    assert len(store_id) == 32

    expected = {
        hkey(prefix, VCPU): expected_hash(VCPU, f"{topic}:0:{second[VCPU]}", "30", "32",
                                          "93.75", PLATFORM, "50,90", version),
        hkey(prefix, MAIN_VCPU): expected_hash(MAIN_VCPU,
                                               f"{topic}:0:{first[MAIN_VCPU]}", "8", "96",
                                               "8.33", DEFAULT, "", version),
        hkey(prefix, STORAGE): expected_hash(STORAGE, f"{topic}:3:{third[STORAGE]}",
                                             "5000", "10000", "50.00", DEFAULT, "", version),
        hkey(prefix, SEATS): expected_hash(SEATS, f"{topic}:3:{first[SEATS]}", "3", "",
                                           "", "", "", version),
        f"{prefix}:quota-index:acct-eng": sorted([hkey(prefix, VCPU), hkey(prefix, MAIN_VCPU)]),
        f"{prefix}:quota-index:acct-data": sorted([hkey(prefix, STORAGE), hkey(prefix, SEATS)]),
        f"{prefix}:quota-view:offsets": {"0": str(second[COUNT] + 1),
                                         "3": str(third[STORAGE] + 1)},
        # The store's own id, which names the sink's consumer group (one per store).
        f"{prefix}:quota-view:offsets:store": {"id": store_id},
    }
    stored = view_dump(client, prefix)
    assert stored == expected  # the tombstoned count and the aborted records are absent

    # Replay everything from offset 0 on the same Redis: all skipped, nothing changes.
    written_before, skipped_before = records("written"), records("skipped")
    with quota_view_sink(pipeline, connections, prefix, replay=True) as replay:
        replay.wait_until(lambda: records("skipped") - skipped_before >= 10, "the replay")
    assert records("skipped") - skipped_before == 10
    assert records("written") - written_before == 0
    assert view_dump(client, prefix) == expected
    assert client.hget(hkey(prefix, VCPU), "updated_from") == f"{topic}:0:{second[VCPU]}"

    # A restart resumes from the stored offsets: only the new record is read and written.
    written_before, skipped_before = records("written"), records("skipped")
    fourth = produce_changes(connections, topic, [(0, VCPU, usage("20", 50))])
    with quota_view_sink(pipeline, connections, prefix) as resumed:
        resumed.wait_until(lambda: client.hget(hkey(prefix, VCPU), "used") == "20",
                           "the new value")
    assert records("written") - written_before == 1
    assert records("skipped") - skipped_before == 0
    assert client.hgetall(hkey(prefix, VCPU)) == expected_hash(
        VCPU, f"{topic}:0:{fourth[VCPU]}", "20", "32", "62.50", PLATFORM, "50", version)


class PrivateRedis:
    """A redis-server of this test only (never the shared stack's), nothing persisted."""

    def __init__(self, tmp_path: Path):
        ctx = Context(state_dir=tmp_path, cache_dir=cache_dir(), quiet=True)
        self.binary = debian_binary(ctx, "redis-server", "redis-server", "/usr/bin/redis-server")
        self.port = free_port()
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        self.dir = tmp_path / "private-redis"
        self.dir.mkdir()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", LOOPBACK, "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--logfile", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not redis_answers(self.url):
            assert self.process.poll() is None, "private redis-server exited"
            assert time.monotonic() < deadline, "private redis-server did not answer"
            time.sleep(0.1)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_view_holds_while_redis_is_down_then_rebuilds(
        pipeline: Pipeline, connections: Connections, private_redis: PrivateRedis) -> None:
    version = pipeline.load_catalog()
    topic = pipeline.settings.topics.changelog.name
    own = replace(connections, redis_url=private_redis.url)
    client = redis.Redis.from_url(private_redis.url, decode_responses=True)
    prefix = "rating"
    first = produce_changes(connections, topic, [
        (0, VCPU, usage("8")), (0, COUNT, usage("1")), (3, STORAGE, usage("2500")),
    ])
    retries_before = metric("rating_sink_retries_total")

    view = quota_view_sink(pipeline, own, prefix)
    try:
        view.wait_until(lambda: client.hget(hkey(prefix, STORAGE), "used") == "2500",
                        "the view")
        assert metric("rating_sink_up") == 1.0
        private_redis.kill()
        second = produce_changes(connections, topic, [
            (0, VCPU, usage("24", 50)), (3, STORAGE, usage("8000", 80)),
        ])
        view.wait_until(lambda: metric("rating_sink_up") == 0.0
                        and metric("rating_sink_retries_total") > retries_before,
                        "the view to notice the outage and retry")
        time.sleep(1.0)  # a few retries with backoff, still down
        assert metric("rating_sink_up") == 0.0
        private_redis.start()  # same port, empty: the stored offsets are gone with the data
        view.wait_until(lambda: client.hget(hkey(prefix, STORAGE), "used") == "8000"
                        and client.hget(hkey(prefix, VCPU), "used") == "24", "the rebuild")
        view.wait_until(lambda: client.hgetall(f"{prefix}:quota-view:offsets") == {
            "0": str(second[VCPU] + 1), "3": str(second[STORAGE] + 1)}, "the offsets")
        assert metric("rating_sink_up") == 1.0
    finally:
        view.stop()
        client.close()

    client = redis.Redis.from_url(private_redis.url, decode_responses=True)
    try:
        stored = view_dump(client, prefix)
    finally:
        client.close()
    assert stored == {  # COUNT only ever came in the first transaction: re-read from 0
        hkey(prefix, VCPU): expected_hash(VCPU, f"{topic}:0:{second[VCPU]}", "24", "32",
                                          "75.00", PLATFORM, "50", version),
        hkey(prefix, COUNT): expected_hash(COUNT, f"{topic}:0:{first[COUNT]}", "1", "8",
                                           "12.50", PLATFORM, "", version),
        hkey(prefix, STORAGE): expected_hash(STORAGE, f"{topic}:3:{second[STORAGE]}",
                                             "8000", "10000", "80.00", DEFAULT, "80", version),
        "rating:quota-index:acct-eng": sorted([hkey(prefix, VCPU), hkey(prefix, COUNT)]),
        "rating:quota-index:acct-data": [hkey(prefix, STORAGE)],
        "rating:quota-view:offsets": {"0": str(second[VCPU] + 1),
                                      "3": str(second[STORAGE] + 1)},
    }


def test_a_new_catalog_version_updates_limits_in_place(
        pipeline: Pipeline, connections: Connections, shared_redis: tuple[redis.Redis, str],
        tmp_path: Path) -> None:
    client, prefix = shared_redis
    pipeline.load_catalog()
    topic = pipeline.settings.topics.changelog.name
    offsets = produce_changes(connections, topic, [(0, VCPU, usage("24", 50))])
    view = quota_view_sink(pipeline, connections, prefix)
    try:
        view.wait_until(lambda: client.hget(hkey(prefix, VCPU), "percent") == "75.00",
                        "the view")
        changed = tmp_path / "catalog"
        shutil.copytree(EXAMPLE_CATALOG, changed)
        agreements = changed / "agreements.yaml"
        text = agreements.read_text()
        old = "{service_item_type: VirtualMachine, aggregate: sum, attribute: vcpu, quota: 32}"
        assert old in text
        agreements.write_text(text.replace(old, old.replace("32", "48")))
        header = changed / "catalog.yaml"
        header.write_text(header.read_text().replace('version: "', 'version: "quota-view-', 1))
        version = pipeline.load_catalog(changed)
        assert version.startswith("quota-view-")
        view.wait_until(lambda: client.hget(hkey(prefix, VCPU), "catalog_version") == version,
                        "the new catalog's limits")
    finally:
        view.stop()
    assert client.hgetall(hkey(prefix, VCPU)) == expected_hash(
        VCPU, f"{topic}:0:{offsets[VCPU]}", "24", "48", "50.00", PLATFORM, "50", version)
