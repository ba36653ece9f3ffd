"""Billing-run reports on licence.runs: what one partition did with one billing-run request.

JSON, keyed by the request id, written by the subscription stage in the same
transaction as the run's charges, so a report that is visible (read_committed)
means its charges are on usage.rated. ``rating billing-run`` waits for one
report per partition of the subscriptions topic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from processors.errors import RatingError
from processors.events import Origin
from processors.licences.billing import RunOutcome
from processors.licences.model import BillingRunRequest


class BadRunReport(RatingError):
    """A record on licence.runs that is not a run report."""


@dataclass(frozen=True)
class RunReport:
    """``billed``: the charges this request wrote (empty on a re-run); ``already_paid``:
    covered licences an earlier run had billed; ``failed``: licences the engine could not
    price (dead-lettered, left unpaid); ``error``: the request itself was refused."""

    request_id: str
    fiscal_year: int
    run: str
    origin: Origin
    catalog_version: str
    processed_at: datetime
    billed: tuple[dict[str, str], ...] = ()
    already_paid: int = 0
    failed: tuple[dict[str, str], ...] = ()
    error: str | None = None

    @classmethod
    def of(cls, request: BillingRunRequest, origin: Origin, version: str, outcome: RunOutcome,
           now: datetime) -> RunReport:
        billed = tuple({"event_id": r.event.event_id, "campus": r.memo.get("campus", ""),
                        "record_number": r.event.service_item_id, "user": r.event.requester,
                        "amount": format(r.charged_amount, "f"), "currency": r.currency}
                       for r in outcome.charges)
        failed = tuple({"event_id": f.event_id, "campus": f.campus,
                        "record_number": f.record_number, "reason": str(f.rejection.reason),
                        "message": f.rejection.message} for f in outcome.failures)
        return cls(request.request_id, request.fiscal_year, request.run, origin, version, now,
                   billed, outcome.already_paid, failed)

    @classmethod
    def refused(cls, request: BillingRunRequest, origin: Origin, version: str, error: str,
                now: datetime) -> RunReport:
        return cls(request.request_id, request.fiscal_year, request.run, origin, version, now,
                   error=error)

    def encode(self) -> bytes:
        return json.dumps({
            "request_id": self.request_id, "fiscal_year": self.fiscal_year, "run": self.run,
            "topic": self.origin.topic, "partition": self.origin.partition,
            "offset": self.origin.offset, "catalog_version": self.catalog_version,
            "processed_at": self.processed_at.isoformat(), "billed": list(self.billed),
            "already_paid": self.already_paid, "failed": list(self.failed),
            "error": self.error}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, value: bytes | None) -> RunReport:
        try:
            raw: dict[str, Any] = json.loads(value or b"")
            return cls(
                request_id=str(raw["request_id"]), fiscal_year=int(raw["fiscal_year"]),
                run=str(raw["run"]),
                origin=Origin(str(raw["topic"]), int(raw["partition"]), int(raw["offset"])),
                catalog_version=str(raw["catalog_version"]),
                processed_at=datetime.fromisoformat(raw["processed_at"]),
                billed=tuple({str(k): str(v) for k, v in item.items()} for item in raw["billed"]),
                already_paid=int(raw["already_paid"]),
                failed=tuple({str(k): str(v) for k, v in item.items()} for item in raw["failed"]),
                error=raw.get("error"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadRunReport(f"not a billing-run report: {exc}") from None
