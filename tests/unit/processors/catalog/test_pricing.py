from decimal import Decimal

from processors.catalog import Pricing, RateRow, SourceRef, Tier
from processors.catalog.pricing import charge, graduated, volume
from processors.events import TierCharge

D = Decimal
REF = SourceRef("t.yaml", 1, "test")
# First 100 at 0.10, next 900 at 0.08, the rest at 0.05.
TIERS = (
    Tier(D(0), D(100), D("0.10"), REF),
    Tier(D(100), D(1000), D("0.08"), REF),
    Tier(D(1000), None, D("0.05"), REF),
)


def _row(rate: str | None = None, tiers: tuple[Tier, ...] = ()) -> RateRow:
    return RateRow((), "CODE", "unit", D(rate) if rate else None, tiers, None, REF)


def test_flat_is_the_rate_per_operation() -> None:
    result = charge(Pricing.FLAT, _row("1.25"), D(7), D(0))
    assert (result.amount, result.quantity, result.rate) == (D("1.25"), D(1), D("1.25"))


def test_unit_is_rate_times_quantity_seed_hard_disk() -> None:
    result = charge(Pricing.UNIT, _row("10"), D(2), D(0))
    assert result.amount == D(20)


def test_graduated_splits_across_a_tier_boundary() -> None:
    # 90 GB already this month, 20 more: 10 at 0.10 and 10 at 0.08.
    slices = graduated(TIERS, D(90), D(20))
    assert slices == (
        TierCharge(D(0), D(100), D(10), D("0.10"), D("1.00")),
        TierCharge(D(100), D(1000), D(10), D("0.08"), D("0.80")),
    )
    result = charge(Pricing.GRADUATED, _row(tiers=TIERS), D(20), D(90))
    assert result.amount == D("1.80")
    assert result.rate == D("0.10")


def test_graduated_spans_every_tier() -> None:
    slices = graduated(TIERS, D(0), D(1500))
    assert [s.quantity for s in slices] == [D(100), D(900), D(500)]
    assert sum(s.amount for s in slices) == D(10) + D(72) + D(25)


def test_graduated_starting_on_a_boundary_uses_the_next_tier() -> None:
    result = charge(Pricing.GRADUATED, _row(tiers=TIERS), D(5), D(100))
    assert result.tiers == (TierCharge(D(100), D(1000), D(5), D("0.08"), D("0.40")),)


def test_graduated_zero_quantity_charges_nothing() -> None:
    result = charge(Pricing.GRADUATED, _row(tiers=TIERS), D(0), D(100))
    assert (result.amount, result.tiers, result.rate) == (D(0), (), D("0.08"))


def test_volume_prices_the_whole_quantity_at_the_tier_reached() -> None:
    # 95 already, 10 more: the period reaches 105, so all 10 at 0.08.
    assert volume(TIERS, D(95), D(10)) == TierCharge(D(100), D(1000), D(10), D("0.08"), D("0.80"))


def test_volume_tier_end_is_inclusive() -> None:
    assert volume(TIERS, D(0), D(100)).rate == D("0.10")
    assert volume(TIERS, D(0), D("100.001")).rate == D("0.08")
    assert volume(TIERS, D(2000), D(1)).rate == D("0.05")
