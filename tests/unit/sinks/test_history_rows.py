"""A decoded rated record becomes a history row without losing a digit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from sinks.history.model import HistoryError, HistoryTier
from sinks.history.rows import row_from_rated
from tests.unit.sinks.history_records import rated_value


def test_every_field_is_carried_exactly() -> None:
    value = rated_value(3, provider="acme", product="acme-db", pricing="graduated",
                        rate="0.0125", quantity="1500.5", net_amount="18.76",
                        markup_rate="0.15", markup_amount="2.81", gross_amount="21.57",
                        credit_applied="1.57", credit_remaining="0.00", charged_amount="20.00",
                        tiers=[{"tier_from": "0", "tier_to": "1000", "quantity": "1000",
                                "rate": "0.0125", "amount": "12.5000"},
                               {"tier_from": "1000", "tier_to": None, "quantity": "500.5",
                                "rate": "0.0125", "amount": "6.25625"}],
                        quota_note="NO_QUOTA", minimum_charge_applied=True)
    row = row_from_rated(value, "usage.rated", 4, 77)
    assert (row.rated_topic, row.rated_partition, row.rated_offset) == ("usage.rated", 4, 77)
    assert (row.provider, row.product, row.quota_note) == ("acme", "acme-db", "NO_QUOTA")
    assert str(row.rate) == "0.0125"
    assert str(row.quantity) == "1500.5"
    assert [str(a) for a in (row.net_amount, row.markup_amount, row.gross_amount,
                             row.credit_applied, row.charged_amount)] == [
        "18.76", "2.81", "21.57", "1.57", "20.00"]
    assert row.tiers == (HistoryTier(Decimal("0"), Decimal("1000"), Decimal("1000"),
                                     Decimal("0.0125"), Decimal("12.5000")),
                         HistoryTier(Decimal("1000"), None, Decimal("500.5"),
                                     Decimal("0.0125"), Decimal("6.25625")))
    assert row.minimum_charge_applied is True
    assert row.memo == {"company": "IBM"}
    assert row.event_time == datetime(2024, 5, 1, 0, 3, tzinfo=UTC)
    assert (row.origin_topic, row.origin_partition, row.origin_offset) == (
        "usage.by-account", 3, 3)


def test_times_are_kept_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    row = row_from_rated(rated_value(event_time=datetime(2024, 5, 1, 2, 0, tzinfo=plus_two)),
                         "usage.rated", 0, 0)
    assert row.event_time == datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
    assert row.event_time.utcoffset() == timedelta(0)


@pytest.mark.parametrize(("field", "bad"), [
    ("net_amount", 20.0),  # a float has already lost the exact amount
    ("net_amount", "twenty"),
    ("net_amount", "NaN"),
    ("event_time", datetime(2024, 5, 1)),  # naive
    ("event_id", None),
])
def test_a_record_that_is_not_rated_usage_names_its_position(field: str, bad: object) -> None:
    value = rated_value()
    if bad is None:
        del value[field]
    else:
        value[field] = bad
    with pytest.raises(HistoryError, match=r"usage\.rated\[2\]@41: not a RatedUsage record"):
        row_from_rated(value, "usage.rated", 2, 41)
