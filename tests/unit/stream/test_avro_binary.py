"""The hand-written Avro of the hot path gives exactly what fastavro gives, or steps aside.

Reading: for any bytes, ``read_usage_event`` is None or equals the reference
(``event_from_avro`` of fastavro's decode), and never returns an event the
reference rejects. Writing: ``write_rated_usage`` is fastavro's encoding of
``rated_to_avro`` byte for byte, or None.
"""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from processors.errors import EventRejected, ReasonCode
from processors.events import Origin, RatedUsage, TierCharge, UsageEvent
from stream.avro_binary import (
    _money,
    _timestamp,
    event_layout_ok,
    rated_layout_ok,
    read_usage_event,
    write_rated_usage,
)
from stream.codec import event_from_avro, event_to_avro, rated_to_avro, rated_to_bytes, read_event
from stream.serde import AvroDecoder, AvroEncoder, parsed_schema

EVENT_SCHEMA = parsed_schema("usage_event.avsc")
RATED_SCHEMA = parsed_schema("rated_usage.avsc")
HEADER = b"\x00\x00\x00\x00\x07"  # magic byte, schema id 7

# Short ASCII most of the time (the usual case), any text or long text sometimes.
texts = st.one_of(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
                  st.text(max_size=80), st.sampled_from(["", " ", "é", "x" * 64, "a/b/"]))
optional_texts = st.one_of(st.none(), texts)
numbers = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-10**6,
                max_value=10**6).map(str),
    st.sampled_from(["4", "4.0", "1E+3", "NaN", "Infinity", "abc", "", " 7 ", "1_000", "-0"]))
moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.just(UTC))


@st.composite
def attribute_records(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(["vcpu", "region", "size_gb", "memory_gb"]) | texts)
    shape = draw(st.sampled_from(["number", "text", "both", "neither"]))
    return {"name": name,
            "number": draw(numbers) if shape in ("number", "both") else None,
            "text": draw(texts) if shape in ("text", "both") else None}


@st.composite
def event_records(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "event_id": draw(texts), "event_time": draw(moments),
        "service_item_type": draw(texts), "service_item_id": draw(texts),
        "operation": draw(texts),
        "attributes": draw(st.lists(attribute_records(), max_size=5)),
        "requester": draw(texts), "home_ou": draw(texts), "account_id": draw(optional_texts),
        "provider": draw(optional_texts), "product": draw(optional_texts),
        "source": draw(texts),
    }


def _encode(record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, EVENT_SCHEMA, record)
    return buffer.getvalue()


def _reference(body: bytes) -> UsageEvent | EventRejected | Exception:
    """What the router did before the hand-written path: fastavro, then event_from_avro."""
    try:
        record = fastavro.schemaless_reader(io.BytesIO(body), EVENT_SCHEMA, EVENT_SCHEMA)
    except Exception as exc:  # undecodable
        return exc
    assert isinstance(record, dict)
    try:
        return event_from_avro(record)
    except EventRejected as rejection:
        return rejection


def _agrees(body: bytes) -> UsageEvent | None:
    fast = read_usage_event(HEADER + body, len(HEADER))
    if fast is not None:
        reference = _reference(body)
        assert isinstance(reference, UsageEvent), reference
        assert fast == reference
        assert fast.event_time.tzinfo is reference.event_time.tzinfo
        assert [type(v) for v in fast.attributes.values()] == \
            [type(v) for v in reference.attributes.values()]
    return fast


def test_the_schema_files_have_the_layouts_the_code_was_written_for() -> None:
    assert event_layout_ok()
    assert rated_layout_ok()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(event_records())
def test_reading_an_event_agrees_with_fastavro_and_event_from_avro(record: dict[str, Any]) -> None:
    _agrees(_encode(record))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(event_records(), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)),
                                 max_size=3), st.integers(0, 400))
def test_corrupted_bytes_are_read_as_fastavro_reads_them_or_left_to_it(
        record: dict[str, Any], flips: list[tuple[int, int]], cut: int) -> None:
    body = bytearray(_encode(record))
    for position, value in flips:
        if position < len(body):
            body[position] = value
    _agrees(bytes(body[:cut] if cut < len(body) else body))


@given(st.binary(max_size=200))
def test_random_bytes_never_read_as_an_event_the_reference_does_not_give(body: bytes) -> None:
    _agrees(body)


