"""Avro dicts <-> domain records. Validation of the wire shape happens here, once.

``read_event``, ``rated_to_bytes`` and ``rejection_to_bytes`` are the hot path's
way in and out: they go through stream/avro_binary.py when they can (same
results, a fraction of the cost) and through fastavro plus the dict functions
below otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from processors.errors import EventRejected, ReasonCode
from processors.events import AttributeValue, Origin, RatedUsage, UsageEvent, parse_number
from processors.quota import QuotaAlert
from stream.avro_binary import (
    event_layout_ok,
    rated_layout_ok,
    read_usage_event,
    rejected_layout_ok,
    write_rated_usage,
    write_rejected_usage,
)
from stream.serde import HEADER_SIZE, AvroDecoder, AvroEncoder, SerdeError

EVENT_SCHEMA = "usage_event.avsc"
RATED_SCHEMA = "rated_usage.avsc"
REJECTED_SCHEMA = "rejected_usage.avsc"
REQUIRED_TEXT = ("event_id", "service_item_type", "service_item_id", "operation", "requester",
                 "home_ou", "source")
OPTIONAL_TEXT = ("account_id", "provider", "product")
# No text may hold a NUL character: PostgreSQL's text type cannot store one, and the
# billing history would stop at that record (sinks/history/postgres.py).
NUL = "\x00"
EVENT_ID_DETAIL = "event_id"  # the id of an event decoded but refused, in its rejection


def event_from_avro(record: Mapping[str, Any]) -> UsageEvent:
    """A validated UsageEvent, or EventRejected(INVALID_EVENT) naming the field."""
    event_id = str(record.get("event_id") or "")
    for name in REQUIRED_TEXT:
        if not str(record.get(name) or "").strip():
            raise EventRejected(ReasonCode.INVALID_EVENT,
                                f"event {event_id or '<no id>'}: field {name!r} is empty",
                                {"field": name})
    for name in (*REQUIRED_TEXT, *OPTIONAL_TEXT):
        if NUL in str(record.get(name) or ""):
            raise EventRejected(ReasonCode.INVALID_EVENT,
                                f"event {event_id!r}: field {name!r} contains a NUL character",
                                {"field": name})
    event_time = record["event_time"]
    if not isinstance(event_time, datetime):
        raise EventRejected(ReasonCode.INVALID_EVENT, f"event {event_id}: bad event_time")
    attributes: dict[str, AttributeValue] = {}
    for attribute in record.get("attributes", []):
        name = attribute["name"]
        number, text = attribute.get("number"), attribute.get("text")
        if name in attributes:
            raise EventRejected(ReasonCode.INVALID_EVENT,
                                f"event {event_id}: attribute {name!r} appears twice",
                                {"attribute": name})
        if NUL in name or (text is not None and NUL in text):
            raise EventRejected(ReasonCode.INVALID_EVENT,
                                f"event {event_id!r}: attribute {name!r} contains a NUL "
                                "character", {"attribute": name})
        if (number is None) == (text is None):
            raise EventRejected(ReasonCode.INVALID_EVENT,
                                f"event {event_id}: attribute {name!r} must have exactly one of "
                                "number or text", {"attribute": name})
        attributes[name] = (parse_number(number, event_id=event_id, attribute=name)
                            if number is not None else str(text))
    return UsageEvent(
        event_id=event_id,
        event_time=event_time.astimezone(UTC),
        service_item_type=record["service_item_type"],
        service_item_id=record["service_item_id"],
        operation=record["operation"],
        attributes=attributes,
        requester=record["requester"],
        home_ou=record["home_ou"].strip("/"),
        source=record["source"],
        account_id=record.get("account_id") or None,
        provider=record.get("provider") or None,
        product=record.get("product") or None,
    )


def read_event(decoder: AvroDecoder, data: bytes | None) -> UsageEvent:
    """A validated UsageEvent from a record's bytes: ``event_from_avro(decoder.decode(data))``,
    with UNDECODABLE for bytes that are not a record; EventRejected like event_from_avro."""
    if (data is not None and decoder.reader_file == EVENT_SCHEMA and event_layout_ok()
            and data[:HEADER_SIZE] in decoder.reader_headers):
        event = read_usage_event(data, HEADER_SIZE)
        if event is not None:
            return event
    try:
        record = decoder.decode(data)
    except SerdeError as exc:
        raise EventRejected(ReasonCode.UNDECODABLE, str(exc)) from None
    try:
        return event_from_avro(record)
    except EventRejected as rejection:
        # Decoded, but refused: its dead letter names the event id (rejected_usage.avsc:
        # null only when the bytes could not be decoded), for the publisher to find it.
        event_id = record.get("event_id")
        if (isinstance(event_id, str) and event_id.strip() and NUL not in event_id
                and EVENT_ID_DETAIL not in rejection.details):
            raise EventRejected(rejection.reason, rejection.message,
                                {**rejection.details, EVENT_ID_DETAIL: event_id}) from None
        raise


def rated_to_bytes(encoder: AvroEncoder, rated: RatedUsage) -> bytes:
    """``encoder.encode(rated_to_avro(rated))``, byte for byte."""
    if encoder.file_name != RATED_SCHEMA or not rated_layout_ok():
        return encoder.encode(rated_to_avro(rated))
    body = write_rated_usage(rated)  # the usual record: short ASCII strings
    return encoder.encode(rated_to_avro(rated)) if body is None else encoder.header + body


def rejection_to_bytes(encoder: AvroEncoder, *, reason: str, message: str, stage: str,
                       origin: Origin, key: bytes | None, value: bytes | None,
                       event_id: str | None, source_timestamp_ms: int | None,
                       details: Mapping[str, str], rejected_at: datetime) -> bytes:
    """``encoder.encode(rejection_to_avro(...))`` of the same arguments, byte for byte."""
    body = None
    if encoder.file_name == REJECTED_SCHEMA and rejected_layout_ok():
        body = write_rejected_usage(
            reason=reason, message=message, stage=stage, origin=origin, key=key, value=value,
            event_id=event_id, source_timestamp_ms=source_timestamp_ms, details=details,
            rejected_at=rejected_at)
    if body is not None:
        return encoder.header + body
    return encoder.encode(rejection_to_avro(
        reason=reason, message=message, stage=stage, origin=origin, key=key, value=value,
        event_id=event_id, source_timestamp_ms=source_timestamp_ms, details=details,
        rejected_at=rejected_at))


def event_to_avro(event: UsageEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "event_time": event.event_time,
        "service_item_type": event.service_item_type,
        "service_item_id": event.service_item_id,
        "operation": event.operation,
        "attributes": [_attribute_to_avro(name, value)
                       for name, value in event.attributes.items()],
        "requester": event.requester,
        "home_ou": event.home_ou,
        "account_id": event.account_id,
        "provider": event.provider,
        "product": event.product,
        "source": event.source,
    }


def _attribute_to_avro(name: str, value: AttributeValue) -> dict[str, Any]:
    if isinstance(value, Decimal):
        return {"name": name, "number": format(value, "f"), "text": None}
    return {"name": name, "number": None, "text": value}


def _money(value: Decimal) -> str:
    return format(value, "f")


def rated_to_avro(rated: RatedUsage) -> dict[str, Any]:
    event = rated.event
    return {
        "event_id": event.event_id,
        "event_time": event.event_time,
        "rated_at": rated.rated_at,
        "service_item_type": event.service_item_type,
        "service_item_id": event.service_item_id,
        "operation": event.operation,
        "account_id": rated.account_id,
        "account_kind": rated.account_kind,
        "requester": event.requester,
        "home_ou": event.home_ou,
        "provider": event.provider,
        "product": event.product,
        "source": event.source,
        "billing_period": rated.billing_period,
        "fiscal_period": rated.fiscal_period,
        "rate_group": rated.rate_group,
        "rate_table": rated.rate_table,
        "rate_code": rated.rate_code,
        "unit_of_measure": rated.unit_of_measure,
        "pricing": rated.pricing,
        "rate": _money(rated.rate),
        "quantity": _money(rated.quantity),
        "tiers": [{"tier_from": _money(t.tier_from),
                   "tier_to": None if t.tier_to is None else _money(t.tier_to),
                   "quantity": _money(t.quantity), "rate": _money(t.rate),
                   "amount": _money(t.amount)} for t in rated.tiers],
        "minimum_charge_applied": rated.minimum_charge_applied,
        "currency": rated.currency,
        "net_amount": _money(rated.net_amount),
        "markup_rate": _money(rated.markup_rate),
        "markup_amount": _money(rated.markup_amount),
        "gross_amount": _money(rated.gross_amount),
        "credit_applied": _money(rated.credit_applied),
        "credit_remaining": _money(rated.credit_remaining),
        "charged_amount": _money(rated.charged_amount),
        "memo": dict(rated.memo),
        "catalog_version": rated.catalog_version,
        "quota_note": rated.quota_note,
        "origin_topic": rated.origin.topic,
        "origin_partition": rated.origin.partition,
        "origin_offset": rated.origin.offset,
    }


def alert_to_avro(alert: QuotaAlert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "account_id": alert.account_id,
        "agreement_id": alert.agreement_id,
        "quota_id": alert.quota_id,
        "threshold_percent": alert.threshold_percent,
        "action": alert.action,
        "used": _money(alert.used),
        "limit": _money(alert.limit),
        "event_id": alert.event_id,
        "event_time": alert.event_time,
        "raised_at": alert.raised_at,
    }


def rejection_to_avro(*, reason: str, message: str, stage: str, origin: Origin,
                      key: bytes | None, value: bytes | None, event_id: str | None,
                      source_timestamp_ms: int | None, details: Mapping[str, str],
                      rejected_at: datetime) -> dict[str, Any]:
    return {
        "reason_code": reason,
        "message": message,
        "event_id": event_id,
        "stage": stage,
        "source_topic": origin.topic,
        "source_partition": origin.partition,
        "source_offset": origin.offset,
        "source_timestamp": (None if source_timestamp_ms is None
                             else datetime.fromtimestamp(source_timestamp_ms / 1000, UTC)),
        "original_key": key,
        "original_value": value,
        "details": dict(details),
        "rejected_at": rejected_at,
    }
