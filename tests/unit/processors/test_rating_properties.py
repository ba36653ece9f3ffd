"""Properties of the engine over generated tiers, quantities and event sequences."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.catalog import Pricing, RateRow, SourceRef, Tier
from processors.catalog.pricing import charge, graduated, volume
from processors.events import RatedUsage, UsageEvent
from processors.rating import ESTIMATE_ORIGIN, Rated, estimate, rate
from processors.state import RatingState
from tests.unit.processors.factories import CATALOG, ORIGIN, RATED_AT, event

REF = SourceRef("generated.yaml", 1, "generated")
START = datetime(2026, 10, 20, tzinfo=UTC)

quantities = st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False)
rates = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False)


@st.composite
def tier_lists(draw: st.DrawFn) -> tuple[Tier, ...]:
    widths = draw(st.lists(st.decimals(min_value="0.001", max_value=10**4, places=3), max_size=5))
    tiers: list[Tier] = []
    start = Decimal(0)
    for width in widths:
        tiers.append(Tier(start, start + width, draw(rates), REF))
        start += width
    tiers.append(Tier(start, None, draw(rates), REF))
    return tuple(tiers)


@given(tier_lists(), quantities, quantities)
def test_graduated_slices_sum_to_the_quantity_and_the_amount(
    tiers: tuple[Tier, ...], before: Decimal, quantity: Decimal
) -> None:
    slices = graduated(tiers, before, quantity)
    assert sum((s.quantity for s in slices), Decimal(0)) == quantity
    row = RateRow((), "C", "u", None, tiers, None, REF)
    assert charge(Pricing.GRADUATED, row, quantity, before).amount == sum(
        (s.amount for s in slices), Decimal(0)
    )
    assert all(s.quantity > 0 and s.amount >= 0 for s in slices)


@given(tier_lists(), quantities, quantities)
def test_volume_charges_the_whole_quantity_once(
    tiers: tuple[Tier, ...], before: Decimal, quantity: Decimal
) -> None:
    whole = volume(tiers, before, quantity)
    assert whole.quantity == quantity
    assert whole.amount == quantity * whole.rate
    total = before + quantity
    assert whole.tier_from < total or whole.tier_from == 0
    assert whole.tier_to is None or total <= whole.tier_to


@st.composite
def usage(draw: st.DrawFn, index: int) -> UsageEvent:
    """One billable event of any pricing mode, for any account, within two months."""
    at = START + timedelta(hours=draw(st.integers(min_value=0, max_value=24 * 60)))
    ou = draw(st.sampled_from(["eng/platform", "eng/data", "partners/acme"]))
    amount = draw(st.decimals(min_value=0, max_value=500, places=2, allow_nan=False))
    kind = draw(st.sampled_from(["disk", "bucket", "seat", "app"]))
    event_id = f"e-{index}"
    if kind == "disk":
        return event(event_id, at=at, home_ou=ou, quantity=amount)
    if kind == "bucket":
        return event(
            event_id, at=at, home_ou=ou, item="Bucket", operation="Meter", stored_gb=amount
        )
    if kind == "seat":
        return event(event_id, at=at, home_ou=ou, item="Seat", operation="Subscribe", seats=amount)
    product = draw(st.sampled_from(["acme-basic", "acme-pro"]))
    return event(
        event_id,
        at=at,
        home_ou=ou,
        item="App",
        operation="Deploy",
        instances=amount,
        provider="acme",
        product=product,
    )


@st.composite
def workloads(draw: st.DrawFn) -> list[UsageEvent]:
    size = draw(st.integers(min_value=1, max_value=25))
    events = [draw(usage(index)) for index in range(size)]
    return sorted(events, key=lambda e: e.event_time)


def _rate_all(events: list[UsageEvent], state: RatingState) -> list[RatedUsage]:
    records = []
    for e in events:
        outcome = rate(e, ORIGIN, CATALOG, state, RATED_AT)
        assert isinstance(outcome, Rated)
        records.append(outcome.record)
    return records


@settings(max_examples=60, deadline=None)
@given(workloads())
def test_amounts_are_never_negative_and_gross_covers_net(events: list[UsageEvent]) -> None:
    for record in _rate_all(events, RatingState()):
        amounts = (
            record.net_amount,
            record.markup_amount,
            record.gross_amount,
            record.credit_applied,
            record.credit_remaining,
            record.charged_amount,
        )
        assert all(amount >= 0 for amount in amounts), record
        assert record.gross_amount >= record.net_amount
        assert record.gross_amount == record.net_amount + record.markup_amount
        assert record.charged_amount == record.gross_amount - record.credit_applied


@settings(max_examples=60, deadline=None)
@given(workloads())
def test_credit_never_exceeds_gross_nor_what_is_left(events: list[UsageEvent]) -> None:
    left: dict[tuple[str, str], Decimal] = {}
    for record in _rate_all(events, RatingState()):
        if record.account_id != "acct-acme":
            assert record.credit_applied == 0
            continue
        key = (record.account_id, record.billing_period)
        available = left.get(key, Decimal("30.00"))  # the "small" plan
        assert record.credit_applied <= record.gross_amount
        assert record.credit_applied <= available
        assert record.credit_remaining == available - record.credit_applied
        left[key] = record.credit_remaining


@settings(max_examples=40, deadline=None)
@given(workloads())
def test_rating_is_deterministic_and_survives_a_restore(events: list[UsageEvent]) -> None:
    half = len(events) // 2
    first, second = RatingState(), RatingState()
    assert _rate_all(events[:half], first) == _rate_all(events[:half], second)
    restored = RatingState()
    for key in first.all_keys():
        restored.load(key, first.dump(key))
    assert _rate_all(events[half:], restored) == _rate_all(events[half:], first)


@settings(max_examples=40, deadline=None)
@given(workloads())
def test_an_estimate_is_what_rating_then_charges(events: list[UsageEvent]) -> None:
    state = RatingState()
    for e in events:
        quote = estimate(e, CATALOG, state, RATED_AT)
        outcome = rate(e, ORIGIN, CATALOG, state, RATED_AT)
        assert isinstance(outcome, Rated)
        assert replace(quote, origin=ORIGIN) == outcome.record
        assert quote.origin == ESTIMATE_ORIGIN
