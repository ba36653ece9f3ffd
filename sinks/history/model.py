"""The billing history's row, filter, page and store contract (SQLite and PostgreSQL).

One row per record of ``usage.rated`` (schemas/rated_usage.avsc): every field
of the record, plus where the row was read from (``rated_topic``,
``rated_partition``, ``rated_offset``: the fence that makes the sink
exactly-once in effect) alongside where the event came from (``origin_*``).

Ordering is stable and total: ``(event_time, event_id)`` ascending (event ids
are unique in the history: the rater's dedup makes them so, and licence
charges carry deterministic ids). Cursors are opaque strings naming the last
row of the previous page; a page after a cursor never repeats or skips a row
that was stored before the first page was read.

Readers (reports, the REST API) depend on :class:`BillingHistoryStore` only,
never on a backend.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from processors.errors import RatingError
from sinks.base import Sink


class HistoryError(RatingError):
    """A billing-history request is wrong (bad cursor, bad filter, unknown store URL)."""


class HistoryStoreUnavailable(RatingError):
    """The store cannot be reached or is busy right now: retry later (the sink does, with
    backoff; the API may answer 503). Not a HistoryError: the request itself was fine."""


@dataclass(frozen=True, slots=True)
class HistoryTier:
    tier_from: Decimal
    tier_to: Decimal | None
    quantity: Decimal
    rate: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One billing-history row; field names are those of the RatedUsage schema."""

    event_id: str
    event_time: datetime  # timezone-aware UTC
    rated_at: datetime
    service_item_type: str
    service_item_id: str
    operation: str
    account_id: str
    account_kind: str
    requester: str
    home_ou: str
    provider: str | None
    product: str | None
    source: str
    billing_period: str
    fiscal_period: str
    rate_group: str
    rate_table: str
    rate_code: str
    unit_of_measure: str
    pricing: str
    rate: Decimal
    quantity: Decimal
    currency: str
    net_amount: Decimal
    markup_rate: Decimal
    markup_amount: Decimal
    gross_amount: Decimal
    credit_applied: Decimal
    credit_remaining: Decimal
    charged_amount: Decimal
    catalog_version: str
    origin_topic: str
    origin_partition: int
    origin_offset: int
    rated_topic: str
    rated_partition: int
    rated_offset: int
    tiers: tuple[HistoryTier, ...] = ()
    minimum_charge_applied: bool = False
    memo: Mapping[str, str] = field(default_factory=dict)
    quota_note: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """Every field that is set must match exactly; ``None`` matches anything."""

    account_id: str | None = None
    billing_period: str | None = None  # YYYY-MM
    provider: str | None = None
    product: str | None = None
    service_item_type: str | None = None
    service_item_id: str | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class MonthUsage:
    """What an account used in a billing period, as far as the history knows: the month
    position the rater keeps in its state (tier accumulation and usage credit)."""

    rows: int  # history rows of the account and period
    quantity: Decimal  # summed quantity of those rows priced by the given rate table + code
    credit_applied: Decimal  # summed credit_applied of all those rows (the credit drawn)


@dataclass(frozen=True, slots=True)
class HistoryPage:
    rows: tuple[HistoryRow, ...]
    next_cursor: str | None  # None: this was the last page


def encode_cursor(row: HistoryRow) -> str:
    """Opaque, URL-safe: the sort key of the last row returned."""
    key = json.dumps([row.event_time.isoformat(), row.event_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The sort key a cursor names, its time in UTC; HistoryError for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        time_text, event_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        when = datetime.fromisoformat(time_text)
        if when.tzinfo is None or not isinstance(event_id, str):
            raise HistoryError(f"invalid cursor {cursor!r}")
        # Converted here: a time at the edge of the datetime range (0001-01-01T00:00+01:00)
        # has no UTC value, and the stores would only find out while building the query.
        when = when.astimezone(UTC)
    except (ValueError, TypeError, OverflowError) as exc:
        raise HistoryError(f"invalid cursor {cursor!r}: {exc}") from None
    return when, event_id


class BillingHistoryStore(Sink, Protocol):
    """A billing-history backend: the sink contract plus the reads serving needs."""

    def store_id(self) -> str:
        """This history's own id (kept in it): names the sink's consumer group."""
        ...

    def page(self, where: HistoryFilter, after: str | None, limit: int) -> HistoryPage:
        """Up to ``limit`` rows after the cursor, in ``(event_time, event_id)`` order."""
        ...

    def iter_rows(self, where: HistoryFilter) -> Iterator[HistoryRow]:
        """Every matching row in order, streamed (reports read whole periods)."""
        ...

    def count(self, where: HistoryFilter) -> int:
        ...

    def providers(self, billing_period: str) -> list[str | None]:
        """The providers of the period's rows, each once (None: the platform's own)."""
        ...

    def month_usage(self, account_id: str, billing_period: str, rate_table: str,
                    rate_code: str) -> MonthUsage:
        """The account's rows of the period counted and summed by the database in one
        query (no row is read out): ``quantity`` of the rows of ``rate_table`` +
        ``rate_code``, ``credit_applied`` of every row. Sums are exact decimals (as
        stored: ``0.10 + 0.20`` is ``0.30``); a period without rows is 0, 0, 0."""
        ...

    def close(self) -> None:
        ...


def json_safe(row: HistoryRow) -> dict[str, Any]:
    """The row as JSON-ready values: decimals and times as strings, exactly as stored."""
    out: dict[str, Any] = {}
    for name in HistoryRow.__slots__:
        value = getattr(row, name)
        if name == "tiers":
            value = [{k: (None if getattr(t, k) is None else str(getattr(t, k)))
                      for k in HistoryTier.__slots__} for t in value]
        elif name == "memo":
            value = dict(value)
        elif isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[name] = value
    return out
