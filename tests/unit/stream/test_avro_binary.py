"""The hand-written Avro of the hot path gives exactly what fastavro gives, or steps aside.

Reading: for any bytes, ``read_usage_event`` is None or equals the reference
(``event_from_avro`` of fastavro's decode), and never returns an event the
reference rejects. Writing: ``write_rated_usage`` is fastavro's encoding of
``rated_to_avro`` byte for byte, or None; ``write_rejected_usage`` is fastavro's
encoding of ``rejection_to_avro`` byte for byte, or None.
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
    _long_bytes,
    _money,
    _source_timestamp,
    _timestamp,
    event_layout_ok,
    rated_layout_ok,
    read_usage_event,
    rejected_layout_ok,
    write_rated_usage,
    write_rejected_usage,
)
from stream.codec import (
    event_from_avro,
    event_to_avro,
    rated_to_avro,
    rated_to_bytes,
    read_event,
    rejection_to_avro,
    rejection_to_bytes,
)
from stream.serde import AvroDecoder, AvroEncoder, parsed_schema

EVENT_SCHEMA = parsed_schema("usage_event.avsc")
RATED_SCHEMA = parsed_schema("rated_usage.avsc")
REJECTED_SCHEMA = parsed_schema("rejected_usage.avsc")
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
    assert rejected_layout_ok()


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
    ({"attributes": [{"name": "vcpu", "number": "1E+70", "text": None}]},
     r"'vcpu' is out of range: '1E\+70' \(at most 18 digits before the decimal point\)"),
    ({"attributes": [{"name": "gb", "number": "1000000000000000000", "text": None}]},
     "out of range"),
    ({"attributes": [{"name": "gb", "number": "1E-46", "text": None}]},
     r"'gb' is out of range: '1E-46' \(at most 18 digits after the decimal point\)"),
    ({"attributes": [{"name": "gb", "number": "1234E-20", "text": None}]}, "out of range"),
    ({"attributes": [{"name": "gb", "number": "0.0000000000000000001", "text": None}]},
     "out of range"),
    # A NUL cannot be stored by PostgreSQL's text type: the billing history would stop.
    ({"requester": "alice\x00"}, "field 'requester' contains a NUL character"),
    ({"account_id": "proj\x00x"}, "field 'account_id' contains a NUL character"),
    ({"attributes": [{"name": "os", "number": None, "text": "lin\x00ux"}]},
     "attribute 'os' contains a NUL character"),
    ({"attributes": [{"name": "o\x00s", "number": None, "text": "linux"}]},
     "contains a NUL character"),
])
def test_invalid_events_get_the_reference_rejection_through_read_event(
        record_change: dict[str, Any], reason: str) -> None:
    decoder = AvroDecoder(None, "usage_event.avsc")  # type: ignore[arg-type]
    decoder.remember(7, "usage_event.avsc")
    record = {**event_to_avro(_usual_event()), **record_change}
    with pytest.raises(EventRejected, match=reason) as caught:
        read_event(decoder, HEADER + _encode(record))
    assert caught.value.reason is ReasonCode.INVALID_EVENT


@pytest.mark.parametrize("text", ["-0", "-0.00", "-0E+3"])
def test_a_negative_zero_is_read_as_zero(text: str) -> None:
    decoder = AvroDecoder(None, "usage_event.avsc")  # type: ignore[arg-type]
    decoder.remember(7, "usage_event.avsc")
    record = {**event_to_avro(_usual_event()),
              "attributes": [{"name": "size_gb", "number": text, "text": None}]}
    size = read_event(decoder, HEADER + _encode(record)).attributes["size_gb"]
    assert isinstance(size, Decimal)
    assert size.is_zero()
    assert not size.is_signed()  # no "-0.00" on a rated record


@pytest.mark.parametrize("number", ["999999999999999999.5", "0.000000000000000001",
                                    "-.00000000000000001", "1E-18", "0.5"])
def test_numbers_at_the_bounds_take_the_hand_written_path(number: str) -> None:
    edge = _usual_event(attributes={"gb": Decimal(number)})
    assert _agrees(_encode(event_to_avro(edge))) == edge


def test_trailing_zeros_past_eighteen_decimals_are_read_as_the_reference_reads_them() -> None:
    decoder = AvroDecoder(None, "usage_event.avsc")  # type: ignore[arg-type]
    decoder.remember(7, "usage_event.avsc")
    record = {**event_to_avro(_usual_event()),
              "attributes": [{"name": "gb", "number": "1.5000000000000000000000", "text": None}]}
    assert read_event(decoder, HEADER + _encode(record)).attributes["gb"] == Decimal("1.5")


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


# -- the rejection envelope -----------------------------------------------------------------

# Any text: short ASCII, non-ASCII, empty, long (lengths of one, two and three varint bytes,
# around the 64 and 1024 of the writer's length table).
any_texts = st.one_of(
    texts, st.text(min_size=50, max_size=1500),
    st.sampled_from(["", "é" * 32, "日本語" * 700, "\x00", "x" * 63, "x" * 64, "x" * 1023,
                     "x" * 1024, "é" * 512, "😀" * 300]))
optional_bytes = st.one_of(st.none(), st.binary(max_size=300),
                           st.binary(min_size=1000, max_size=20_000),
                           st.sampled_from([b"", b"\x00", b"x" * 63, b"x" * 64, b"y" * 1024]))
source_timestamps = st.one_of(
    st.none(), st.integers(0, 2**41), st.integers(-(2**41), 0),
    st.integers(-(2**41) - 10**6, -(2**41)), st.integers(2**41, 2**41 + 10**6),
    # Where float rounding makes fastavro write another ms than the one given.
    st.integers(2**42, 2**44), st.integers(-(2**44), -(2**42)))
rejection_moments = st.one_of(
    aware_moments,
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2300, 1, 1),
                 timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))])),
    st.datetimes(min_value=datetime(1969, 12, 31), max_value=datetime(1970, 1, 2),
                 timezones=st.just(UTC)))


@st.composite
def rejections(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments of ``rejection_to_avro``."""
    return {
        "reason": draw(any_texts), "message": draw(any_texts), "stage": draw(any_texts),
        "origin": Origin(draw(any_texts),
                         draw(st.one_of(st.integers(0, 2**31 - 1), st.integers(-(2**31), 0),
                                        st.sampled_from([0, 63, 64, 2**31 - 1, -(2**31)]))),
                         draw(st.one_of(st.integers(0, 2**63 - 1),
                                        st.integers(-(2**63), 0),
                                        st.sampled_from([0, -1, 63, 64, 2**63 - 1,
                                                         -(2**63)])))),
        "key": draw(optional_bytes), "value": draw(optional_bytes),
        "event_id": draw(st.one_of(st.none(), any_texts)),
        "source_timestamp_ms": draw(source_timestamps),
        "details": draw(st.one_of(st.just({}), st.dictionaries(any_texts, any_texts,
                                                               min_size=1, max_size=5))),
        "rejected_at": draw(rejection_moments),
    }


