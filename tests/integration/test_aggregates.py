"""The Redis period aggregates on the real broker and a real Redis.

The expected totals are always computed here, independently of sinks/: the
rated records are read back from Kafka (read_committed) and summed per billing
period, provider, product, account and currency with plain Decimal arithmetic;
Redis is read with raw commands from the documented layout.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from confluent_kafka import KafkaError, Message
from prometheus_client import REGISTRY

from sinks.aggregates import SINK_NAME, AggregatesStore, decode_rated, run_aggregates
from stream.clients import transactional_producer
from stream.settings import REPO_ROOT, Connections
from stream.stack.ports import LOOPBACK, free_port
from tests.exposition import http_get, sample
from tests.integration.events import order_independent_mix
from tests.integration.faults import CuttableProxy
from tests.integration.harness import Pipeline
from tests.integration.running_sink import RunningSink
from tests.integration.test_quota_view import PrivateRedis
from tests.unit.api.dataset import example_catalog, rated_values

pytestmark = pytest.mark.integration

AMOUNTS = ("net_amount", "markup_amount", "gross_amount", "credit_applied", "charged_amount")
GroupKey = tuple[str, str, str, str, str]  # period, provider, product, account, currency


# -- expectations, independent of the sink ----------------------------------------------

def expected_totals(rated: list[dict[str, Any]]) -> dict[GroupKey, dict[str, str]]:
    """Per group: count, quantity, units and amount sums of the given rated records."""
    sums: dict[GroupKey, dict[str, Any]] = {}
    for value in rated:
        key = (value["billing_period"], value["provider"] or "", value["product"] or "",
               value["account_id"], value["currency"])
        entry = sums.setdefault(key, {"count": 0, "quantity": Decimal(0), "units": set(),
                                      **{name: Decimal(0) for name in AMOUNTS}})
        entry["count"] += 1
        entry["quantity"] += Decimal(value["quantity"])
        entry["units"].add(value["unit_of_measure"])
        for name in AMOUNTS:
            entry[name] += Decimal(value[name])
    return {key: {"count": str(e["count"]), "quantity": format(e["quantity"], "f"),
                  "units": ",".join(sorted(e["units"])),
                  **{name: format(e[name], "f") for name in AMOUNTS}}
            for key, e in sums.items()}


def stored_totals(client: redis.Redis, prefix: str) -> dict[GroupKey, dict[str, str]]:
    """Every aggregate hash reachable from the period indexes (raw Redis reads)."""
    found: dict[GroupKey, dict[str, str]] = {}
    for period in client.smembers(f"{prefix}:agg-periods"):
        for key in client.smembers(f"{prefix}:agg-index:{period}"):
            fields = dict(client.hgetall(key))
            group = (fields.pop("billing_period"), fields.pop("provider"),
                     fields.pop("product"), fields.pop("account"), fields.pop("currency"))
            assert group[0] == period
            fields.pop("updated_from")
            found[group] = fields
    return found


def all_keys(client: redis.Redis, prefix: str) -> dict[str, Any]:
    dump: dict[str, Any] = {}
    for key in sorted(client.scan_iter(match=f"{prefix}:*")):
        kind = client.type(key)
        dump[key] = client.hgetall(key) if kind == "hash" else sorted(client.smembers(key))
    return dump


# -- driving the sink ---------------------------------------------------------------------

def aggregates_sink(pipeline: Pipeline, connections: Connections, prefix: str,
                    replay: bool = False) -> RunningSink:
    """run_aggregates in a thread; its Redis may be down on purpose while waiting."""
    return RunningSink(SINK_NAME, lambda stop: run_aggregates(
        pipeline.settings, connections, stop, key_prefix=prefix, replay=replay),
        transient=(redis.ConnectionError,))


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"sink": SINK_NAME, **labels}) or 0.0


def records(result: str) -> float:
    return metric("rating_sink_records_total", result=result)


def produce_rated(pipeline: Pipeline, values: list[dict[str, Any]],
                  commit: bool = True) -> None:
    """One transaction of rated records on the pipeline's usage.rated, keyed by account."""
    topic = pipeline.settings.topics.rated.name
    producer = transactional_producer(pipeline.connections,
                                      f"test-aggregates-{uuid.uuid4().hex}", 30_000)
    errors: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            errors.append(error)

    producer.init_transactions()
    producer.begin_transaction()
    for value in values:
        producer.produce(topic, key=value["account_id"].encode(),
                         value=pipeline.codecs.rated_encoder.encode(value),
                         on_delivery=delivered)
    producer.flush(30)
    if commit:
        producer.commit_transaction()
    else:
        producer.abort_transaction()
    assert not errors, errors


