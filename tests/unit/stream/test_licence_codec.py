"""The subscriptions topic's records through the real Avro schema, and run reports."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Any

import fastavro
import pytest

from processors.errors import EventRejected, ReasonCode
from processors.events import Origin
from processors.licences.model import BillingRunRequest, LicenceAction, LicenceEvent
from stream.licence_codec import (
    SCHEMA_FILE,
    licence_to_avro,
    run_request_to_avro,
    subscription_from_avro,
)
from stream.run_reports import BadRunReport, RunReport
from stream.serde import parsed_schema

WHEN = datetime(2026, 9, 15, 8, 30, tzinfo=UTC)


def _through_avro(record: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    schema = parsed_schema(SCHEMA_FILE)
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, schema, schema)
    assert isinstance(decoded, dict)
    return decoded


def test_a_licence_change_round_trips() -> None:
    event = LicenceEvent(event_id="e-1", action=LicenceAction.TRANSFERRED, event_time=WHEN,
                         source="salesforce-admin", campus="boulder", record_number="LR-1",
                         user="bob@cu.edu", product="sf-sales-cloud",
                         effective_date=date(2026, 9, 15), previous_user="alice@cu.edu",
                         billing_target="SPD-11000101", unit_billing_target="U-42")
    assert subscription_from_avro(_through_avro(licence_to_avro(event))) == event


def test_a_billing_run_request_round_trips() -> None:
    request = BillingRunRequest("r-1", 2027, "true-up-january", WHEN, "rating-cli")
    assert subscription_from_avro(_through_avro(run_request_to_avro(request, "run:r-1"))) == (
        request)


def _licence(**changes: Any) -> dict[str, Any]:
    record = licence_to_avro(LicenceEvent(
        event_id="e-2", action=LicenceAction.PROVISIONED, event_time=WHEN, source="s",
        campus="boulder", record_number="LR-2", user="u", product="p",
        effective_date=date(2026, 9, 1)))
    record["licence"].update(changes.pop("licence", {}))
    record.update(changes)
    return record


@pytest.mark.parametrize(("record", "fragment"), [
    (_licence(licence={"campus": " "}), "'campus' is empty"),
    (_licence(licence={"record_number": "A|B"}), "must not contain '|'"),
    (_licence(event_id=""), "'event_id' is empty"),
    (_licence(billing_run={"request_id": "x", "fiscal_year": 2027, "run": "annual"}),
     "carries licence only"),
    (_licence(event_type="BILLING_RUN_REQUESTED"), "carries billing_run only"),
    (_licence(event_type="LICENCE_RENEWED"), "unknown event_type"),
    ({**run_request_to_avro(BillingRunRequest("r", 27, "annual", WHEN, "s"), "x")},
     "is not a year"),
])
def test_invalid_records_are_rejected_with_the_field(record: dict[str, Any],
                                                     fragment: str) -> None:
    with pytest.raises(EventRejected) as rejected:
        subscription_from_avro(record)
    assert rejected.value.reason is ReasonCode.INVALID_EVENT
    assert fragment in rejected.value.message


def test_a_run_report_round_trips_and_garbage_is_named() -> None:
    report = RunReport("r-1", 2027, "annual", Origin("licence.events", 3, 17), "v1", WHEN,
                       billed=({"event_id": "licence:FY2027:annual:boulder:LR-1",
                                "amount": "1500.00", "currency": "USD"},),
                       already_paid=2,
                       failed=({"event_id": "x", "reason": "NO_ACCOUNT", "message": "m"},))
    assert RunReport.decode(report.encode()) == report
    with pytest.raises(BadRunReport, match="not a billing-run report"):
        RunReport.decode(b'{"request_id": "r"}')
