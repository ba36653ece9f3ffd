"""What a rate row charges for a quantity: the four pricing modes.

Amounts here are exact (rate scale x quantity scale); the rating engine
rounds once per record. Tiers cover quantities above ``start`` up to and
including ``end`` and are priced against the quantity the account had
already accumulated in the billing period *before* this event.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from processors.catalog.model import Pricing, RateRow, Tier
from processors.events import TierCharge
from processors.money import ZERO, add, multiply, subtract

ONE = Decimal(1)


@dataclass(slots=True, init=False)  # one per event: see processors/events.py
class Charge:
    amount: Decimal  # exact, not rounded
    rate: Decimal  # the headline rate: the row's, or the first tier charged
    quantity: Decimal  # what was priced: 1 for flat
    tiers: tuple[TierCharge, ...]

    def __init__(self, amount: Decimal, rate: Decimal, quantity: Decimal,
                 tiers: tuple[TierCharge, ...]) -> None:
        self.amount = amount
        self.rate = rate
        self.quantity = quantity
        self.tiers = tiers


def charge(pricing: Pricing, row: RateRow, quantity: Decimal, before: Decimal) -> Charge:
    """Price ``quantity`` with ``row``; ``before`` is the period's quantity so far."""
    if pricing is Pricing.FLAT:
        rate = _rate(row)
        return Charge(rate, rate, ONE, ())
    if pricing is Pricing.UNIT:
        rate = _rate(row)
        return Charge(multiply(rate, quantity), rate, quantity, ())
    if pricing is Pricing.GRADUATED:
        slices = graduated(row.tiers, before, quantity)
        rate = slices[0].rate if slices else tier_of_next_unit(row.tiers, before).rate
        return Charge(_sum(slices), rate, quantity, slices)
    whole = volume(row.tiers, before, quantity)
    return Charge(whole.amount, whole.rate, quantity, (whole,))


def graduated(
    tiers: tuple[Tier, ...], before: Decimal, quantity: Decimal
) -> tuple[TierCharge, ...]:
    """Each tier's slice of ``(before, before + quantity]`` at that tier's rate."""
    after = add(before, quantity)
    slices: list[TierCharge] = []
    for tier in tiers:
        low = max(tier.start, before)
        high = after if tier.end is None else min(tier.end, after)
        if high > low:
            part = subtract(high, low)
            slices.append(
                TierCharge(tier.start, tier.end, part, tier.rate, multiply(part, tier.rate))
            )
    return tuple(slices)


def volume(tiers: tuple[Tier, ...], before: Decimal, quantity: Decimal) -> TierCharge:
    """All of ``quantity`` at the rate of the tier the period's total reaches."""
    tier = tier_reached(tiers, add(before, quantity))
    return TierCharge(tier.start, tier.end, quantity, tier.rate, multiply(quantity, tier.rate))


def tier_reached(tiers: tuple[Tier, ...], total: Decimal) -> Tier:
    """The tier whose range ``(start, end]`` holds ``total`` (the first one for 0)."""
    return next(tier for tier in tiers if tier.end is None or total <= tier.end)


def tier_of_next_unit(tiers: tuple[Tier, ...], before: Decimal) -> Tier:
    return next(tier for tier in tiers if tier.end is None or before < tier.end)


def _rate(row: RateRow) -> Decimal:
    if row.rate is None:  # the loader guarantees a rate for flat and unit rows
        raise ValueError(f"rate row {row.rate_code!r} has no rate")
    return row.rate


def _sum(slices: tuple[TierCharge, ...]) -> Decimal:
    total = ZERO
    for part in slices:
        total = add(total, part.amount)
    return total