def _usual_event(**changes: Any) -> UsageEvent:
    event = UsageEvent(event_id="e-1", event_time=datetime(2026, 11, 3, 10, 30, 0, 123000, UTC),
                       service_item_type="VirtualMachine", service_item_id="vm-42",
                       operation="Create", attributes={"vcpu": Decimal(4), "region": "us-east"},
                       requester="alice", home_ou="eng/platform", source="provisioning")
    return replace(event, **changes)


@pytest.mark.parametrize("event", [
    _usual_event(),
    _usual_event(account_id="proj-apollo", provider="acme", product="acme-crm"),
    _usual_event(attributes={}),
    _usual_event(attributes={"size_gb": Decimal("0.5"), "tier": "ssd", "n": Decimal("1E+3")}),
])
def test_usual_events_take_the_hand_written_path(event: UsageEvent) -> None:
    assert _agrees(_encode(event_to_avro(event))) == event


@pytest.mark.parametrize(("record_change", "reason"), [
    ({"requester": " "}, "'requester' is empty"),
    ({"attributes": [{"name": "vcpu", "number": "4", "text": "four"}]}, "exactly one"),
    ({"attributes": [{"name": "vcpu", "number": "NaN", "text": None}]}, "not finite"),
    ({"attributes": [{"name": "vcpu", "number": "4", "text": None}] * 2}, "appears twice"),
])
def test_invalid_events_get_the_reference_rejection_through_read_event(
        record_change: dict[str, Any], reason: str) -> None:
    decoder = AvroDecoder(None, "usage_event.avsc")  # type: ignore[arg-type]
    decoder.remember(7, "usage_event.avsc")
    record = {**event_to_avro(_usual_event()), **record_change}
    with pytest.raises(EventRejected, match=reason) as caught:
        read_event(decoder, HEADER + _encode(record))
    assert caught.value.reason is ReasonCode.INVALID_EVENT


def test_undecodable_bytes_are_rejected_as_before() -> None:
    decoder = AvroDecoder(None, "usage_event.avsc")  # type: ignore[arg-type]
    decoder.remember(7, "usage_event.avsc")
    with pytest.raises(EventRejected) as caught:
        read_event(decoder, HEADER + b"\x02")
    assert caught.value.reason is ReasonCode.UNDECODABLE


def test_a_writer_schema_other_than_the_reader_takes_the_fastavro_path() -> None:
    class OtherSchema(AvroDecoder):
        def decode(self, data: bytes | None) -> dict[str, Any]:
            self.decoded = True
            return super().decode(data)

    decoder = OtherSchema(None, "usage_event.avsc")  # type: ignore[arg-type]
    decoder._writers[7] = fastavro.parse_schema({**EVENT_SCHEMA, "doc": "another version"})
    event = _usual_event()
    assert read_event(decoder, HEADER + _encode(event_to_avro(event))) == event
    assert decoder.decoded


# -- writing ----------------------------------------------------------------------------

decimals = st.decimals(allow_nan=False, allow_infinity=False)
money = st.one_of(decimals, st.decimals(min_value=-10**6, max_value=10**6, places=2,
                                        allow_nan=False),
                  st.sampled_from([Decimal("1E+2"), Decimal("-0"), Decimal("0E-10")]))
aware_moments = st.one_of(moments, st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))])))


@st.composite
def rated_records(draw: st.DrawFn) -> RatedUsage:
    names = st.dictionaries(texts, texts, max_size=3)
    event = UsageEvent(event_id=draw(texts), event_time=draw(aware_moments),
                       service_item_type=draw(texts), service_item_id=draw(texts),
                       operation=draw(texts), attributes={}, requester=draw(texts),
                       home_ou=draw(texts), source=draw(texts), account_id=draw(optional_texts),
                       provider=draw(optional_texts), product=draw(optional_texts))
    tiers = draw(st.lists(st.builds(TierCharge, money, st.one_of(st.none(), money), money,
                                    money, money), max_size=3))
    return RatedUsage(
        event=event, rated_at=draw(aware_moments), account_id=draw(texts),
        account_kind=draw(st.sampled_from(["tenant", "project"])),
        billing_period=draw(texts), fiscal_period=draw(texts), rate_group=draw(texts),
        rate_table=draw(texts), rate_code=draw(texts), unit_of_measure=draw(texts),
        pricing=draw(texts), rate=draw(money), quantity=draw(money), currency=draw(texts),
        net_amount=draw(money), markup_rate=draw(money), markup_amount=draw(money),
        gross_amount=draw(money), credit_applied=draw(money), credit_remaining=draw(money),
        charged_amount=draw(money), catalog_version=draw(texts),
        origin=Origin(draw(texts), draw(st.integers(-1, 2**31 - 1)),
                      draw(st.integers(-1, 2**62))),
        tiers=tuple(tiers), minimum_charge_applied=draw(st.booleans()), memo=draw(names),
        quota_note=draw(optional_texts))


