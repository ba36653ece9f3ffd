"""The period aggregates' pure parts: keys, exact totals, hash fields, record decoding."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sinks.aggregate_layout import (
    NO_TOTALS,
    Aggregate,
    AggregateGroup,
    Totals,
    aggregate_fields,
    aggregate_key,
    key_component,
    offsets_key,
    parse_aggregate,
    period_index_key,
    periods_key,
    sum_by_currency,
)
from sinks.aggregates import decode_rated, fold

ACME = AggregateGroup("2026-11", "acme", "acme-backup-std", "acct-partner-acme", "USD")
PLATFORM = AggregateGroup("2026-11", None, None, "acct-eng", "USD")


def rated(**overrides: Any) -> dict[str, Any]:
    record = {"billing_period": "2026-11", "provider": "acme", "product": "acme-backup-std",
              "account_id": "acct-partner-acme", "currency": "USD", "quantity": "2",
              "unit_of_measure": "instance", "net_amount": "80.00", "markup_amount": "12.00",
              "gross_amount": "92.00", "credit_applied": "92.00", "charged_amount": "0.00"}
    record.update(overrides)
    return record


def test_keys_follow_the_documented_layout() -> None:
    assert aggregate_key("rating", ACME) == \
        "rating:agg:2026-11:acme:acme-backup-std:acct-partner-acme:USD"
    assert aggregate_key("rating", PLATFORM) == "rating:agg:2026-11:-:-:acct-eng:USD"
    assert period_index_key("p", "2026-11") == "p:agg-index:2026-11"
    assert periods_key("p") == "p:agg-periods"
    assert offsets_key("p") == "p:aggregates:offsets"


def test_key_parts_never_collide() -> None:
    # Catalog identifiers may contain ":"; a producer's free-text provider may be "-".
    assert key_component(None) == "-"
    assert key_component("-") == "%2D"
    assert key_component("a:b") == "a%3Ab"
    assert key_component("50%") == "50%25"
    one = AggregateGroup("2026-11", "a:b", "c", "acct", "USD")
    other = AggregateGroup("2026-11", "a", "b:c", "acct", "USD")
    assert aggregate_key("r", one) != aggregate_key("r", other)
    dash = AggregateGroup("2026-11", "-", None, "acct", "USD")
    assert aggregate_key("r", dash) != aggregate_key("r", AggregateGroup(
        "2026-11", None, None, "acct", "USD"))


def test_totals_add_exactly_where_floats_would_not() -> None:
    tenth = Totals(1, Decimal("0.1"), Decimal("0.10"), Decimal(0), Decimal("0.10"),
                   Decimal(0), Decimal("0.10"), frozenset({"GB"}))
    fifth = Totals(1, Decimal("0.2"), Decimal("0.20"), Decimal(0), Decimal("0.20"),
                   Decimal(0), Decimal("0.20"), frozenset({"vcpu"}))
    total = NO_TOTALS.plus(tenth).plus(fifth)
    assert 0.1 + 0.2 != 0.3  # what HINCRBYFLOAT would store
    assert total.quantity == Decimal("0.3")
    assert str(total.net_amount) == "0.30"
    assert total.count == 2
    assert total.units == {"GB", "vcpu"}


def test_hash_fields_round_trip_with_explicit_platform_placeholders() -> None:
    totals = Totals(3, Decimal("0.045"), Decimal("1234.50"), Decimal("0.00"),
                    Decimal("1234.50"), Decimal("4.50"), Decimal("1230.00"),
                    frozenset({"vcpu", "GB"}))
    fields = aggregate_fields(Aggregate(PLATFORM, totals, "usage.rated:2:41"))
    assert fields == {
        "billing_period": "2026-11", "provider": "", "product": "", "account": "acct-eng",
        "currency": "USD", "count": "3", "quantity": "0.045", "units": "GB,vcpu",
        "net_amount": "1234.50", "markup_amount": "0.00", "gross_amount": "1234.50",
        "credit_applied": "4.50", "charged_amount": "1230.00",
        "updated_from": "usage.rated:2:41"}
    assert parse_aggregate(fields) == Aggregate(PLATFORM, totals, "usage.rated:2:41")


def test_decoding_keeps_bad_records_as_errors_so_their_offset_still_counts() -> None:
    good = decode_rated("usage.rated", 1, 7, rated())
    assert good.value["group"] == ACME
    assert good.value["totals"].gross_amount == Decimal("92.00")
    assert "error" in decode_rated("usage.rated", 1, 8, rated(net_amount="NaN")).value
    assert "error" in decode_rated("usage.rated", 1, 9, rated(gross_amount="1e")).value
    assert decode_rated("usage.rated", 1, 10, None, "too short").value["error"] == "too short"
    platform = decode_rated("usage.rated", 1, 11, rated(provider=None, product=None))
    assert platform.value["group"].provider is None


def test_fold_sums_a_batch_per_group_and_skips_errors() -> None:
    records = [decode_rated("t", 0, 1, rated()),
               decode_rated("t", 0, 2, rated(quantity="1", net_amount="40.00",
                                             markup_amount="6.00", gross_amount="46.00",
                                             credit_applied="46.00")),
               decode_rated("t", 0, 3, rated(net_amount="oops")),
               decode_rated("t", 0, 4, rated(currency="JPY", quantity="1", net_amount="500",
                                             markup_amount="75", gross_amount="575",
                                             credit_applied="0", charged_amount="575"))]
    batch = fold(records)
    usd = batch[ACME]
    assert usd.totals.count == 2
    assert usd.totals.quantity == Decimal(3)
    assert str(usd.totals.gross_amount) == "138.00"
    assert usd.updated_from == "t:0:2"
    jpy = batch[AggregateGroup("2026-11", "acme", "acme-backup-std", "acct-partner-acme", "JPY")]
    assert str(jpy.totals.charged_amount) == "575"
    by_currency = sum_by_currency(batch.values())
    assert set(by_currency) == {"USD", "JPY"}  # never added across currencies
