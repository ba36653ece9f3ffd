"""The API's pydantic models repeat the billing-history row for the OpenAPI document:
these tests keep the two in step (same fields, same order, matching JSON types)."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from api.models import HistoryItem, HistoryTierOut
from sinks.history.model import HistoryRow, HistoryTier

# How a row field's Python type is written in JSON by the API.
JSON_TYPE: dict[Any, Any] = {
    Decimal: str,  # decimal strings, never floats
    Decimal | None: str | None,
    datetime: str,  # ISO 8601, UTC
    tuple[HistoryTier, ...]: list[HistoryTierOut],
    Mapping[str, str]: dict[str, str],
}


def _pairs(row_type: type, model: type[BaseModel]) -> tuple[list[Any], list[Any]]:
    hints = typing.get_type_hints(row_type)
    expected = [(f.name, JSON_TYPE.get(hints[f.name], hints[f.name]))
                for f in dataclasses.fields(row_type)]
    actual = [(name, info.annotation) for name, info in model.model_fields.items()]
    return expected, actual


def test_history_item_has_every_history_row_field_in_order_with_its_json_type() -> None:
    expected, actual = _pairs(HistoryRow, HistoryItem)
    assert actual == expected


def test_history_tier_out_follows_history_tier() -> None:
    expected, actual = _pairs(HistoryTier, HistoryTierOut)
    assert actual == expected