def _fastavro_rejection(arguments: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, REJECTED_SCHEMA, rejection_to_avro(**arguments))
    return buffer.getvalue()


def _whole_millis(moment: datetime | None) -> datetime | None:
    """A datetime as timestamp-millis keeps it: the millisecond it falls in."""
    return None if moment is None else moment - timedelta(microseconds=moment.microsecond % 1000)


def _decodes_to_its_record(encoded: bytes, arguments: dict[str, Any]) -> None:
    decoded = fastavro.schemaless_reader(io.BytesIO(encoded[len(HEADER):]), REJECTED_SCHEMA,
                                         REJECTED_SCHEMA)
    expected = rejection_to_avro(**arguments)
    expected["rejected_at"] = _whole_millis(expected["rejected_at"])
    expected["source_timestamp"] = _whole_millis(expected["source_timestamp"])
    assert decoded == expected


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow,
                                                   HealthCheck.data_too_large])
@given(rejections())
@example({"reason": "QUOTA_EXCEEDED", "message": "", "stage": "", "origin": Origin("", 0, 0),
          "key": b"", "value": b"", "event_id": "", "source_timestamp_ms": 0, "details": {},
          "rejected_at": datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)})
@example({"reason": "é", "message": "x" * 1024, "stage": "quota",
          "origin": Origin("日本", 2**31 - 1, 2**63 - 1), "key": None, "value": None,
          "event_id": None, "source_timestamp_ms": None, "details": {"": "", "é": "x" * 64},
          "rejected_at": datetime(1900, 1, 1, 0, 0, 0, 1500, tzinfo=UTC)})
@example({"reason": "R", "message": "m", "stage": "s", "origin": Origin("t", -(2**31), -(2**63)),
          "key": b"k", "value": b"v" * 20_000, "event_id": "e",
          "source_timestamp_ms": 8605461865536,  # fastavro writes 8605461865535
          "details": {"a": "b"}, "rejected_at": datetime(2026, 11, 3, 12, 0, 0, 999, tzinfo=UTC)})
def test_writing_a_rejection_gives_fastavros_bytes(arguments: dict[str, Any]) -> None:
    body = write_rejected_usage(**arguments)
    assert body is not None  # every generated value is one the hand-written path takes
    assert body == _fastavro_rejection(arguments)
    encoder = AvroEncoder(7, "rejected_usage.avsc")
    encoded = rejection_to_bytes(encoder, **arguments)
    assert encoded == encoder.encode(rejection_to_avro(**arguments)) == HEADER + body
    _decodes_to_its_record(encoded, arguments)


