"""The registry goes away mid-batch: the batch aborts, state is re-restored, the batch is
redone when it comes back, and the result is exactly a crash-free run's."""

from __future__ import annotations

import io
import json
import struct
import time
from urllib.parse import urlsplit

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema

from processors.events import UsageEvent
from stream.clients import registry_client
from stream.codec import event_to_avro
from stream.serde import schema_text
from tests.integration.events import order_independent_mix
from tests.integration.faults import CuttableProxy
from tests.integration.harness import Pipeline
from tests.integration.test_crash_recovery import assert_exactly_as_without_crash

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def _evolved_encoder(pipeline: Pipeline) -> tuple[int, object]:
    """A compatible next version of the event schema (one optional field more: FULL),
    registered now: its id is new to the processor, which must ask the registry for it."""
    schema = json.loads(schema_text("usage_event.avsc"))
    schema["fields"].append({"name": "trace_id", "type": ["null", "string"], "default": None})
    subject = f"{pipeline.settings.topics.events.name}-value"
    schema_id = registry_client(pipeline.connections).register_schema(
        subject, Schema(json.dumps(schema), "AVRO"))
    return int(schema_id), fastavro.parse_schema(schema)


def _encode(schema_id: int, parsed: object, event: UsageEvent) -> bytes:
    buffer = io.BytesIO()
    buffer.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(buffer, parsed, {**event_to_avro(event), "trace_id": "t-1"})
    return buffer.getvalue()


def test_registry_outage_aborts_batches_and_the_retry_is_exact(pipeline: Pipeline) -> None:
    pipeline.load_catalog()
    registry = urlsplit(pipeline.connections.schema_registry_url)
    proxy = CuttableProxy(registry.hostname or "127.0.0.1", registry.port or 80)
    try:
        proxied = registry._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
        processor = pipeline.start_processor("0", env={"SCHEMA_REGISTRY_URL": proxied})
        events = order_independent_mix(6_000, seed=5)
        schema_id, parsed = _evolved_encoder(pipeline)
        while "running stages" not in processor.log_path.read_text():
            processor.check_alive()
            time.sleep(0.1)
        proxy.cut()
        with pipeline.publisher() as publisher:
            for index, event in enumerate(events):
                if index % 40 == 39:  # a new schema id inside most batches
                    publisher.publish_raw(event.service_item_id.encode(),
                                          _encode(schema_id, parsed, event))
                else:
                    publisher.publish(event)
        deadline = time.monotonic() + 60
        while "batch aborted, retrying" not in processor.log_path.read_text():
            processor.check_alive()
            assert time.monotonic() < deadline, processor.log_tail()
            time.sleep(0.2)
        assert not pipeline.caught_up()
        proxy.restore()
        pipeline.wait_caught_up(timeout_s=180)
    finally:
        proxy.close()
    assert_exactly_as_without_crash(pipeline, events)
