"""Wire shape <-> domain: round trips through the real Avro schema, and validation errors."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from processors.errors import EventRejected, ReasonCode
from stream.codec import event_from_avro, event_to_avro
from stream.publisher import PublishError, new_event, validate_event
from stream.serde import parsed_schema


def _through_avro(record: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    schema = parsed_schema("usage_event.avsc")
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, schema, schema)
    assert isinstance(decoded, dict)
    return decoded


def _vm_event(**overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "service_item_type": "VirtualMachine", "service_item_id": "vm-42",
        "operation": "Create", "attributes": {"vcpu": 4, "memory_gb": Decimal("15.5"),
                                              "region": "us-east"},
        "requester": "alice", "home_ou": "eng/platform", "source": "provisioning-engine",
        "event_time": datetime(2026, 11, 3, 10, 30, tzinfo=UTC)}
    fields.update(overrides)
    return new_event(**fields)


def test_event_round_trips_through_the_avro_schema_exactly() -> None:
    event = _vm_event(account_id="proj-apollo", provider="acme", product="acme-crm")
    decoded = event_from_avro(_through_avro(event_to_avro(event)))
    assert decoded == event
    assert decoded.attributes["memory_gb"] == Decimal("15.5")
    assert decoded.attributes["region"] == "us-east"


def test_numbers_travel_as_decimal_strings_not_floats() -> None:
    record = event_to_avro(_vm_event(attributes={"size_gb": Decimal("0.1")}))
    assert record["attributes"] == [{"name": "size_gb", "number": "0.1", "text": None}]


def test_float_attributes_are_refused_by_the_publisher() -> None:
    with pytest.raises(PublishError, match="size_gb"):
        _vm_event(attributes={"size_gb": 0.1})


def test_naive_event_time_is_refused() -> None:
    with pytest.raises(PublishError, match="timezone"):
        _vm_event(event_time=datetime(2026, 11, 3, 10, 30))


def test_empty_required_field_is_named() -> None:
    with pytest.raises(PublishError, match="'requester' is empty"):
        validate_event(_vm_event(requester=" "))


@pytest.mark.parametrize(("attribute", "match"), [
    ({"name": "vcpu", "number": "4", "text": "four"}, "exactly one of number or text"),
    ({"name": "vcpu", "number": None, "text": None}, "exactly one of number or text"),
    ({"name": "vcpu", "number": "4,0", "text": None}, "not a decimal number"),
    ({"name": "vcpu", "number": "NaN", "text": None}, "not finite"),
])
def test_bad_attributes_are_invalid_events_naming_the_attribute(
        attribute: dict[str, Any], match: str) -> None:
    record = event_to_avro(_vm_event())
    record["attributes"] = [attribute]
    with pytest.raises(EventRejected, match=match) as caught:
        event_from_avro(record)
    assert caught.value.reason is ReasonCode.INVALID_EVENT
    assert caught.value.details == {"attribute": "vcpu"}


def test_duplicate_attribute_is_rejected() -> None:
    record = event_to_avro(_vm_event(attributes={"vcpu": 4}))
    record["attributes"] = record["attributes"] * 2
    with pytest.raises(EventRejected, match="appears twice"):
        event_from_avro(record)


def test_home_ou_slashes_are_normalised() -> None:
    record = event_to_avro(_vm_event())
    record["home_ou"] = "/eng/platform/"
    assert event_from_avro(record).home_ou == "eng/platform"
