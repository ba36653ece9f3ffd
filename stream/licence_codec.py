"""Avro dicts of the subscriptions topic <-> licence domain records, validated here, once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from processors.errors import EventRejected, ReasonCode
from processors.licences.model import (
    BillingRunRequest,
    LicenceAction,
    LicenceEvent,
    SubscriptionRecord,
)

SCHEMA_FILE = "subscription_event.avsc"
BILLING_RUN_REQUESTED = "BILLING_RUN_REQUESTED"
# Campus and record number end up inside state keys joined by "|".
_KEY_FIELDS = ("campus", "record_number")
_LICENCE_TEXT = ("campus", "record_number", "user", "product")


def subscription_from_avro(record: Mapping[str, Any]) -> SubscriptionRecord:
    """A validated licence event or billing-run request, or EventRejected(INVALID_EVENT)."""
    event_id = str(record.get("event_id") or "").strip()
    kind = str(record.get("event_type") or "")
    if not event_id:
        raise _invalid("<no id>", "field 'event_id' is empty")
    when = record.get("event_time")
    if not isinstance(when, datetime):
        raise _invalid(event_id, "bad event_time")
    licence, run = record.get("licence"), record.get("billing_run")
    if kind == BILLING_RUN_REQUESTED:
        if run is None or licence is not None:
            raise _invalid(event_id, "a BILLING_RUN_REQUESTED record carries billing_run only")
        return _run_request(event_id, when, str(record.get("source") or ""), run)
    if kind not in {action.value for action in LicenceAction}:
        raise _invalid(event_id, f"unknown event_type {kind!r}")
    if licence is None or run is not None:
        raise _invalid(event_id, f"a {kind} record carries licence only")
    return _licence_event(event_id, LicenceAction(kind), when,
                          str(record.get("source") or ""), licence)


def _licence_event(event_id: str, action: LicenceAction, when: datetime, source: str,
                   raw: Mapping[str, Any]) -> LicenceEvent:
    for name in _LICENCE_TEXT:
        if not str(raw.get(name) or "").strip():
            raise _invalid(event_id, f"licence field {name!r} is empty", field=name)
    for name in _KEY_FIELDS:
        if "|" in raw[name]:
            raise _invalid(event_id, f"licence field {name!r} must not contain '|'", field=name)
    effective = raw.get("effective_date")
    if not isinstance(effective, date) or isinstance(effective, datetime):
        raise _invalid(event_id, "bad effective_date", field="effective_date")
    return LicenceEvent(
        event_id=event_id, action=action, event_time=when.astimezone(UTC), source=source,
        campus=raw["campus"].strip(), record_number=raw["record_number"].strip(),
        user=raw["user"].strip(), product=raw["product"].strip(), effective_date=effective,
        previous_user=_optional(raw.get("previous_user")),
        billing_target=_optional(raw.get("billing_target")),
        unit_billing_target=_optional(raw.get("unit_billing_target")))


def _run_request(event_id: str, when: datetime, source: str,
                 raw: Mapping[str, Any]) -> BillingRunRequest:
    request_id = str(raw.get("request_id") or "").strip()
    run = str(raw.get("run") or "").strip()
    year = raw.get("fiscal_year")
    if not request_id or not run:
        raise _invalid(event_id, "billing_run needs request_id and run")
    if not isinstance(year, int) or not 1900 < year < 10000:
        raise _invalid(event_id, f"billing_run fiscal_year {year!r} is not a year")
    return BillingRunRequest(request_id=request_id, fiscal_year=year, run=run,
                             event_time=when.astimezone(UTC), source=source)


def licence_to_avro(event: LicenceEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "event_type": str(event.action),
        "event_time": event.event_time,
        "source": event.source,
        "licence": {
            "campus": event.campus,
            "record_number": event.record_number,
            "user": event.user,
            "product": event.product,
            "effective_date": event.effective_date,
            "previous_user": event.previous_user,
            "billing_target": event.billing_target,
            "unit_billing_target": event.unit_billing_target,
        },
        "billing_run": None,
    }


def run_request_to_avro(request: BillingRunRequest, event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": BILLING_RUN_REQUESTED,
        "event_time": request.event_time,
        "source": request.source,
        "licence": None,
        "billing_run": {"request_id": request.request_id, "fiscal_year": request.fiscal_year,
                        "run": request.run},
    }


def _optional(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _invalid(event_id: str, message: str, **details: str) -> EventRejected:
    return EventRejected(ReasonCode.INVALID_EVENT, f"event {event_id}: {message}", details)
