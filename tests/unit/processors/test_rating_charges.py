"""Tiers, minimum charge, rounding, markup and credits, as the rating engine applies them."""

from datetime import UTC, datetime
from decimal import Decimal

from processors.events import TierCharge
from processors.rating import Rated, rate
from processors.state import AccumulationKey, CreditKey, RatingState
from tests.unit.processors.factories import (
    CATALOG,
    ORIGIN,
    RATED_AT,
    RATES,
    catalog,
    event,
    rated,
)

D = Decimal


def _meter(event_id: str, gb: int | str, state: RatingState) -> Rated:
    e = event(event_id, item="Bucket", operation="Meter", stored_gb=D(gb))
    outcome = rate(e, ORIGIN, CATALOG, state, RATED_AT)
    assert isinstance(outcome, Rated)
    return outcome


def test_graduated_tiers_split_across_a_boundary() -> None:
    state = RatingState()
    first = _meter("m-1", 90, state).record
    assert first.net_amount == D("9.00")
    second = _meter("m-2", 20, state).record
    # 90 + 20: 10 GB at 0.10 and 10 GB at 0.08.
    assert second.tiers == (
        TierCharge(D(0), D(100), D(10), D("0.10"), D("1.00")),
        TierCharge(D(100), D(1000), D(10), D("0.08"), D("0.80")),
    )
    assert second.net_amount == D("1.80")
    assert second.pricing == "graduated"
    assert second.rate == D("0.10")
    key = AccumulationKey("acct-eng", "2026-11", "bucket", "GB")
    assert state.accumulated(key) == D(110)


def test_tiers_restart_each_billing_month() -> None:
    state = RatingState()
    _meter("m-1", 150, state)
    december = event(
        "m-2",
        item="Bucket",
        operation="Meter",
        stored_gb=D(10),
        at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    outcome = rate(december, ORIGIN, CATALOG, state, RATED_AT)
    assert isinstance(outcome, Rated)
    assert outcome.record.net_amount == D("1.00")  # 10 GB at 0.10 again
    assert outcome.record.billing_period == "2026-12"


def test_volume_prices_the_whole_quantity_at_the_tier_reached() -> None:
    state = RatingState()
    first = rated(event("s-1", item="Seat", operation="Subscribe", seats=8), state)
    assert first.net_amount == D("96.00")  # 8 x 12.00: the month is at 8 seats
    second = rated(event("s-2", item="Seat", operation="Subscribe", seats=5), state)
    # The month reaches 13 seats: all 5 new seats at the 10-50 tier's 10.00.
    assert second.tiers == (TierCharge(D(10), D(50), D(5), D("10.00"), D("50.00")),)
    assert (second.rate, second.net_amount) == (D("10.00"), D("50.00"))


def test_minimum_charge_lifts_a_small_amount() -> None:
    record = rated(event(item="Bucket", operation="Meter", stored_gb=1))
    # 1 GB x 0.10 = 0.10, below the 0.50 minimum.
    assert record.net_amount == D("0.50")
    assert record.minimum_charge_applied
    assert record.tiers[0].amount == D("0.10")  # the tiers still show what was computed


def test_minimum_charge_does_not_touch_a_larger_amount() -> None:
    record = rated(event(item="Bucket", operation="Meter", stored_gb=6))
    assert (record.net_amount, record.minimum_charge_applied) == (D("0.60"), False)


def test_rounding_is_half_even_per_line_in_dollars() -> None:
    cat = catalog(RATES.replace('rate: "10"', 'rate: "0.125"'))
    assert rated(event("a", quantity=1), cat=cat).net_amount == D("0.12")
    assert rated(event("b", quantity=3), cat=cat).net_amount == D("0.38")  # 0.375


def test_rounding_is_half_even_per_line_in_yen() -> None:
    rates = RATES.replace('rate: "10"', 'rate: "2.5"').replace(
        "    memo: [model]\n    currency: USD", "    memo: [model]\n    currency: JPY"
    )
    cat = catalog(rates)
    one = rated(event("a", quantity=1), cat=cat)
    assert (one.currency, one.net_amount, str(one.net_amount)) == ("JPY", D(2), "2")
    assert rated(event("b", quantity=3), cat=cat).net_amount == D(8)  # 7.5
    assert rated(event("c", quantity=5), cat=cat).net_amount == D(12)  # 12.5


def test_markup_makes_gross_from_net() -> None:
    record = rated(
        event(item="App", operation="Deploy", instances=1, provider="acme", product="acme-basic")
    )
    # Net 100.00 at the provider's 15 %: markup 15.00, gross 115.00.
    assert (record.net_amount, record.markup_rate) == (D("100.00"), D("0.15"))
    assert (record.markup_amount, record.gross_amount) == (D("15.00"), D("115.00"))
    assert record.charged_amount == D("115.00")
    assert record.gross_amount >= record.net_amount


def test_a_product_can_override_its_providers_markup() -> None:
    record = rated(
        event(item="App", operation="Deploy", instances=3, provider="acme", product="acme-pro")
    )
    # 3 x 33.33 = 99.99; 25 % of it is 24.9975, rounded half-even to 25.00.
    assert (record.net_amount, record.markup_rate) == (D("99.99"), D("0.25"))
    assert (record.markup_amount, record.gross_amount) == (D("25.00"), D("124.99"))


def test_credits_draw_down_across_records_and_run_out_mid_record() -> None:
    state = RatingState()  # acct-acme has 30.00 USD a month

    def order(event_id: str, disks: int) -> tuple[Decimal, Decimal, Decimal]:
        r = rated(event(event_id, home_ou="partners/acme", quantity=disks), state)
        assert r.charged_amount == r.gross_amount - r.credit_applied
        return r.credit_applied, r.credit_remaining, r.charged_amount

    assert order("c-1", 1) == (D("10.00"), D("20.00"), D("0.00"))
    assert order("c-2", 1) == (D("10.00"), D("10.00"), D("0.00"))
    assert order("c-3", 2) == (D("10.00"), D("0.00"), D("10.00"))  # exhausted mid-record
    assert order("c-4", 1) == (D("0.00"), D("0.00"), D("10.00"))
    assert state.credit_used(CreditKey("acct-acme", "2026-11")) == D("30.00")


def test_credit_applies_to_gross_and_resets_monthly() -> None:
    state = RatingState()
    mp = rated(
        event(
            "c-1",
            item="App",
            operation="Deploy",
            instances=1,
            provider="acme",
            product="acme-basic",
            home_ou="partners/acme",
        ),
        state,
    )
    assert (mp.gross_amount, mp.credit_applied, mp.charged_amount) == (
        D("115.00"),
        D("30.00"),
        D("85.00"),
    )
    december = rated(
        event("c-2", home_ou="partners/acme", quantity=1, at=datetime(2026, 12, 2, tzinfo=UTC)),
        state,
    )
    assert (december.credit_applied, december.credit_remaining) == (D("10.00"), D("20.00"))


def test_credit_only_pays_records_in_its_currency() -> None:
    rates = RATES.replace(
        "    memo: [model]\n    currency: USD", "    memo: [model]\n    currency: EUR"
    )
    record = rated(event(home_ou="partners/acme", quantity=1), cat=catalog(rates))
    assert (record.currency, record.credit_applied, record.charged_amount) == (
        "EUR",
        D("0.00"),
        D("10.00"),
    )