def _quota_rejection(**changes: Any) -> dict[str, Any]:
    """What the quota stage dead-letters, about one event in eight."""
    return {
        "reason": "QUOTA_EXCEEDED",
        "message": "account acct-eng: quota q-vcpu-monthly (limit 1000 vCPU-hours) would be "
                   "exceeded",
        "stage": "quota", "origin": Origin("usage.by-account", 3, 1_234_567),
        "key": b"acct-eng", "value": bytes(range(180)), "event_id": "evt-000123456",
        "source_timestamp_ms": 1_793_262_600_123,
        "details": {"quota_id": "q-vcpu-monthly", "limit": "1000", "used": "998.5",
                    "requested": "4"},
        "rejected_at": datetime(2026, 11, 3, 10, 30, 0, 456000, tzinfo=UTC),
        **changes}


def test_a_quota_rejection_takes_the_hand_written_path_and_decodes_to_its_record() -> None:
    arguments = _quota_rejection()
    encoder = AvroEncoder(7, "rejected_usage.avsc")
    body = write_rejected_usage(**arguments)
    assert body is not None
    encoded = rejection_to_bytes(encoder, **arguments)
    assert encoded == encoder.encode(rejection_to_avro(**arguments)) == HEADER + body
    decoded = fastavro.schemaless_reader(io.BytesIO(body), REJECTED_SCHEMA, REJECTED_SCHEMA)
    assert decoded == rejection_to_avro(**arguments)  # its times are whole milliseconds


@pytest.mark.parametrize("changes", [
    {"rejected_at": datetime(2026, 11, 3, 12, 0)},  # naive: fastavro takes it as local time
    {"origin": Origin("t", 2**31, 5)},  # not an Avro int
    {"origin": Origin("t", 1, 2**63)},  # not an Avro long: fastavro raises
    {"key": bytearray(b"acct-eng")},  # compiled, a TypeError (the declared type), as before
    {"details": {"limit": 1000}},  # not a string: fastavro raises
    {"source_timestamp_ms": 2**60},  # no such datetime: rejection_to_avro raises
], ids=["naive", "partition", "offset", "bytearray", "int-detail", "year"])
def test_odd_rejections_are_left_to_fastavro(changes: dict[str, Any]) -> None:
    arguments = _quota_rejection(**changes)
    try:
        assert write_rejected_usage(**arguments) is None
    except TypeError:  # compiled code checks the declared types of the arguments first
        assert changes.keys() == {"key"}
    encoder = AvroEncoder(7, "rejected_usage.avsc")
    try:
        expected: bytes | Exception = encoder.encode(rejection_to_avro(**arguments))
    except Exception as exc:  # what the caller got before: the same again
        expected = exc
    if isinstance(expected, Exception):
        with pytest.raises(type(expected)):
            rejection_to_bytes(encoder, **arguments)
    else:
        assert rejection_to_bytes(encoder, **arguments) == expected


def test_another_schema_file_takes_the_fastavro_path() -> None:
    class Recording(AvroEncoder):
        def encode(self, record: Any) -> bytes:
            self.encoded = True
            return super().encode(record)

    encoder = Recording(7, "rejected_usage.avsc")
    encoder.file_name = "rejected_usage_v2.avsc"
    arguments = _quota_rejection()
    assert rejection_to_bytes(encoder, **arguments) == HEADER + _fastavro_rejection(arguments)
    assert encoder.encoded


SOURCE_TIMESTAMP_SCHEMA = fastavro.parse_schema({"type": "record", "name": "S", "fields": [
    {"name": "t", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]}]})


@given(st.one_of(st.integers(-(2**41) - 5, 2**41 + 5), st.integers(-(2**45), 2**45)))
@example(2**41)
@example(2**41 + 1)
@example(-(2**41))
@example(-(2**41) - 1)
@example(8605461865536)  # the first that fastavro writes as another millisecond
@example(253402300799999)  # the last millisecond of 9999: fastavro writes ...998
@example(-62135596800000)  # the first of year 1
@example(-1)
def test_a_source_timestamp_is_written_as_fastavro_writes_its_datetime(millis: int) -> None:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, SOURCE_TIMESTAMP_SCHEMA,
                               {"t": datetime.fromtimestamp(millis / 1000, UTC)})
    assert _source_timestamp(millis) == buffer.getvalue()


LONG_SCHEMA = fastavro.parse_schema({"type": "record", "name": "L", "fields": [
    {"name": "n", "type": "long"}]})


@given(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**20), 2**20)))
@example(63)
@example(64)
@example(-64)
@example(-65)
@example(8191)
@example(8192)
@example(2**63 - 1)
@example(-(2**63))
def test_longs_are_written_as_fastavro_writes_them(value: int) -> None:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, LONG_SCHEMA, {"n": value})
    assert _long_bytes(value) == buffer.getvalue()
