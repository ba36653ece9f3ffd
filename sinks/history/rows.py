"""A decoded ``usage.rated`` record (fastavro dict) as a :class:`HistoryRow`.

Pure: no Kafka, no SQL. Money and quantities arrive as decimal strings and
become ``Decimal`` without ever passing through a float; times arrive as
timezone-aware datetimes (timestamp-millis) and are kept in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sinks.history.model import HistoryError, HistoryRow, HistoryTier

DECIMAL_FIELDS = ("rate", "quantity", "net_amount", "markup_rate", "markup_amount",
                  "gross_amount", "credit_applied", "credit_remaining", "charged_amount")
TEXT_FIELDS = ("event_id", "service_item_type", "service_item_id", "operation", "account_id",
               "account_kind", "requester", "home_ou", "source", "billing_period",
               "fiscal_period", "rate_group", "rate_table", "rate_code", "unit_of_measure",
               "pricing", "currency", "catalog_version", "origin_topic")


def row_from_rated(value: Mapping[str, Any], topic: str, partition: int,
                   offset: int) -> HistoryRow:
    """The history row of one rated record read at ``topic``/``partition``/``offset``.

    Raises HistoryError naming the position when the record is not a RatedUsage
    (a missing field, a number that is not a decimal string).
    """
    where = f"{topic}[{partition}]@{offset}"
    try:
        fields: dict[str, Any] = {name: str(value[name]) for name in TEXT_FIELDS}
        fields.update({name: _decimal(value[name]) for name in DECIMAL_FIELDS})
        return HistoryRow(
            **fields,
            event_time=_utc(value["event_time"]),
            rated_at=_utc(value["rated_at"]),
            provider=_optional_text(value.get("provider")),
            product=_optional_text(value.get("product")),
            origin_partition=int(value["origin_partition"]),
            origin_offset=int(value["origin_offset"]),
            rated_topic=topic,
            rated_partition=partition,
            rated_offset=offset,
            tiers=tuple(_tier(t) for t in value.get("tiers") or ()),
            minimum_charge_applied=bool(value.get("minimum_charge_applied", False)),
            memo={str(k): str(v) for k, v in (value.get("memo") or {}).items()},
            quota_note=_optional_text(value.get("quota_note")),
        )
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise HistoryError(f"{where}: not a RatedUsage record: {type(exc).__name__}: "
                           f"{exc}") from None


def _tier(raw: Mapping[str, Any]) -> HistoryTier:
    upper = raw.get("tier_to")
    return HistoryTier(tier_from=_decimal(raw["tier_from"]),
                       tier_to=None if upper is None else _decimal(upper),
                       quantity=_decimal(raw["quantity"]), rate=_decimal(raw["rate"]),
                       amount=_decimal(raw["amount"]))


def _decimal(raw: Any) -> Decimal:
    if not isinstance(raw, str):  # a float here would already have lost the exact amount
        raise TypeError(f"expected a decimal string, got {type(raw).__name__} {raw!r}")
    number = Decimal(raw)
    if not number.is_finite():
        raise ValueError(f"not a finite decimal: {raw!r}")
    return number


def _utc(raw: Any) -> datetime:
    if not isinstance(raw, datetime) or raw.tzinfo is None:
        raise TypeError(f"expected a timezone-aware datetime, got {raw!r}")
    return raw.astimezone(UTC)


def _optional_text(raw: Any) -> str | None:
    return None if raw is None else str(raw)
