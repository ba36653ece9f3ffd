"""Every reason an event is rejected, with a message naming the event and the culprit,
and the promise that a rejected event leaves the state exactly as it was."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from processors.errors import EventRejected, ReasonCode
from processors.events import UsageEvent
from processors.rating import Rated, rate
from processors.state import RatingState
from tests.unit.processors.factories import BASE, CATALOG, ORIGIN, RATED_AT, RATES, catalog, event

MARKETPLACE = {"item": "App", "operation": "Deploy", "instances": 1}

CASES: list[tuple[str, UsageEvent, ReasonCode, str]] = [
    ("unknown item", event(item="Gpu", quantity=1), ReasonCode.UNKNOWN_SERVICE_ITEM, "'Gpu'"),
    (
        "unknown operation",
        event(operation="Sell", quantity=1),
        ReasonCode.UNKNOWN_OPERATION,
        "'Sell'",
    ),
    ("no account", event(home_ou="finance", quantity=1), ReasonCode.NO_ACCOUNT, "'finance'"),
    ("unknown account", event(account_id="nope", quantity=1), ReasonCode.NO_ACCOUNT, "'nope'"),
    (
        "no fiscal period",
        event(at=datetime(2025, 6, 1, tzinfo=UTC), quantity=1),
        ReasonCode.NO_RATE_GROUP,
        "no fiscal period covers 2025-06-01",
    ),
    (
        "no rate table in the group",
        event(item="VM", operation="Create", account_id="proj-x", vcpu=1, region="x", os="y"),
        ReasonCode.NO_RATE_TABLE,
        "rate group 'enterprise' has no rate table for VM Create",
    ),
    (
        "no rate row",
        event(item="VM", operation="Resize", region="eu-west"),
        ReasonCode.NO_RATE_ROW,
        "rate table 'vm-std-resize' has no row for region=eu-west",
    ),
    ("text for a number", event(quantity="two"), ReasonCode.BAD_ATTRIBUTE, "'quantity'"),
    ("number for a text", event(quantity=1, model=Decimal(7)), ReasonCode.BAD_ATTRIBUTE, "'model'"),
    ("missing quantity", event(model="x"), ReasonCode.BAD_ATTRIBUTE, "'quantity' is missing"),
    (
        "missing lookup attribute",
        event(item="VM", operation="Create", vcpu=1, region="eu-west"),
        ReasonCode.BAD_ATTRIBUTE,
        "'os'",
    ),
    (
        "marketplace item without a product",
        event(provider="acme", **MARKETPLACE),  # type: ignore[arg-type]
        ReasonCode.BAD_ATTRIBUTE,
        "provider and product are required",
    ),
    (
        "product of another provider",
        event(provider="bluefin", product="acme-basic", **MARKETPLACE),  # type: ignore[arg-type]
        ReasonCode.UNKNOWN_PRODUCT,
        "provider 'bluefin' has no product 'acme-basic'",
    ),
    ("negative quantity", event(quantity=-1), ReasonCode.NEGATIVE_QUANTITY, "negative: -1"),
    (
        "time without a timezone",
        event(at=datetime(2026, 11, 5), quantity=1),  # naive: the point of the test
        ReasonCode.INVALID_EVENT,
        "timezone",
    ),
]


@pytest.mark.parametrize(
    ("bad", "reason", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rejection_reason_and_message(bad: UsageEvent, reason: ReasonCode, fragment: str) -> None:
    with pytest.raises(EventRejected) as raised:
        rate(bad, ORIGIN, CATALOG, RatingState(), RATED_AT)
    assert raised.value.reason is reason
    assert f"event {bad.event_id}:" in raised.value.message
    assert fragment in raised.value.message


def test_no_rate_group_for_the_period() -> None:
    base = BASE.replace(
        "    credit_plan: small\n    rate_groups: [{rate_group: standard, from: P1}]",
        "    credit_plan: small\n    rate_groups: [{rate_group: standard, from: P2}]",
    )
    early = event(home_ou="partners/acme", at=datetime(2026, 3, 1, tzinfo=UTC), quantity=1)
    with pytest.raises(EventRejected) as raised:
        rate(early, ORIGIN, catalog(RATES, base), RatingState(), RATED_AT)
    assert raised.value.reason is ReasonCode.NO_RATE_GROUP
    assert "account 'acct-acme' has no rate group in fiscal period 'P1'" in raised.value.message


@pytest.mark.parametrize(("bad", "reason", "fragment"), [c[1:] for c in CASES[:6]])
def test_a_rejected_event_changes_no_state(
    bad: UsageEvent, reason: ReasonCode, fragment: str
) -> None:
    state = _state_with_history()
    before = _snapshot(state)
    with pytest.raises(EventRejected):
        rate(bad, ORIGIN, CATALOG, state, RATED_AT)
    assert _snapshot(state) == before
    assert state.dirty_keys() == set()


def test_a_rejection_after_tiers_and_credit_were_computed_changes_no_state() -> None:
    state = _state_with_history()
    before = _snapshot(state)
    conflict = event("h-1", item="Bucket", operation="Meter", stored_gb=Decimal(999))
    with pytest.raises(EventRejected) as raised:
        rate(conflict, ORIGIN, CATALOG, state, RATED_AT)
    assert raised.value.reason is ReasonCode.DUPLICATE_CONFLICT
    negative = event("h-9", home_ou="partners/acme", quantity=-3)
    with pytest.raises(EventRejected):
        rate(negative, ORIGIN, CATALOG, state, RATED_AT)
    assert _snapshot(state) == before
    assert state.dirty_keys() == set()


def _state_with_history() -> RatingState:
    state = RatingState()
    rate(
        event("h-1", item="Bucket", operation="Meter", stored_gb=Decimal(50)),
        ORIGIN,
        CATALOG,
        state,
        RATED_AT,
    )
    rate(event("h-2", home_ou="partners/acme", quantity=1), ORIGIN, CATALOG, state, RATED_AT)
    state.clear_dirty()
    return state


def _snapshot(state: RatingState) -> dict[str, bytes | None]:
    return {key: state.dump(key) for key in state.all_keys()}


# Quantities the engine cannot price exactly. The decoder refuses numbers of 10**18 and
# more (tests/unit/stream/test_codec.py); these reach the engine directly. Decimal
# arithmetic beyond processors.money's precision must be a rejection with a reason,
# never an exception that stops the rater (it would stop again on the same event after
# every restart) and never a second rounding.


def test_an_amount_too_large_to_round_is_rejected_with_a_reason() -> None:
    state = _state_with_history()
    before = _snapshot(state)
    huge = event("huge", quantity=Decimal("1E+70"))  # 10 USD x 1E+70: no cent fits 60 digits
    with pytest.raises(EventRejected) as raised:
        rate(huge, ORIGIN, CATALOG, state, RATED_AT)
    assert raised.value.reason is ReasonCode.BAD_ATTRIBUTE
    assert "event huge: an amount for its quantities cannot be computed exactly" in str(
        raised.value)
    assert _snapshot(state) == before


def test_a_product_beyond_the_precision_is_rejected_not_rounded_twice() -> None:
    # 0.01 USD x 0.50...01 (61 significant digits) is just above half a cent: 0.01 by
    # hand. Rounded to 60 digits first, it would be the tie 0.005, then 0.00.
    cheap = catalog(RATES.replace('{rate_code: HD, unit: disk, rate: "10"}',
                                  '{rate_code: HD, unit: disk, rate: "0.01"}'))
    quantity = Decimal("0.5" + "0" * 59 + "1")
    with pytest.raises(EventRejected) as raised:
        rate(event("long", quantity=quantity), ORIGIN, cheap, RatingState(), RATED_AT)
    assert raised.value.reason is ReasonCode.BAD_ATTRIBUTE
    assert "Inexact" in raised.value.message
    # 60 significant digits still fit: priced exactly and rounded once.
    fits = Decimal("0.5" + "0" * 58 + "1")
    rated = rate(event("fits", quantity=fits), ORIGIN, cheap, RatingState(), RATED_AT)
    assert isinstance(rated, Rated)
    assert rated.record.net_amount == Decimal("0.01")