def read_back(pipeline: Pipeline) -> list[dict[str, Any]]:
    return [record.value for record in pipeline.rated()]


def next_offsets(pipeline: Pipeline) -> dict[str, str]:
    """partition -> offset after its last committed record, as the sink must store it."""
    highest: dict[int, int] = {}
    for record in pipeline.rated():
        highest[record.partition] = max(highest.get(record.partition, -1), record.offset)
    return {str(p): str(o + 1) for p, o in highest.items()}


def hand_made(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records the example catalog cannot produce: a JPY amount, a fractional quantity,
    and a provider id with a colon (identifiers may contain one)."""
    base = values[0]
    return [
        {**base, "event_id": "jpy-1", "currency": "JPY", "quantity": "3",
         "net_amount": "1500", "markup_amount": "0", "gross_amount": "1500",
         "credit_applied": "0", "credit_remaining": "0", "charged_amount": "1500"},
        {**base, "event_id": "frac-1", "quantity": "0.045", "unit_of_measure": "GB",
         "net_amount": "0.01", "markup_amount": "0.00", "gross_amount": "0.01",
         "credit_applied": "0.00", "charged_amount": "0.01"},
        {**base, "event_id": "colon-1", "provider": "ven:dor", "product": "p:1"},
    ]


@pytest.fixture(scope="module")
def dataset() -> list[dict[str, Any]]:
    values = rated_values(example_catalog())
    return values + hand_made(values)


# -- tests --------------------------------------------------------------------------------

def test_totals_equal_the_rated_records_of_a_real_pipeline_and_replay_changes_nothing(
        pipeline: Pipeline, connections: Connections,
        shared_redis: tuple[redis.Redis, str]) -> None:
    client, prefix = shared_redis
    pipeline.load_catalog()
    pipeline.publish(order_independent_mix(400, seed=11))
    pipeline.start_processor()
    pipeline.wait_caught_up()
    rated = read_back(pipeline)
    expected = expected_totals(rated)
    assert len(rated) > 100
    assert len(expected) > 5
    assert any(key[1] == "" for key in expected)
    assert any(key[1] for key in expected)

    with aggregates_sink(pipeline, connections, prefix) as sink:
        sink.wait_until(lambda: stored_totals(client, prefix) == expected, "the exact totals")
    periods = {key[0] for key in expected}
    assert set(client.smembers(f"{prefix}:agg-periods")) == periods
    platform = next(key for key in expected if key[1] == "")
    assert client.exists(f"{prefix}:agg:{platform[0]}:-:-:{platform[3]}:{platform[4]}")
    before = all_keys(client, prefix)

    # Every record again from offset 0 on the same Redis: all skipped, nothing moves.
    written, skipped = records("written"), records("skipped")
    with aggregates_sink(pipeline, connections, prefix, replay=True) as replay:
        replay.wait_until(lambda: records("skipped") - skipped >= len(rated), "the replay")
    assert records("skipped") - skipped == len(rated)
    assert records("written") - written == 0
    assert all_keys(client, prefix) == before


def test_a_redelivered_batch_changes_nothing(connections: Connections,
                                             shared_redis: tuple[redis.Redis, str],
                                             dataset: list[dict[str, Any]]) -> None:
    """A crash after the Redis commit but before Kafka's: the same records come again,
    alone or overlapping new ones."""
    client, prefix = shared_redis
    topic = "usage.rated-test"
    sink_records = [decode_rated(topic, index % 2, index // 2, value)
                    for index, value in enumerate(dataset)]
    first, second = sink_records[:20], sink_records[20:]
    store = AggregatesStore(client, topic, prefix)
    store.write_batch(first)
    after_first = all_keys(client, prefix)
    store.write_batch(first)  # redelivered as it was
    assert all_keys(client, prefix) == after_first
    AggregatesStore(client, topic, prefix).write_batch(first[10:] + second)  # a new process
    store.write_batch(sink_records)  # everything again
    assert stored_totals(client, prefix) == expected_totals(dataset)
    assert client.hgetall(f"{prefix}:aggregates:offsets") == {
        "0": str(len([r for r in sink_records if r.partition == 0])),
        "1": str(len([r for r in sink_records if r.partition == 1]))}


def test_two_stores_each_hold_every_total(
        pipeline: Pipeline, connections: Connections,
        shared_redis: tuple[redis.Redis, str], dataset: list[dict[str, Any]]) -> None:
    """Two sinks of two stores at once (here two key prefixes; a move to a new Redis alike):
    each reads every partition. Sharing one consumer group, they split the partitions and
    each store silently missed the other's totals."""
    client, prefix = shared_redis
    other = f"{prefix}-other"
    produce_rated(pipeline, dataset)
    expected = expected_totals(read_back(pipeline))
    assert len({record.partition for record in pipeline.rated()}) > 1
    try:
        with aggregates_sink(pipeline, connections, prefix) as first, \
                aggregates_sink(pipeline, connections, other) as second:
            first.wait_until(lambda: stored_totals(client, prefix) == expected, "the first")
            second.wait_until(lambda: stored_totals(client, other) == expected, "the second")
        assert (client.hget(f"{prefix}:aggregates:offsets:store", "id")
                != client.hget(f"{other}:aggregates:offsets:store", "id"))
    finally:
        keys = list(client.scan_iter(match=f"{other}:*"))
        if keys:
            client.delete(*keys)


def test_redis_cut_off_holds_the_batch_and_catches_up_exactly(
        pipeline: Pipeline, connections: Connections,
        shared_redis: tuple[redis.Redis, str], dataset: list[dict[str, Any]]) -> None:
    client, prefix = shared_redis
    target = urlsplit(connections.redis_url)
    assert target.hostname is not None
    assert target.port is not None
    proxy = CuttableProxy(target.hostname, target.port)
    through_proxy = replace(connections, redis_url=f"redis://127.0.0.1:{proxy.port}/0")
    produce_rated(pipeline, dataset[:25])
    retries = metric("rating_sink_retries_total")

    sink = aggregates_sink(pipeline, through_proxy, prefix)
    try:
        sink.wait_until(
            lambda: stored_totals(client, prefix) == expected_totals(read_back(pipeline)),
            "the first records")
        while_up = all_keys(client, prefix)
        proxy.cut()
        produce_rated(pipeline, dataset[25:])
        produce_rated(pipeline, dataset[:5], commit=False)  # aborted: never counted
        sink.wait_until(lambda: metric("rating_sink_up") == 0.0
                        and metric("rating_sink_retries_total") > retries,
                        "the sink to notice the outage and retry")
        time.sleep(1.0)  # a few retries with backoff, still cut off
        assert metric("rating_sink_up") == 0.0
        assert all_keys(client, prefix) == while_up  # nothing half written
        proxy.restore()
        everything = read_back(pipeline)
        assert len(everything) == len(dataset)
        sink.wait_until(lambda: stored_totals(client, prefix) == expected_totals(everything),
                        "the catch-up")
        assert metric("rating_sink_up") == 1.0
        sink.wait_until(lambda: client.hgetall(f"{prefix}:aggregates:offsets")
                        == next_offsets(pipeline), "the offsets")
    finally:
        sink.stop()
        proxy.close()
    assert stored_totals(client, prefix) == expected_totals(dataset)


def test_redis_restarted_empty_is_rebuilt_from_the_topic(
        pipeline: Pipeline, connections: Connections, tmp_path: Path,
        dataset: list[dict[str, Any]]) -> None:
    server = PrivateRedis(tmp_path)
    server.start()
    own = replace(connections, redis_url=server.url)
    client = redis.Redis.from_url(server.url, decode_responses=True)
    prefix = "rating"
    produce_rated(pipeline, dataset[:30])
    sink = aggregates_sink(pipeline, own, prefix)
    try:
        sink.wait_until(lambda: stored_totals(client, prefix) == expected_totals(dataset[:30]),
                        "the first records")
        server.kill()
        produce_rated(pipeline, dataset[30:])
        sink.wait_until(lambda: metric("rating_sink_up") == 0.0, "the outage")
        server.start()  # same port, empty: totals and offsets are gone
        sink.wait_until(lambda: stored_totals(client, prefix) == expected_totals(dataset),
                        "the rebuild")
        assert client.hgetall(f"{prefix}:aggregates:offsets") == next_offsets(pipeline)
    finally:
        sink.stop()
        client.close()
        server.kill()


def test_the_rating_sink_aggregates_command(pipeline: Pipeline, tmp_path: Path,
                                            dataset: list[dict[str, Any]]) -> None:
    """`rating sink aggregates` as it runs in production: its own process, a Redis of its
    own (default prefix), its /metrics, /healthz and /readyz through a Redis outage,
    stopped with SIGTERM."""
    server = PrivateRedis(tmp_path)
    server.start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    first, during_outage = dataset[:-5], dataset[-5:]
    produce_rated(pipeline, first)
    log_path = tmp_path / "sink.log"
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "sink", "aggregates", "--metrics-port",
             str(port)], cwd=REPO_ROOT,
            env={**pipeline.env(), "REDIS_URL": server.url}, stdout=log,
            stderr=subprocess.STDOUT)

        def until(condition: Callable[[], bool], what: str) -> None:
            deadline = time.monotonic() + 90
            while not condition():
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, f"{what}:\n{log_path.read_text()}"
                time.sleep(0.3)

        def get(path: str) -> tuple[int, str]:
            return http_get(f"http://{LOOPBACK}:{port}{path}")

        def scraped(series: str) -> float | None:
            return sample(get("/metrics")[1], series)

        try:
            until(lambda: stored_totals(client, "rating") == expected_totals(first),
                  "the totals")
            written = 'rating_sink_records_total{result="written",sink="aggregates"}'
            until(lambda: scraped(written) == len(first), "the written count")
            assert scraped('rating_sink_up{sink="aggregates"}') == 1.0
            status, ready = get("/readyz")
            assert status == 200, ready
            assert json.loads(ready)["partitions"] == pipeline.settings.topics.rated.partitions
            assert get("/healthz")[0] == 200

            server.kill()  # the store goes away: not ready, but alive (restarting won't help)
            produce_rated(pipeline, during_outage)  # something to write
            until(lambda: get("/readyz")[0] == 503, "/readyz 503 in the outage")
            assert json.loads(get("/readyz")[1])["missing"] == ["store"]
            assert scraped('rating_sink_up{sink="aggregates"}') == 0.0
            assert get("/healthz")[0] == 200
            server.start()  # empty: rebuilt from the topic
            until(lambda: get("/readyz")[0] == 200, "/readyz 200 again")
            until(lambda: stored_totals(client, "rating") == expected_totals(dataset),
                  "the rebuild")
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0, log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
            client.close()
            server.kill()

