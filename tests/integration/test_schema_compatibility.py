"""The registry guards the event schemas other services write: FULL compatibility.

With BACKWARD alone, a platform service could register a version of UsageEvent without
``source`` (no default): the registry accepted it, and every event written with it was an
UNDECODABLE dead letter, since the processor's reader needs the field.
"""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from stream.clients import registry_client
from stream.serde import schema_text
from tests.integration.harness import Pipeline

pytestmark = pytest.mark.integration


def _variant(change: str) -> str:
    schema = json.loads(schema_text("usage_event.avsc"))
    if change == "drop source":
        schema["fields"] = [f for f in schema["fields"] if f["name"] != "source"]
    elif change == "add optional":
        schema["fields"].append({"name": "trace_id", "type": ["null", "string"],
                                 "default": None})
    elif change == "add required":
        schema["fields"].append({"name": "region", "type": "string"})
    return json.dumps(schema)


@pytest.mark.parametrize(("change", "accepted"), [
    ("add optional", True),  # readable both ways: the next version a service may publish
    ("drop source", False),  # the processor could not read its events
    ("add required", False),  # the processor's next version could not read older events
])
def test_the_event_subject_accepts_only_versions_the_processor_can_read(
        pipeline: Pipeline, change: str, accepted: bool) -> None:
    subject = f"{pipeline.settings.topics.events.name}-value"  # registered by the pipeline
    client = registry_client(pipeline.connections)
    assert client.get_compatibility(subject) == "FULL"
    if accepted:
        assert client.register_schema(subject, Schema(_variant(change), "AVRO")) > 0
    else:
        with pytest.raises(SchemaRegistryError) as refused:
            client.register_schema(subject, Schema(_variant(change), "AVRO"))
        assert refused.value.http_status_code == 409


def test_the_topics_the_pipeline_writes_keep_backward(pipeline: Pipeline) -> None:
    client = registry_client(pipeline.connections)
    subject = f"{pipeline.settings.topics.rated.name}-value"
    assert client.get_compatibility(subject) == "BACKWARD"