def _fastavro_rated(rated: RatedUsage) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, RATED_SCHEMA, rated_to_avro(rated))
    return buffer.getvalue()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(rated_records())
def test_writing_a_rated_record_gives_fastavros_bytes(rated: RatedUsage) -> None:
    reference = _fastavro_rated(rated)
    usual = write_rated_usage(rated)
    assert usual is None or usual == reference
    encoder = AvroEncoder(9, "rated_usage.avsc")
    assert rated_to_bytes(encoder, rated) == encoder.encode(rated_to_avro(rated))


def test_the_usual_rated_record_takes_the_one_string_path() -> None:
    rated = _rated_example()
    assert write_rated_usage(rated) == _fastavro_rated(rated)
    tiered = replace(rated, tiers=(TierCharge(Decimal(0), Decimal(10), Decimal(4), Decimal("1.5"),
                                              Decimal("6.0")),
                                   TierCharge(Decimal(10), None, Decimal(1), Decimal(1),
                                              Decimal(1))),
                     memo={"memory_gb": "16"}, quota_note="NO_QUOTA")
    assert write_rated_usage(tiered) == _fastavro_rated(tiered)
    for unusual in (replace(rated, account_id="é"), replace(rated, rate_code="x" * 64)):
        assert write_rated_usage(unusual) is None
        encoder = AvroEncoder(9, "rated_usage.avsc")
        assert rated_to_bytes(encoder, unusual) == encoder.encode(rated_to_avro(unusual))


def test_a_naive_time_is_left_to_fastavro() -> None:
    rated = _rated_example()
    naive = replace(rated, rated_at=datetime(2026, 11, 3, 12, 0))
    assert write_rated_usage(naive) is None
    encoder = AvroEncoder(9, "rated_usage.avsc")
    assert rated_to_bytes(encoder, naive) == encoder.encode(rated_to_avro(naive))


def _rated_example() -> RatedUsage:
    return RatedUsage(
        event=_usual_event(), rated_at=datetime(2026, 11, 3, 12, 0, tzinfo=UTC),
        account_id="acct-eng", account_kind="tenant", billing_period="2026-11",
        fiscal_period="FY2027-H1", rate_group="standard", rate_table="vm", rate_code="VM-4",
        unit_of_measure="each", pricing="unit", rate=Decimal("0.045"), quantity=Decimal(4),
        currency="USD", net_amount=Decimal("0.18"), markup_rate=Decimal(0),
        markup_amount=Decimal("0.00"), gross_amount=Decimal("0.18"),
        credit_applied=Decimal("0.00"), credit_remaining=Decimal("0.00"),
        charged_amount=Decimal("0.18"), catalog_version="v1", origin=Origin("t", 1, 2))


@given(money)
@example(Decimal("1E+2"))
@example(Decimal("-0E-3"))
def test_money_text_is_format_f(value: Decimal) -> None:
    assert _money(value) == format(value, "f")


TIMESTAMP_SCHEMA = fastavro.parse_schema({"type": "record", "name": "T", "fields": [
    {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}}]})


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2300, 1, 1),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))])))
@example(datetime(1970, 1, 1, tzinfo=UTC))
@example(datetime(1970, 1, 1, 0, 0, 0, 999, tzinfo=UTC))
@example(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
@example(datetime(1970, 1, 1, 0, 0, 8, 192000, tzinfo=UTC))
def test_timestamps_are_written_as_fastavro_writes_them(moment: datetime) -> None:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, TIMESTAMP_SCHEMA, {"t": moment})
    assert _timestamp(moment) == buffer.getvalue()
