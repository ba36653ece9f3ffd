"""Rated records as fastavro decodes them from usage.rated (hand-written values)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sinks.base import SinkRecord

BASE_TIME = datetime(2024, 5, 1, tzinfo=UTC)


def rated_value(n: int = 0, **overrides: Any) -> dict[str, Any]:
    """The n-th record of a small hand-made stream: 10.00 USD per unit x 2 = 20.00."""
    value: dict[str, Any] = {
        "event_id": f"ev-{n:05d}", "event_time": BASE_TIME + timedelta(minutes=n),
        "rated_at": BASE_TIME + timedelta(minutes=n, seconds=1),
        "service_item_type": "Storage", "service_item_id": f"disk-{n % 7}",
        "operation": "Create", "account_id": f"acct-{n % 3}", "account_kind": "tenant",
        "requester": "alice", "home_ou": "eng/platform", "provider": None, "product": None,
        "source": "provisioning-engine", "billing_period": "2024-05", "fiscal_period": "FY24",
        "rate_group": "standard", "rate_table": "storage", "rate_code": "DISK-GB",
        "unit_of_measure": "GB", "pricing": "unit", "rate": "10.00", "quantity": "2",
        "tiers": [], "minimum_charge_applied": False, "currency": "USD",
        "net_amount": "20.00", "markup_rate": "0", "markup_amount": "0.00",
        "gross_amount": "20.00", "credit_applied": "0.00", "credit_remaining": "0.00",
        "charged_amount": "20.00", "memo": {"company": "IBM"}, "catalog_version": "v1",
        "quota_note": None, "origin_topic": "usage.by-account", "origin_partition": n % 6,
        "origin_offset": n,
    }
    value.update(overrides)
    return value


def sink_record(n: int, partition: int = 0, offset: int | None = None,
                topic: str = "usage.rated", **overrides: Any) -> SinkRecord:
    return SinkRecord(topic=topic, partition=partition, offset=n if offset is None else offset,
                      value=rated_value(n, **overrides))
